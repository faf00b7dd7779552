"""search.tune.optuna_store: what the driver tells Optuna, through Optuna's own storage API (a real
journal file), and read back with Optuna's API."""
import math

import optuna
from optuna.trial import TrialState

from search.tune.optuna_store import OptunaRecorder, OptunaTarget


def _ask(target, n):
    study = target.open_study()
    return [study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}).number for _ in range(n)]


def test_each_epoch_is_an_intermediate_value_and_each_end_its_own_state(target):
    numbers = _ask(target, 4)
    recorder = OptunaRecorder(target)
    for number in numbers:
        for epoch, value in ((1, 0.3), (2, 0.2)):
            recorder.report(number, epoch, value)
    recorder.finish(numbers[0], "completed", "", 0.2)
    recorder.finish(numbers[1], "pruned", "stopped by the scheduler at epoch 2", None)
    recorder.finish(numbers[2], "oom", "out of memory at epoch 2", None)
    trials = target.open_study().get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING]
    assert trials[0].value == 0.2 and all(t.intermediate_values == {1: 0.3, 2: 0.2} for t in trials)
    assert trials[1].user_attrs == {"status": "pruned", "reason": "stopped by the scheduler at epoch 2"}
    assert [t.number for t in target.trials()] == numbers


def test_a_trial_already_told_ignores_what_a_resumed_study_replays(target):
    (number,) = _ask(target, 1)
    recorder = OptunaRecorder(target)
    recorder.report(number, 1, 0.5)
    recorder.finish(number, "completed", "", 0.5)
    fresh = OptunaRecorder(target)  # a resumed driver: a new recorder over the same storage
    fresh.report(number, 1, 0.1)
    fresh.finish(number, "failed", "replayed", None)
    (trial,) = target.open_study().get_trials()
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5 and trial.intermediate_values == {1: 0.5}


def test_a_maximising_study_completes_with_the_best_value(tmp_path):
    target = OptunaTarget("m", str(tmp_path / "m.journal"), direction="maximize")
    target.create_study()
    (number,) = _ask(target, 1)
    OptunaRecorder(target).finish(number, "early_stopped", "", 31.5)
    study = target.open_study()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.best_value == 31.5
    assert not math.isnan(study.best_value)
