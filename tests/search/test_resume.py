"""kill -9 of the driver mid-study, then --resume: nothing finished is lost or rerun, the interrupted
trial continues from its last epoch checkpoint, and ASHA still prunes with its rung records restored."""
import json
import os
import signal
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from _photos import write_photos
from search.cli import main
from search.tracking import EXPERIMENT

STUDY = """
[study]
name = "crash"
data = "{data}"
[search]
sampler = "grid"
seed = 3
[space]
arch = "residual"
blocks = [0, 1]
channels = [4, 8]
lr = [1e-2, 1e-6]
eta_min = 1e-7
[train]
epochs = 4
batch_size = 4
[pruner]
kind = "asha"
grace_period = 1
reduction_factor = 2
[resources]
cpus_per_trial = 1
gpus_per_trial = 0
max_concurrent = 1
"""


def _history(client, run_id):
    return client.get_metric_history(run_id, "val/mse")


def test_kill_9_then_resume_completes_the_study(tmp_path, capsys):
    photos = write_photos(tmp_path / "photos", ("astronaut", "coffee"))
    study = tmp_path / "crash.toml"
    study.write_text(STUDY.format(data=photos))
    workdir = tmp_path / "w"
    env = {**os.environ, "RAY_TMPDIR": os.environ.get("RAY_TMPDIR") or str(tmp_path / "ray"),
           "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "search.cli", "run", "--study", str(study),
                               "--workdir", str(workdir), "--no-report"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True)
    closed, victim, deadline = 0, None, time.monotonic() + 240
    for line in driver.stdout:
        if any(f"] {s}" in line for s in ("completed", "pruned", "early_stopped")):
            closed += 1
        # Epoch 3 is no ASHA rung (rungs: 1, 2, 4): the trial cannot be closing at this moment.
        if closed >= 1 and "epoch   3 " in line:
            victim = line.split("epoch   3 ")[1].split(":")[0]
            break
        assert time.monotonic() < deadline, "the study never reached the point to interrupt"
    assert victim, "driver exited before it could be interrupted"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    killed_at = int(time.time() * 1000)
    time.sleep(1)

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    before = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], "tags.`sr.role` = 'trial'")}
    done_before = {rid: r for rid, r in before.items() if r.data.tags["status"] != "running"}
    assert done_before, "at least one trial had finished before the kill"
    rungs_before = json.loads((workdir / "studies" / "crash" / "asha.json").read_text())["rungs"]

    capsys.readouterr()
    assert main(["run", "--study", str(study), "--workdir", str(workdir), "--resume", "--no-report"]) == 0
    resumed_out = capsys.readouterr().out

    runs = client.search_runs([exp.experiment_id], "tags.`sr.role` = 'trial'")
    assert len({r.data.tags["trial_id"] for r in runs}) == len(runs) == 8  # every grid point, once
    assert all(r.data.tags["status"] in ("completed", "early_stopped", "pruned") for r in runs)
    by_id = {r.info.run_id: r for r in runs}
    # 1. Finished trials were not run again: no epoch of theirs was logged after the kill.
    for rid, r in done_before.items():
        assert by_id[rid].data.tags["status"] == r.data.tags["status"]
        assert all(m.timestamp <= killed_at for m in _history(client, rid))
    # 2. The interrupted trial continued from its checkpoint (Tune's last snapshot: epoch 2 or 3),
    #    not from epoch 1; each epoch is logged once.
    victim_run = next(r for r in runs if r.info.run_name == victim and r.info.run_id in before
                      and r.info.run_id not in done_before)
    hist = _history(client, victim_run.info.run_id)
    assert sorted(m.step for m in hist) == [1, 2, 3, 4]
    assert [m.step for m in hist if m.timestamp > killed_at] == [4]
    resumed_epochs = [int(line.split("epoch")[1].split()[0]) for line in resumed_out.splitlines()
                      if f" {victim}:" in line and "] epoch" in line]
    assert resumed_epochs and min(resumed_epochs) >= 3, resumed_out
    # 3. ASHA kept its rung records and still pruned trials that started after the resume.
    rungs_after = json.loads((workdir / "studies" / "crash" / "asha.json").read_text())["rungs"]
    for milestone, recorded in rungs_before.items():
        assert set(recorded) <= set(rungs_after[milestone])
    started_after = [r for r in runs if r.info.run_id not in before]
    assert started_after, "some trials were left for the resumed study"
    assert any(r.data.tags["status"] == "pruned" for r in started_after)
