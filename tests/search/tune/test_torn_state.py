"""A Tune state file torn by a kill -9 mid-upload is mended from the killed driver's staging copy."""
import json
import os
from pathlib import Path

import pytest
from _driver import ray_tmp

from search.tune.torn_state import loads, repair, staging_copies


def _layout(tmp_path):
    storage = tmp_path / "ray" / "study-abc"
    staging = tmp_path / "session" / "artifacts" / "2026-12-02_16-18-00" / "study-abc" / "driver_artifacts"
    storage.mkdir(parents=True)
    staging.mkdir(parents=True)
    state = json.dumps({"trial_data": ["t1", "t2"], "runner_data": {"x": 1}})
    (staging / "experiment_state-1.json").write_text(state)
    (storage / "experiment_state-1.json").write_text(state[:20])  # the copy a kill -9 cut short
    (storage / "search_gen_state-1.json").write_text('{"ok": true}')  # whole: left alone
    return storage, staging, state


def test_a_torn_file_is_replaced_by_its_whole_staging_copy(tmp_path):
    storage, _, state = _layout(tmp_path)
    assert not loads(storage / "experiment_state-1.json")
    assert repair(storage, tmp_path / "session") == ["experiment_state-1.json"]
    assert (storage / "experiment_state-1.json").read_text() == state
    assert (storage / "search_gen_state-1.json").read_text() == '{"ok": true}'
    assert sorted(p.name for p in storage.iterdir()) == ["experiment_state-1.json", "search_gen_state-1.json"]


def test_without_a_whole_copy_nothing_changes(tmp_path):
    storage, staging, _ = _layout(tmp_path)
    (staging / "experiment_state-1.json").write_text("{torn")
    assert repair(storage, tmp_path / "session") == []
    assert repair(storage, None) == [] and repair("s3://bucket/study-abc", tmp_path / "session") == []
    assert not loads(storage / "experiment_state-1.json")


def test_tunes_search_generator_state_is_a_pickle_named_json_and_loads_until_torn(tmp_path):
    import ray.cloudpickle as cloudpickle
    path = tmp_path / "search_gen_state-1.json"  # what Tune's SearchGenerator writes under that name
    path.write_bytes(cloudpickle.dumps({"counter": 3, "finished": False}))
    assert loads(path)
    path.write_bytes(path.read_bytes()[:20])
    assert not loads(path)


# -- the same against an experiment folder Ray Tune itself wrote ----------------------------------
@pytest.mark.slow  # a real Ray session (the project's own ray_session) and two Tune runs
def test_a_folder_ray_wrote_and_a_kill_tore_is_mended_and_tune_resumes_it(tmp_path, monkeypatch):
    from ray import tune

    from search.run.cluster import ray_session

    def _two_steps(config):  # local: Ray's workers get it by value (they cannot import this test module)
        for step in range(2):
            tune.report({"score": config["x"] * step})

    monkeypatch.setenv("RAY_TMPDIR", os.environ.get("RAY_TMPDIR") or ray_tmp(tmp_path))
    with ray_session(None, log=lambda _: None) as cluster:
        session = Path(cluster.session_dir)
        run = tune.RunConfig(name="study-abc", storage_path=str(tmp_path / "ray"), verbose=0)
        first = tune.Tuner(_two_steps, param_space={"x": tune.grid_search([1, 2])}, run_config=run).fit()
        assert not first.errors and len(first) == 2
        storage = tmp_path / "ray" / "study-abc"

        # Tune's layout is the one repair() looks in: one staging folder in the session, holding the
        # experiment and search-generator state files the storage folder has; a whole folder is left alone.
        (staging,) = staging_copies(session, "study-abc")
        states = sorted(p.name for p in storage.glob("*state-*.json"))
        assert [n.split("state-")[0] for n in states] == ["basic-variant-", "experiment_"], states
        assert all((staging / n).read_bytes() == (storage / n).read_bytes() for n in states)
        assert all(loads(p) for p in storage.iterdir() if p.is_file())  # tuner.pkl and the pickled .json too
        assert repair(storage, session) == []

        # What a kill -9 mid-copy leaves: the storage copies cut short (Tune: "Failed to restore the run state").
        for name in states:
            whole = (storage / name).read_bytes()
            (storage / name).write_bytes(whole[:len(whole) // 2])
            assert not loads(storage / name)
        assert repair(storage, None) == [] and not loads(storage / states[0])  # no session: nothing to mend from
        assert repair(storage, session) == states
        assert all((staging / n).read_bytes() == (storage / n).read_bytes() for n in states)

        # Tune resumes the mended experiment: both trials finished already, none is run again.
        resumed = tune.Tuner.restore(str(storage), trainable=_two_steps).fit()
        assert not resumed.errors and sorted(r.config["x"] for r in resumed) == [1, 2]
        assert sorted(r.metrics["score"] for r in resumed) == [1, 2]
        assert sorted(r.path for r in resumed) == sorted(r.path for r in first)  # the same two trials
        assert len([p for p in storage.iterdir() if p.is_dir()]) == 2  # a restart would have added new ones
