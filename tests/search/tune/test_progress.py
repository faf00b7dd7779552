"""search.tune.progress: the ETA counts the epochs still to run at this session's pace."""
from types import SimpleNamespace

from search.tune.progress import Progress, _clock


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _trial(tid):
    config = {"arch": "residual", "blocks": 1, "channels": 4, "lr": 1e-3, "eta_min": 0.0}
    return SimpleNamespace(trial_id=tid, status="RUNNING", config=config)


def test_before_any_epoch_the_eta_is_the_estimates_and_it_counts_down():
    clock = Clock()
    progress = Progress(total_trials=4, max_epochs=10, estimate_seconds=300.0, clock=clock)
    clock.now += 60
    assert progress.eta_seconds([]) == 240.0
    clock.now += 1000
    assert progress.eta_seconds([]) == 0.0


def test_the_eta_is_epochs_left_times_seconds_per_epoch_and_pruning_shortens_unstarted_trials(capsys):
    clock = Clock()
    progress = Progress(total_trials=4, max_epochs=10, estimate_seconds=0.0, clock=clock)
    a, b = _trial("a"), _trial("b")
    for epoch in (1, 2):
        for trial in (a, b):
            clock.now += 5.0  # 5 s per epoch
            progress.result([a, b], trial, {"epoch": epoch, "val/psnr": 30.0 + epoch}, replayed=False)
    # 2 running trials, 8 epochs each to go, 2 not started at max_epochs (none ended yet): 36 epochs
    assert progress.eta_seconds([a, b]) == 36 * 5.0
    progress.closed([a, b], a, "pruned", {"epochs_run": 2})  # pruned at epoch 2: unstarted trials count 2
    assert progress.eta_seconds([a, b]) == (8 + 2 * 2) * 5.0
    assert "ETA" in capsys.readouterr().out


def test_a_replayed_epoch_does_not_count_as_progress():
    clock = Clock()
    progress = Progress(total_trials=1, max_epochs=4, estimate_seconds=50.0, clock=clock)
    progress.result([_trial("a")], _trial("a"), {"epoch": 3, "val/psnr": 30.0}, replayed=True)
    clock.now += 10
    assert progress.epochs_run == 0 and progress.eta_seconds([_trial("a")]) == 40.0


def test_clock_formats():
    assert _clock(187.9, exact=True) == "  3:07" and _clock(45) == "~45 s"
    assert _clock(600) == "~10 min" and _clock(3 * 3600) == "~3.0 h"


def test_with_no_estimate_the_line_says_the_eta_comes_after_the_first_epoch(capsys):
    clock = Clock()
    progress = Progress(total_trials=2, max_epochs=4, estimate_seconds=None, clock=clock)  # the audit's
    progress.event([_trial("a")], "started")
    assert progress.eta_seconds([_trial("a")]) is None and "ETA after the first epoch" in capsys.readouterr().out
    clock.now += 5.0
    progress.result([_trial("a")], _trial("a"), {"epoch": 3, "val/psnr": 30.0}, replayed=False)
    assert "ETA ~" in capsys.readouterr().out


def test_with_the_schedule_s_plan_the_eta_counts_its_epochs_down_and_does_not_jump_at_a_rung():
    clock = Clock()
    # a plan of 20 trial-epochs (e.g. 4 trials to rung 2, 2 of them on to 6), half taken to the full budget
    progress = Progress(total_trials=4, max_epochs=6, estimate_seconds=0.0, clock=clock, planned_epochs=16,
                        full_share=0.5)
    trials = [_trial(t) for t in "abcd"]
    for epoch in (1, 2):
        for trial in trials:
            clock.now += 3.0  # 3 s of wall per epoch
            progress.result(trials, trial, {"epoch": epoch, "val/psnr": 30.0}, replayed=False)
    assert progress.eta_seconds(trials) == (16 - 8) * 3.0  # paused at the rung: still the plan's 8 epochs
    progress.closed(trials, trials[0], "pruned", {"epochs_run": 2})
    assert progress.eta_seconds(trials) == (16 - 8) * 3.0  # a cut the plan foresaw changes nothing
    progress.closed(trials, trials[1], "early_stopped", {"epochs_run": 2})  # 4 epochs it won't train, x 0.5
    assert progress.eta_seconds(trials) == (16 - 8 - 2) * 3.0


def test_an_older_pickle_without_a_plan_still_gives_an_eta():
    import pickle
    progress = Progress(total_trials=2, max_epochs=4, estimate_seconds=10.0)
    state = progress.__getstate__()
    state.pop("planned_epochs"), state.pop("full_share")
    restored = Progress.__new__(Progress)
    restored.__setstate__(state)
    assert restored.planned_epochs == 0 and restored.eta_seconds([]) is not None
    assert pickle.loads(pickle.dumps(progress)).planned_epochs == 0
