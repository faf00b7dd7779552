"""A study never dies of one trial, and every store tells the same story of each trial's end.

Faults are injected through the trainer's own test hook (the study's [faults] table), so the real
handling paths run: a NaN loss, an exception mid-epoch, out of memory in training and while moving to
the device. The study is driven through the real CLI with real Ray, Optuna (journal) and MLflow
(sqlite); Optuna is read back through Optuna's own API.
"""
import math
from fnmatch import fnmatch

import pytest
from _driver import child_env, client, epochs_logged, optuna_study, run_cli, runs, write_study
from optuna.trial import TrialState

from search.tracking import has_artifact
from search.tune.torn_state import loads
from sr_core.contract import WITH_WEIGHTS

pytestmark = pytest.mark.slow  # a real study through the CLI

FAULTS = {"residual_b1_c4_lr0.001_eta0": "nan@2", "residual_b0_c4_lr0.002_eta0": "raise@2",
          "residual_b1_c4_lr0.002_eta0": "oom@2", "residual_b0_c4_lr1e-30_eta0": "oom:to_device"}
EXPECTED = {"residual_b0_c4_lr0.001_eta0": "completed", "residual_b1_c4_lr0.001_eta0": "diverged",
            "residual_b0_c4_lr0.002_eta0": "failed", "residual_b1_c4_lr0.002_eta0": "oom",
            "residual_b0_c4_lr1e-30_eta0": "oom",
            # lr 1e-30 moves no weight: val/mse is flat, so patience 2 stops it at epoch 3 of 4
            "residual_b1_c4_lr1e-30_eta0": "early_stopped"}
OPTUNA = {"completed": TrialState.COMPLETE, "early_stopped": TrialState.COMPLETE,
          "diverged": TrialState.FAIL, "oom": TrialState.FAIL, "failed": TrialState.FAIL}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    study = write_study(root, lrs=(1e-3, 2e-3, 1e-30), patience=2, concurrent=2, faults=FAULTS)
    env = child_env(root)
    workdir = root / "w"
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1"], env)
    return code, out, workdir, study, env, root


def test_the_study_survives_every_trial_fault_and_completes(faulty):
    code, out, workdir, *_ = faulty
    assert code == 0, out
    (parent,) = runs(workdir, "study")
    assert parent.data.tags["status"] == "completed" and parent.info.status == "FINISHED"
    assert "Traceback" not in out and "KeyError" not in out
    # Tune's experiment-state upload never races its own writes (search.tune.state_upload)
    assert "Last sync command failed" not in out and "Saving experiment state to storage" not in out


def test_each_trial_is_tagged_with_its_true_status_and_a_reason(faulty):
    _, out, workdir, *_ = faulty
    trials = {r.info.run_name: r for r in runs(workdir)}
    assert {n: r.data.tags["status"] for n, r in trials.items()} == EXPECTED, out
    reasons = {n: r.data.tags.get("reason", "") for n, r in trials.items()}
    assert reasons["residual_b0_c4_lr0.001_eta0"] == ""  # completed: nothing to explain
    assert reasons["residual_b1_c4_lr0.001_eta0"] == "non-finite train MSE at epoch 2"
    assert "RuntimeError: injected fault 'raise@2'" in reasons["residual_b0_c4_lr0.002_eta0"]
    assert "out of memory at epoch 2" in reasons["residual_b1_c4_lr0.002_eta0"]
    assert "out of memory at epoch 1" in reasons["residual_b0_c4_lr1e-30_eta0"]
    assert "did not improve for 2 epochs" in reasons["residual_b1_c4_lr1e-30_eta0"]
    for name, run in trials.items():  # MLflow's own run state agrees with the tag
        assert run.info.status == ("FAILED" if EXPECTED[name] == "failed" else "FINISHED")
    # the healthy epochs of the diverged trial are kept: epoch 1 only
    assert [e for e, _ in epochs_logged(workdir, trials["residual_b1_c4_lr0.001_eta0"].info.run_id)] == [1]


def test_optuna_tells_the_same_story(faulty):
    _, _, workdir, *_ = faulty
    trials = {r.data.tags["trial_id"]: r for r in runs(workdir)}
    ot = optuna_study(workdir, "faults")
    assert len(ot.trials) == len(trials) == 6
    for t in ot.trials:
        run = trials[t.user_attrs["ray_trial_id"]]
        status = run.data.tags["status"]
        assert t.state == OPTUNA[status], (run.info.run_name, t.state)
        assert t.user_attrs["status"] == status and t.user_attrs["reason"] == run.data.tags.get("reason", "")
        assert int(run.data.tags["optuna.trial_number"]) == t.number
        assert t.params["lr"] == pytest.approx(float(run.data.params["lr"]))
        # COMPLETE trials carry their best val/mse as the value; the others none
        assert t.value == (pytest.approx(run.data.metrics["best/val_mse"]) if t.state == TrialState.COMPLETE else None)
        # every reported epoch is an intermediate value
        logged = {e for e, _ in epochs_logged(workdir, run.info.run_id)}
        assert set(t.intermediate_values) == logged
        assert all(math.isfinite(v) for v in t.intermediate_values.values())


def test_resume_of_the_ended_study_reruns_nothing(faulty):
    _, _, workdir, study, env, _ = faulty
    before = {r.info.run_id: (r.data.tags["status"], epochs_logged(workdir, r.info.run_id)) for r in runs(workdir)}
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--resume", "--tflops", "1"],
                        env)
    assert code == 0, out
    after = {r.info.run_id: (r.data.tags["status"], epochs_logged(workdir, r.info.run_id)) for r in runs(workdir)}
    assert after == before  # same runs, same statuses, not one epoch logged again
    assert len(runs(workdir, "study")) == 1
    assert "] start" not in out and "] epoch" not in out


def test_no_scratch_folder_is_left_behind(faulty):
    *_, root = faulty
    leftovers = list((root / "tmp").glob("sr-search-trials/**/*"))
    assert leftovers == []


def test_every_trial_with_weights_has_its_best_pt_in_mlflow_and_tunes_uploaded_state_is_whole(faulty):
    _, _, workdir, *_ = faulty
    weighted = [r for r in runs(workdir) if r.data.tags["status"] in WITH_WEIGHTS]
    assert len(weighted) == 2  # completed and early_stopped
    assert all(has_artifact(client(workdir), r.info.run_id, "best.pt") for r in weighted)
    # What Tune's experiment-state upload copies (search.tune.state_upload) is Tune's state only, and
    # the copy is whole: no temporary file, every state file loads. The checkpoints MLflow's best.pt
    # comes from are persisted by the trials themselves, inside tune.report.
    (experiment,) = [p for p in (workdir / "studies" / "faults" / "ray").iterdir() if p.is_dir()]
    state = [p for p in experiment.iterdir() if p.is_file()]
    assert any(p.name.startswith("experiment_state") for p in state)
    assert not [p.name for p in state if fnmatch(p.name, ".*-tmp-*")]
    assert all(loads(p) for p in state)
