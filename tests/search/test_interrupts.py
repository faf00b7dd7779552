"""Ctrl-C and SIGTERM are honest: trials stop and say `interrupted`, the exit status says so, no report
pretends to be final, the message gives the exact resume command, and --resume finishes the job.

One study (4 trials, 2 at a time, 12 epochs) is stopped three ways in a row, each followed by a resume:
a Ctrl-C (SIGINT to the driver's whole process group, as a terminal sends it), a SIGTERM to the driver
(as `kill` or a scheduler sends it), and two quick Ctrl-Cs (the second stops at once; `sr-search status`
then repairs what was left running, as after kill -9).
"""
import re
import signal

import pytest

from _driver import Driver, child_env, epochs_logged, first_epochs_after, last_epochs, run_cli, runs, write_study

pytestmark = pytest.mark.slow  # the real CLI in a child process, stopped and resumed


@pytest.fixture(scope="module")
def stopped_three_ways(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupts")
    study = write_study(root, "stop", blocks=(0, 1), lrs=(1e-3, 2e-3), epochs=12, cpus=1, concurrent=2)
    workdir = root / "w"
    args = ["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1"]
    env = child_env(root)
    out = {"workdir": workdir, "study": study}

    d = Driver(args, env)
    d.wait_for(r"\] epoch   2 ")
    d.ctrl_c()
    out["sigint"] = {"code": d.finish(), "text": d.text, "runs": _snapshot(workdir)}

    d = Driver(args + ["--resume"], env)
    # each trial the Ctrl-C interrupted has run again (or replayed) an epoch before the next stop
    _wait_for_each_to_resume(d, out["sigint"]["runs"])
    d.signal(signal.SIGTERM)
    out["sigterm"] = {"code": d.finish(), "text": d.text, "runs": _snapshot(workdir)}

    d = Driver(args + ["--resume"], env)
    _wait_for_each_to_resume(d, out["sigterm"]["runs"])
    d.ctrl_c()
    d.wait_for(r"stopping the running trials")  # the first Ctrl-C is being handled
    d.ctrl_c()
    out["twice"] = {"code": d.finish(timeout=60), "text": d.text, "runs": _snapshot(workdir)}
    out["status"] = run_cli(["status", "--study", "stop", "--workdir", str(workdir)], env)
    out["repaired"] = _snapshot(workdir)

    d = Driver(args + ["--resume"], env)
    out["final"] = {"code": d.finish(), "text": d.text}
    return out


def _wait_for_each_to_resume(d, snapshot):
    """Read the resumed driver's output until every trial the last stop interrupted printed an epoch."""
    waiting = {n for n, (s, _, _) in snapshot["trials"].items() if s == "interrupted"}
    while waiting:
        line = d.wait_for(r"\] epoch +\d+ (" + "|".join(map(re.escape, sorted(waiting))) + ")[: ]")
        waiting.discard(line.group(1))


def _snapshot(workdir):
    parent = runs(workdir, "study")
    trials = runs(workdir)
    return {"parent": [(p.data.tags["status"], p.info.status) for p in parent],
            "trials": {t.info.run_name: (t.data.tags["status"], t.info.status, t.data.tags.get("reason", ""))
                       for t in trials}}


@pytest.mark.parametrize("how,code,name", [("sigint", 130, "SIGINT"), ("sigterm", 143, "SIGTERM")])
def test_a_signal_stops_the_study_honestly(stopped_three_ways, how, code, name):
    got = stopped_three_ways[how]
    assert got["code"] == code, got["text"]
    study, workdir = stopped_three_ways["study"], stopped_three_ways["workdir"]
    assert f"sr-search run --study {study} --resume --workdir {workdir}" in got["text"]
    assert "Tuner.restore" not in got["text"]  # Ray's own hint is not what our users run
    assert "report       :" not in got["text"]  # no report presented as final
    assert got["runs"]["parent"] == [("interrupted", "KILLED")]
    running = [n for n, (s, _, _) in got["runs"]["trials"].items() if s not in ("completed", "early_stopped")]
    assert running, "the signal must have caught trials while they ran"
    for n in running:
        status, state, reason = got["runs"]["trials"][n]
        assert (status, state) == ("interrupted", "KILLED") and f"interrupted by {name}" in reason


def test_a_second_ctrl_c_stops_at_once_and_nothing_is_left_running(stopped_three_ways):
    twice = stopped_three_ways["twice"]
    assert twice["code"] == 130, twice["text"]
    # At once: the second signal's handler ends the process on the spot, so the command line never
    # gets to print its resume hint (the graceful path's last words), and `status` repairs the rest.
    assert "again: stopping now" in twice["text"] and "Resume with:" not in twice["text"]
    # Whatever the graceful stop had not tagged yet, `status` (no driver alive) repaired.
    code, text = stopped_three_ways["status"]
    assert code == 0, text
    repaired = stopped_three_ways["repaired"]
    assert repaired["parent"] == [("interrupted", "KILLED")]
    assert {s for s, _, _ in repaired["trials"].values()} <= {"interrupted", "completed", "early_stopped"}
    assert "RUNNING" not in {state for _, state, _ in repaired["trials"].values()}


def test_resume_after_the_three_stops_finishes_with_each_epoch_once(stopped_three_ways):
    final, workdir = stopped_three_ways["final"], stopped_three_ways["workdir"]
    assert final["code"] == 0, final["text"]
    (parent,) = runs(workdir, "study")
    assert parent.data.tags["status"] == "completed" and "reason" not in parent.data.tags  # no stale "interrupted by"
    trials = runs(workdir)
    assert len(trials) == 4
    for t in trials:
        assert t.data.tags["status"] == "completed" and "reason" not in t.data.tags
        steps = sorted(e for e, _ in epochs_logged(workdir, t.info.run_id))
        assert steps == list(range(1, 13)), t.info.run_name


@pytest.mark.parametrize("stop,resume", [("sigint", "sigterm"), ("sigterm", "twice"), ("twice", "final")])
def test_each_interrupted_trial_lost_at_most_one_epoch(stopped_three_ways, stop, resume):
    before = last_epochs(stopped_three_ways[stop]["text"])
    after = first_epochs_after(stopped_three_ways[resume]["text"], "running      :")
    # after the double Ctrl-C, `status` may be what tagged the trials interrupted
    tags = stopped_three_ways["repaired"] if stop == "twice" else stopped_three_ways[stop]["runs"]
    interrupted = [n for n, (s, _, _) in tags["trials"].items() if s == "interrupted"]
    # Every trial that was stopped mid-run reported epochs before and continues after: it resumes at
    # its last reported epoch or later (a replayed epoch is printed, never logged twice).
    resumed = [n for n in interrupted if n in before]
    assert resumed and set(resumed) <= set(after), (resumed, after)
    assert all(after[n] >= before[n] for n in resumed), (before, after)
