"""Four trials at once, reporting an epoch about every second each for a couple of minutes, into the
default local stores (MLflow sqlite, Optuna journal) while a user polls `sr-search status` from another
process: every reported epoch lands in both stores, and nothing says "database is locked"."""
import time

import pytest

from _driver import Driver, child_env, epochs_logged, optuna_study, run_cli, runs, write_study

pytestmark = pytest.mark.slow  # a real study of four trials at once

EPOCHS = 200


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    root = tmp_path_factory.mktemp("busy")
    # 4 trials, 0.5 CPU each: all four run at once on two cores; one tiny batch per epoch.
    study = write_study(root, "busy", blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=EPOCHS, epoch_samples=4, patience=1000,
                        cpus=0.5, concurrent=4)
    env = child_env(root)
    workdir = root / "w"
    d = Driver(["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1", "--no-report"], env)
    d.wait_for(r"\] epoch +1 ")
    polls, t0 = [], time.monotonic()
    while d.proc.poll() is None:  # a user watching the study from another terminal
        polls.append(run_cli(["status", "--study", "busy", "--workdir", str(workdir)], env, timeout=120))
        time.sleep(2)
    code = d.finish()
    return {"code": code, "text": d.text, "polls": polls, "seconds": time.monotonic() - t0, "workdir": workdir}


def test_four_trials_ran_at_once_and_finished(busy):
    assert busy["code"] == 0, busy["text"]
    trials = runs(busy["workdir"])
    assert len(trials) == 4 and {t.data.tags["status"] for t in trials} == {"completed"}
    starts = sorted(t.info.start_time for t in trials)
    ends = sorted(t.info.end_time for t in trials)
    assert starts[-1] < ends[0]  # all four were running at the same time
    # ... for most of the study: the stores took writes from four trials at once, not one after another
    together = [ts for t in trials for _, ts in epochs_logged(busy["workdir"], t.info.run_id)
                if starts[-1] <= ts <= ends[0]]
    assert len(together) >= 2 * EPOCHS, f"{len(together)} of {4 * EPOCHS} epochs logged while all four ran"


def test_every_reported_epoch_is_in_mlflow_and_in_optuna(busy):
    workdir = busy["workdir"]
    trials = {t.data.tags["trial_id"]: t for t in runs(workdir)}
    reported = sum(1 for line in busy["text"].splitlines() if "] epoch" in line and "(replayed)" not in line)
    logged = 0
    for t in optuna_study(workdir, "busy").trials:
        run = trials[t.user_attrs["ray_trial_id"]]
        steps = [e for e, _ in epochs_logged(workdir, run.info.run_id)]
        assert sorted(steps) == list(range(1, EPOCHS + 1)), run.info.run_name
        assert sorted(t.intermediate_values) == steps == sorted(steps)
        logged += len(steps)
    assert logged == reported == 4 * EPOCHS


def test_nothing_was_locked_and_status_always_answered(busy):
    everything = busy["text"] + "".join(out for _, out in busy["polls"])
    assert "database is locked" not in everything.lower()
    assert len(busy["polls"]) >= 5 and all(code == 0 for code, _ in busy["polls"])
