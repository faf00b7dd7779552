"""A Tune state file torn by a kill -9 mid-upload is mended from the killed driver's staging copy."""
import json

from search.tune.torn_state import loads, repair


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
