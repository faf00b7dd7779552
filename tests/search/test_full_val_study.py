"""A tiny study through the real engine (Ray, Optuna, MLflow) that trains on random crops of an HR-only
folder (val patches from a folder of their own) and optimises full/psnr_y on a folder of full-size photos: the full/ metrics reach MLflow at the scored epochs, the halving schedule compares
trials on them, and the study's best trial is the one the full/ objective ranks first."""
import re

import pytest
from _driver import child_env, client, optuna_study, run_cli, runs, write_study
from _photos import write_photos
from test_full_val import write_full_val

from sr_core.contract import FINISHED

pytestmark = pytest.mark.slow  # a real study through Ray


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("fullval")
    folder = write_full_val(root / "Set3")
    val = write_photos(root / "val", ("chelsea",))
    study = write_study(root, "fullstudy", blocks=(0,), lrs=(1e-3, 3e-3, 1e-2), epochs=4, pruner="halving")
    text = study.read_text().replace(
        "[search]", f'full_val = "{folder}"\nfull_val_every = 2\nval_data = "{val}"\n[search]')
    study.write_text(text.replace('seed = 3', 'seed = 3\nmetric = "full/psnr_y"').replace(
        "grace_period = 1", "grace_period = 2"))
    workdir = root / "w"
    code, out = run_cli(["run", "--study", str(study), "--workdir", str(workdir), "--no-report"], child_env(root))
    return code, out, workdir


def test_full_metrics_reach_mlflow_at_the_scored_epochs(ran):
    code, out, workdir = ran
    assert code == 0, out[-3000:]
    assert "full val     : " in out and "scored every 2 epoch(s)" in out
    # the HR-only folder's 2 photos train as random crops; val: chelsea's 4 fixed patches
    assert "(2 train photos, random crops (8 an epoch by default) / 4 val patches" in out
    trials = runs(workdir)
    assert len(trials) == 3
    for run in trials:
        epochs = int(run.data.metrics["epochs_run"])
        for metric in ("full/psnr_y", "full/ssim_y", "full/psnr"):
            steps = [m.step for m in client(workdir).get_metric_history(run.info.run_id, metric)]
            assert steps == [e for e in (2, 4) if e <= epochs], (run.info.run_name, metric, steps)
        assert run.data.metrics["best/epoch"] in (2, 4)  # the best epoch is a scored one
        assert "best/full_psnr_y" in run.data.metrics


def test_the_schedule_and_the_best_trial_follow_full_psnr_y(ran):
    _, out, workdir = ran
    trials = runs(workdir)
    by_status = {}
    for run in trials:
        by_status.setdefault(run.data.tags["status"], []).append(run)
    [pruned] = by_status["pruned"]  # the halving rung at epoch 2 keeps ceil(3 / 2) of 3
    at_rung = {r.info.run_name: next(m.value for m in client(workdir).get_metric_history(r.info.run_id, "full/psnr_y")
                                     if m.step == 2) for r in trials}
    assert at_rung[pruned.info.run_name] == min(at_rung.values())
    finished = [r for r in trials if r.data.tags["status"] in FINISHED]
    best = max(finished, key=lambda r: r.data.metrics["best/full_psnr_y"])
    [study_run] = runs(workdir, "study")
    assert study_run.data.tags["best_run_id"] == best.info.run_id
    assert study_run.data.params["search.metric"] == "full/psnr_y" and study_run.data.params["search.mode"] == "max"
    # the floor on the same folder, so `run` states the best's gain over bicubic on the full-size images
    assert 20 < study_run.data.metrics["bicubic/full_psnr_y"] < 40
    assert re.search(r"vs bicubic   : [+-][0-9.]+ dB \[[+-][0-9.]+, [+-][0-9.]+\]", out), out[-2000:]
    assert f"full/psnr_y {best.data.metrics['best/full_psnr_y']:.2f} dB" in out
    # Optuna holds the objective at the scored epochs only, and each finished trial's best as its value
    optuna_trials = optuna_study(workdir, "fullstudy").trials
    assert {tuple(sorted(t.intermediate_values)) for t in optuna_trials} <= {(2,), (2, 4)}
    values = sorted(t.value for t in optuna_trials if t.state.name == "COMPLETE")
    assert values == pytest.approx(sorted(r.data.metrics["best/full_psnr_y"] for r in finished))
