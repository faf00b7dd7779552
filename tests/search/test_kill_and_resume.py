"""kill -9 of the driver at every kind of moment, then --resume: nothing finished is lost or run again.

One study (8 trials, one at a time) is killed four times: during data preparation, between two
trials, in the middle of a trial, and while the report is being written; each time a fresh driver
resumes it. The driver's test hook (SR_SEARCH_PAUSE_AT) holds it at the named point so the kill lands
exactly there; the mid-trial kill lands after an epoch's report. It runs under each schedule: ASHA,
and synchronous halving, where the other trials wait paused at a rung while one runs, the first trial
to close is one cut at a rung decision, and the decisions must survive the kills.
"""
import os
import re
import time

import pytest

from _driver import (Driver, child_env, epochs_logged, first_epochs_after, last_epochs, optuna_study,
                     run_cli, runs, write_study)

pytestmark = pytest.mark.slow  # the real CLI in a child process, killed and resumed

KILLS = ("prepare", "trial_closed", "mid-trial", "report")


def _args(study, workdir, *extra):
    return ["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1", *extra]


@pytest.fixture(scope="module", params=["asha", "halving"])
def killed_four_times(tmp_path_factory, request):
    root = tmp_path_factory.mktemp(f"kills-{request.param}")
    study = write_study(root, "crash", blocks=(0, 1), channels=(4, 8), lrs=(1e-2, 1e-6), epochs=4,
                        pruner=request.param, cpus=1, concurrent=1)
    workdir = root / "w"
    log = {}

    # 1. During data preparation (after decoding, before the cache is written).
    d = Driver(_args(study, workdir), child_env(root, SR_SEARCH_PAUSE_AT="prepare"))
    d.wait_for(r"paused at prepare")
    d.kill_9()
    log["prepare"] = {"exists": workdir.exists(), "time": time.time()}

    # 2. Between trials: right after the first trial is closed in MLflow and Optuna.
    d = Driver(_args(study, workdir, "--resume"), child_env(root, SR_SEARCH_PAUSE_AT="trial_closed"))
    d.wait_for(r"paused at trial_closed")
    d.kill_9()
    log["trial_closed"] = {"time": time.time() * 1000, "text": d.text}

    # 3. Mid-trial: a trial that reported epoch 2 is killed while it trains epoch 3.
    d = Driver(_args(study, workdir, "--resume"), child_env(root))
    victim = d.wait_for(r"\] epoch   2 (\S+):").group(1)
    d.kill_9()
    log["mid-trial"] = {"time": time.time() * 1000, "text": d.text, "victim": victim,
                        "victim_epoch": last_epochs(d.text)[victim],
                        "status": run_cli(["status", "--study", "crash", "--workdir", str(workdir)], child_env(root)),
                        "after_status": {t.info.run_name: (t.data.tags["status"], t.info.status) for t in runs(workdir)}}

    # 4. While the report is written (every trial has ended).
    d = Driver(_args(study, workdir, "--resume"), child_env(root, SR_SEARCH_PAUSE_AT="report"))
    d.wait_for(r"paused at report", timeout=300)
    d.kill_9()
    log["report"] = {"time": time.time() * 1000, "text": d.text,
                     "report_exists": (workdir / "reports" / "crash.html").exists()}

    # 5. The last resume finishes the study.
    d = Driver(_args(study, workdir, "--resume"), child_env(root))
    code = d.finish()
    return {"code": code, "text": d.text, "workdir": workdir, "log": log, "root": root}


def test_a_kill_during_data_preparation_leaves_nothing_behind(killed_four_times):
    assert killed_four_times["log"]["prepare"]["exists"] is False


def test_the_study_completes_with_one_parent_and_every_trial_once(killed_four_times):
    k = killed_four_times
    assert k["code"] == 0, k["text"]
    (parent,) = runs(k["workdir"], "study")
    assert parent.data.tags["status"] == "completed" and parent.info.status == "FINISHED"
    trials = runs(k["workdir"])
    assert len({t.data.tags["trial_id"] for t in trials}) == len(trials) == 8
    assert {t.data.tags["status"] for t in trials} <= {"completed", "early_stopped", "pruned"}
    assert all(t.info.status == "FINISHED" for t in trials)  # none left RUNNING
    for t in trials:  # each epoch logged exactly once, none missing
        steps = [e for e, _ in epochs_logged(k["workdir"], t.info.run_id)]
        assert sorted(steps) == list(range(1, int(t.data.metrics["epochs_run"]) + 1)), t.info.run_name


def test_trials_that_ended_before_a_kill_were_not_run_again(killed_four_times):
    k = killed_four_times
    trials = runs(k["workdir"])
    for point in ("trial_closed", "mid-trial", "report"):
        killed_at = k["log"][point]["time"]
        ended_before = re.findall(r"\] (?:completed|pruned|early_stopped) +(\S+)", k["log"][point]["text"])
        assert ended_before, point
        for t in (t for t in trials if t.info.run_name in ended_before):
            assert all(ts <= killed_at for _, ts in epochs_logged(k["workdir"], t.info.run_id)), (point, t.info.run_name)


def test_the_trial_killed_mid_epoch_lost_at_most_one_epoch(killed_four_times):
    mid = killed_four_times["log"]["mid-trial"]
    resumed = first_epochs_after(killed_four_times["log"]["report"]["text"], "running")
    # Reported epoch 2 before the kill; continuing at epoch 3 loses nothing, at epoch 2 loses one.
    assert resumed[mid["victim"]] >= mid["victim_epoch"], (mid, resumed)


def test_status_after_a_kill_repairs_the_runs_left_running(killed_four_times):
    mid = killed_four_times["log"]["mid-trial"]
    code, text = mid["status"]
    assert code == 0 and "repaired 1 run(s) left running" in text, text
    assert mid["after_status"][mid["victim"]] == ("interrupted", "KILLED")
    assert all(state != "RUNNING" for _, state in mid["after_status"].values())


def test_the_report_is_written_only_by_the_run_that_finished(killed_four_times):
    k = killed_four_times
    assert k["log"]["report"]["report_exists"] is False
    assert (k["workdir"] / "reports" / "crash.html").exists()


def test_optuna_agrees_with_mlflow_on_every_trial(killed_four_times):
    k = killed_four_times
    trials = {t.data.tags["trial_id"]: t for t in runs(k["workdir"])}
    study = optuna_study(k["workdir"], "crash")
    statuses = {t.user_attrs["ray_trial_id"]: t.user_attrs["status"] for t in study.trials}
    assert statuses == {tid: t.data.tags["status"] for tid, t in trials.items()}
    pruned = [t for t in study.trials if t.user_attrs["status"] == "pruned"]
    assert pruned and all(t.state.name == "PRUNED" and t.intermediate_values for t in pruned)


@pytest.mark.parametrize("killed_four_times", ["asha"], indirect=True)
def test_asha_kept_pruning_after_the_resumes(killed_four_times):
    k = killed_four_times
    trials = {t.data.tags["trial_id"]: t for t in runs(k["workdir"])}
    started_late = [t for t in trials.values() if t.info.start_time > k["log"]["trial_closed"]["time"]]
    assert any(t.data.tags["status"] == "pruned" for t in started_late)


@pytest.mark.parametrize("killed_four_times", ["halving"], indirect=True)
def test_halving_decided_each_rung_once_and_kept_its_decisions_across_the_kills(killed_four_times):
    k = killed_four_times
    trials = {t.data.tags["trial_id"]: t for t in runs(k["workdir"])}
    decisions = optuna_study(k["workdir"], "crash").user_attrs["sync_decisions"]
    assert [m for m, _, _ in decisions] == [1, 2]  # rungs at epochs 1, 2 (and 4, where trials end)
    cut = set()
    for milestone, kept, dropped in decisions:
        assert not set(kept) & cut  # nobody comes back once cut
        assert len(kept) == -(-(len(kept) + len(dropped)) // 2)  # the best half, rounded up
        for tid in dropped:  # cut there: trained exactly to that rung, pruned in MLflow
            assert trials[tid].data.tags["status"] == "pruned"
            assert trials[tid].data.metrics["epochs_run"] == milestone
        cut |= set(dropped)
    # the survivors of the last decision ran to the end by themselves
    completed = {tid for tid, t in trials.items() if t.data.tags["status"] == "completed"}
    assert completed == set(decisions[-1][1]) and all(trials[t].data.metrics["epochs_run"] == 4 for t in completed)


def test_nothing_is_left_behind(killed_four_times):
    k = killed_four_times
    assert list((k["root"] / "tmp").glob("sr-search-trials/*/*")) == []  # no trial scratch folder
    assert not list(k["workdir"].rglob(".*.tmp"))  # no half-written file
    # No process started by any of the five drivers outlives them (Ray's agents survive a kill -9 of
    # their driver; the next resume must reap them). Children inherit the drivers' own TMPDIR.
    marker = f"TMPDIR={k['root'] / 'tmp'}\0".encode()
    deadline = time.monotonic() + 20
    while (alive := [p for p in os.listdir("/proc") if p.isdigit() and _has_env(p, marker)]) and time.monotonic() < deadline:
        time.sleep(1)
    assert alive == []
    # ...and they did survive: a resume reaped them (otherwise this test would prove nothing).
    resumes = [k["log"][p]["text"] for p in ("mid-trial", "report")] + [k["text"]]
    assert any("cleaned up" in text for text in resumes)


def _has_env(pid: str, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read()
    except OSError:
        return False
