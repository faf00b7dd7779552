"""search.tune.scheduler.PersistentASHA: Ray's ASHA, deciding on fake trials as Ray's own scheduler
tests do, whose rung records survive a driver crash through the Optuna study (a real journal)."""
from types import SimpleNamespace

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler

from search.tune.optuna_store import RAY_TRIAL_ID, OptunaRecorder
from search.tune.scheduler import PersistentASHA


def _trials(target, n):
    """n Tune trials, each with its Optuna trial (the ray_trial_id user attr links them)."""
    study, out = target.open_study(), []
    for _ in range(n):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr(RAY_TRIAL_ID, f"t{trial.number}")
        out.append(SimpleNamespace(trial_id=f"t{trial.number}", number=trial.number))
    return out


def _report(asha, recorder, trial, epoch, value):
    recorder.report(trial.number, epoch, value)  # as the driver's callback does, before the scheduler
    return asha.on_trial_result(None, trial, {"epoch": epoch, "val/mse": value})


def test_the_rung_is_at_the_grace_period_and_a_loser_is_stopped_there(target):
    asha = PersistentASHA(target, max_epochs=8, grace_period=2, reduction_factor=2)
    assert asha.milestones == [2, 4, 8]  # Ray counts max_t as a rung too
    recorder, trials = OptunaRecorder(target), _trials(target, 3)
    for t in trials:
        asha.on_trial_add(None, t)
    decisions = [_report(asha, recorder, t, 1, 0.5) for t in trials]
    assert decisions == [TrialScheduler.CONTINUE] * 3  # before the rung nobody is compared
    assert _report(asha, recorder, trials[0], 2, 0.1) == TrialScheduler.CONTINUE  # first at the rung
    assert _report(asha, recorder, trials[1], 2, 0.2) == TrialScheduler.STOP  # below the top half
    assert _report(asha, recorder, trials[2], 2, 0.05) == TrialScheduler.CONTINUE  # the best so far


def test_after_a_crash_the_rungs_refill_from_optuna_and_a_pruned_trial_stays_stopped(target):
    first = PersistentASHA(target, max_epochs=8, grace_period=2, reduction_factor=2)
    recorder, trials = OptunaRecorder(target), _trials(target, 3)
    for t in trials:
        first.on_trial_add(None, t)
    _report(first, recorder, trials[0], 2, 0.1)
    _report(first, recorder, trials[1], 2, 0.05)
    recorder.report(trials[2].number, 2, 0.9)
    recorder.finish(trials[2].number, "pruned", "stopped by the scheduler at epoch 2", None)
    # The driver died; Tune rebuilds the scheduler from the pickle written at the start.
    again = PersistentASHA(target, max_epochs=8, grace_period=2, reduction_factor=2)
    late = _trials(target, 1)[0]
    again.on_trial_add(None, late)
    assert again.on_trial_result(None, trials[2], {"epoch": 3, "val/mse": 0.9}) == TrialScheduler.STOP
    # The refilled rung holds 0.1, 0.05 and 0.9: a newcomer with 0.5 is not in the top half.
    assert _report(again, recorder, late, 2, 0.5) == TrialScheduler.STOP
    assert again.pruned == {"t2"}


def test_a_grace_period_at_or_past_the_last_epoch_is_refused(target):
    with pytest.raises(ValueError, match="grace_period=8 max_epochs=8"):
        PersistentASHA(target, max_epochs=8, grace_period=8, reduction_factor=2)


# -- the halving rule of SyncHalving ---------------------------------------------------------------------
def test_survivors_keep_the_best_and_with_insurance_the_best_of_each_group():
    from search.tune.scheduler import survivors
    ranked = [("b4", 1), ("b4", 2), ("b2", 3), ("b4", 4), ("b1", 5)]  # (depth, rank), best first
    assert survivors(ranked, 2) == (ranked[:2], ranked[2:])
    kept, cut = survivors(ranked, 2, group_of=lambda t: t[0])
    assert kept == [("b4", 1), ("b4", 2), ("b2", 3), ("b1", 5)] and cut == [("b4", 4)]
    assert survivors(ranked, 9) == (ranked, [])


def test_the_rule_a_study_pickles_insures_by_its_config_key():
    import pickle

    from ray.tune.experiment import Trial

    from search.tune.scheduler import _Rule
    trials = [Trial("__fake", stub=True, config={"blocks": b}, trial_id=f"t{i}") for i, b in enumerate((4, 4, 2))]
    rule = pickle.loads(pickle.dumps(_Rule("blocks")))
    assert [t.trial_id for t in rule(trials, 1)[0]] == ["t0", "t2"]
    assert [t.trial_id for t in _Rule()(trials, 1)[0]] == ["t0"]


def test_a_rung_record_in_memory_and_in_optuna_keeps_the_decisions_in_order(target):
    from search.tune.scheduler import OptunaRungRecord, RungRecord
    for record in (RungRecord(), OptunaRungRecord(target)):
        record.keep((1, ["a"], ["b"]))
        record.keep((2, ["a"], []))
        assert record.decisions() == [[1, ["a"], ["b"]], [2, ["a"], []]]
    assert RungRecord().trials() == [] and OptunaRungRecord(target).decisions() == [[1, ["a"], ["b"]], [2, ["a"], []]]


# -- the questions' cells reach the full budget ----------------------------------------------------------
def _questions(choose_at=0):
    from search.questions import Question, Questions
    return Questions((Question("width", "channels", fixed=(("blocks", 4),)),), choose_at)


def _fake(configs):
    from ray.tune.experiment import Trial
    return [Trial("__fake", stub=True, config=c, trial_id=f"t{i}") for i, c in enumerate(configs)]


def test_before_the_choosing_rung_every_lr_of_a_cell_goes_on_then_only_the_cell_s_best():
    from search.tune.scheduler import _Rule
    # ranked best first: two off-slice trials lead, the slice's (b4) trials trail
    configs = [{"blocks": 2, "channels": 8, "lr": 1}, {"blocks": 2, "channels": 16, "lr": 1},
               {"blocks": 4, "channels": 8, "lr": 1}, {"blocks": 4, "channels": 8, "lr": 2},
               {"blocks": 4, "channels": 16, "lr": 2}, {"blocks": 4, "channels": 16, "lr": 1},
               {"blocks": 2, "channels": 8, "lr": 2}]
    trials = _fake(configs)
    rule = _Rule(questions=_questions(), choose_at=4)
    kept, cut = rule(trials, 1, milestone=2)  # before choose_at: all four slice trials go on
    assert [t.trial_id for t in kept] == ["t0", "t2", "t3", "t4", "t5"]
    assert [t.trial_id for t in cut] == ["t1", "t6"]
    kept, cut = rule(trials, 1, milestone=4)  # at choose_at: the best of each cell (c8: t2, c16: t4)
    assert [t.trial_id for t in kept] == ["t0", "t2", "t4"]
    assert [t.trial_id for t in cut] == ["t1", "t3", "t5", "t6"]


def test_questions_turned_off_leave_the_plain_rule():
    from search.tune.scheduler import _Rule
    trials = _fake([{"blocks": 2, "channels": 8}, {"blocks": 4, "channels": 8}])
    assert [t.trial_id for t in _Rule(questions=_questions().off(), choose_at=1)(trials, 1, 1)[0]] == ["t0"]


def test_a_halving_replay_carries_every_cell_to_the_full_budget_at_its_best_rung_lr():
    from ray import cloudpickle

    from search.bench.replay import Curve, Replay
    from search.tune.scheduler import RungRecord, SyncHalving
    # 2 depths x 2 widths x 2 lrs; lr 2 leads early, lr 1 wins late; the slice is depth 4
    curves = []
    for blocks in (2, 4):
        for channels in (8, 16):
            for lr in (1, 2):
                late = lr == 1
                vals = [1.0 - 0.01 * e - (0.05 * e if late and e > 2 else 0) + (0 if lr == 2 else 0.02)
                        - 0.001 * channels - 0.002 * blocks for e in range(1, 9)]
                curves.append(Curve(f"b{blocks}c{channels}lr{lr}", {"blocks": blocks, "channels": channels, "lr": lr},
                                    vals, [1.0] * 8, 1.0))
    scheduler = SyncHalving(RungRecord(), len(curves), 8, 1, 2, questions=_questions(choose_at=4))
    scheduler = cloudpickle.loads(cloudpickle.dumps(scheduler))  # as Tune stores it
    outcome = Replay(scheduler, curves, slots=2).run()
    full = {n for n, k in outcome.trained.items() if k == 8}
    # each b4 cell reaches epoch 8 with the lr that was best at the choosing rung (epoch 4: lr 1)
    assert {"b4c8lr1", "b4c16lr1"} <= full
    assert outcome.trained["b4c8lr2"] == 4 and outcome.trained["b4c16lr2"] == 4  # kept to the choice, then cut


def test_a_trial_whose_closing_report_comes_before_its_rung_leaves_the_bracket_and_the_study_goes_on():
    """A trial that fails (its own bug) reports only its closing result: no val metric, and before its
    first epoch no epoch either. Synchronous halving used to raise KeyError('epoch') there, ending the study."""
    from search.bench.replay import ReplayTrial
    from search.tune.scheduler import RungRecord, SyncHalving
    scheduler = SyncHalving(RungRecord(), 3, 4, 2, 2)
    trials = [ReplayTrial(f"t{i}", {"lr": i}) for i in range(3)]
    for t in trials:
        scheduler.on_trial_add(None, t)
    assert scheduler.on_trial_result(None, trials[0], {"epoch": 1, "val/mse": 0.5}) == TrialScheduler.CONTINUE
    closing = {"final": True, "final_status": "failed", "final_reason": "ValueError: odd width"}
    assert scheduler.on_trial_result(None, trials[1], closing) == TrialScheduler.CONTINUE
    assert trials[1] not in scheduler.bracket.live() and trials[0] in scheduler.bracket.live()
    early = {"final": True, "final_status": "early_stopped", "epoch": 1}  # one that ended before the rung too
    assert scheduler.on_trial_result(None, trials[2], early) == TrialScheduler.CONTINUE
    assert scheduler.bracket.live() == [trials[0]]
