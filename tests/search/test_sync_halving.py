"""A real study under synchronous successive halving (real Ray, Optuna journal, MLflow sqlite): trials
pause at each rung and the best resume from the epoch they paused at; `paused` is a status of its own
while they wait, in MLflow, Optuna and `sr-search status` (held there by the driver's test hook, then
killed: a paused trial stays paused, it is not "interrupted", and --resume goes on); each epoch is
logged once; and the two stores tell the same story at the end. Its pruning audit then resumes two
pruned trials (the best and the worst of the rung ranking) from their checkpoints to the full budget,
and a kill -9 in the middle of it loses and repeats nothing."""
import re

import pytest

from _driver import Driver, child_env, epochs_logged, optuna_study, run_cli, runs, write_study

pytestmark = pytest.mark.slow  # a real study through the CLI


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    root = tmp_path_factory.mktemp("halving")
    study = write_study(root, "halved", blocks=(0, 1), channels=(4, 8), lrs=(1e-2, 1e-3), epochs=4,
                        pruner="halving", cpus=1, audit=2)  # rungs at epochs 1, 2 and 4; 2 trials at a time
    workdir, env = root / "w", child_env(root)
    args = ["run", "--study", str(study), "--workdir", str(workdir), "--tflops", "1", "--no-report"]
    d = Driver(args, child_env(root, SR_SEARCH_PAUSE_AT="trial_paused"))
    d.wait_for(r"paused at trial_paused")  # the driver stops right after it marked the first trial paused
    paused_in_mlflow = {r.info.run_name: (r.data.tags["status"], r.info.status) for r in runs(workdir)}
    optuna_paused = [t.user_attrs.get("status") for t in optuna_study(workdir, "halved").trials]
    d.kill_9()
    after_kill = run_cli(["status", "--study", "halved", "--workdir", str(workdir)], env)
    # resumed, it finishes the search and starts the audit: killed again after an audit epoch is logged
    d = Driver(args + ["--resume"], child_env(root, SR_SEARCH_PAUSE_AT="audit_epoch"))
    d.wait_for(r"paused at audit_epoch")
    text = d.text
    d.kill_9()
    d = Driver(args + ["--resume"], env)
    code = d.finish()
    return {"code": code, "text": text + d.text, "workdir": workdir, "status": after_kill,
            "paused": paused_in_mlflow, "optuna_paused": optuna_paused, "last": d.text}


def test_the_study_ends_with_the_survivors_completed_and_the_rest_pruned(halved):
    assert halved["code"] == 0, halved["text"]
    trials = runs(halved["workdir"])
    statuses = sorted(t.data.tags["status"] for t in trials)
    assert statuses == ["completed"] * 2 + ["pruned"] * 6  # 8 -> 4 at epoch 1 -> 2 at epoch 2 -> the end
    assert sorted(int(t.data.metrics["epochs_run"]) for t in trials) == [1, 1, 1, 1, 2, 2, 4, 4]


def test_a_waiting_trial_is_paused_in_mlflow_optuna_and_status_and_stays_so_after_a_kill(halved):
    assert list(halved["paused"].values()) == [("paused", "SCHEDULED")]  # MLflow's own state for "waiting"
    # Optuna: the paused one (RUNNING, with the status attr); any trial after it was asked for but
    # had not started (no status yet)
    first, *later = halved["optuna_paused"]
    assert first == "paused" and all(status is None for status in later)
    code, text = halved["status"]
    assert code == 0 and "paused" in text and "waiting at the rung of epoch 1" in text, text
    assert "repaired" not in text  # nothing was running when the driver died: nothing to repair


def test_survivors_resume_from_the_epoch_they_paused_at_and_each_epoch_is_logged_once(halved):
    text = halved["text"]
    assert "resume" in text and "(kept at the rung of epoch 1)" in text and "(kept at the rung of epoch 2)" in text
    for t in runs(halved["workdir"]):
        steps = [e for e, _ in epochs_logged(halved["workdir"], t.info.run_id)]
        assert steps == list(range(1, int(t.data.metrics["epochs_run"]) + 1)), t.info.run_name



def test_optuna_tells_the_same_story_and_holds_the_rung_decisions(halved):
    trials = {t.data.tags["trial_id"]: t for t in runs(halved["workdir"])}
    study = optuna_study(halved["workdir"], "halved")
    for t in study.trials:
        run = trials[t.user_attrs["ray_trial_id"]]
        assert t.user_attrs["status"] == run.data.tags["status"]
        assert t.state.name == {"completed": "COMPLETE", "pruned": "PRUNED"}[run.data.tags["status"]]
        assert sorted(t.intermediate_values) == list(range(1, int(run.data.metrics["epochs_run"]) + 1))
    decisions = study.user_attrs["sync_decisions"]
    assert [(m, len(kept), len(cut)) for m, kept, cut in decisions] == [(1, 4, 4), (2, 2, 2)]


def test_the_audit_resumes_the_best_and_the_worst_pruned_trial_from_their_checkpoints(halved):
    pruned = {t.info.run_id: t for t in runs(halved["workdir"]) if t.data.tags["status"] == "pruned"}
    audits = runs(halved["workdir"], role="audit")
    assert len(audits) == 2 and "audit        : 2 of 6 pruned trials resumed to epoch 4" in halved["text"]
    by_rank = {int(a.data.tags["audit.rank"]): a for a in audits}
    assert sorted(by_rank) == [1, 6] and {a.data.tags["audit.pruned"] for a in audits} == {"6"}
    # rank 1 survived to the second rung (epoch 2), rank 6 was the worst at the first one (epoch 1)
    assert [by_rank[r].data.tags["audit.stopped_at"] for r in (1, 6)] == ["2", "1"]
    for audit in audits:
        source = pruned[audit.data.tags["audit.of"]]  # the pruned trial it continues, still pruned
        stopped = int(audit.data.tags["audit.stopped_at"])
        assert int(source.data.metrics["epochs_run"]) == stopped
        assert audit.info.run_name == source.info.run_name + "-audit"
        assert audit.data.tags["status"] == "completed" and int(audit.data.metrics["epochs_run"]) == 4
        # from its checkpoint: only the epochs after the one it was stopped at are trained and logged
        assert [e for e, _ in epochs_logged(halved["workdir"], audit.info.run_id)] == list(range(stopped + 1, 5))
    study = optuna_study(halved["workdir"], "halved")
    assert len(study.trials) == 8  # the audit is no Optuna trial; the audited ones stay PRUNED there
    # killed mid-audit, the resumed driver restored the audit's own experiment: no new picks
    assert "audit        : 2 of" not in halved["last"]
    assert re.search(r"audit        : halved, synchronous halving \(rungs at .*\): (a pruning miss|no pruning miss): "
                     r"the best of 2 audited trial\(s\)", halved["last"]), halved["last"][-2000:]
