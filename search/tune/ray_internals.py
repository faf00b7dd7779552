"""Every use of Ray Tune's private scheduler state, in one place (the version pin in pyproject.toml
and tests/search/tune/test_ray_internals.py guard it: they fail loudly when Ray changes it).

Ray's `AsyncHyperBandScheduler` keeps its rungs in `_brackets[k]._rungs` (a list of (milestone,
{trial_id: metric_op * value})), the bracket of each trial in `_trial_info`, and its mode in `_mode`.
Ray offers no public way to refill rungs after `Tuner.restore`, which rebuilds the scheduler from the
pickle written at the start (ray-project/ray#30838), so the persistent scheduler needs these.
"""
from __future__ import annotations

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler


def asha_rungs(scheduler: AsyncHyperBandScheduler) -> list[tuple[int, dict[str, float]]]:
    """(milestone epoch, {trial_id: recorded value}) of the scheduler's single bracket; the dicts are
    Ray's own, so writing into them records a value."""
    return [(int(milestone), recorded) for milestone, recorded in scheduler._brackets[0]._rungs]  # noqa: SLF001


def asha_sign(scheduler: AsyncHyperBandScheduler) -> float:
    """What Ray multiplies a value by before recording it (-1 when minimising)."""
    return -1.0 if scheduler._mode == "min" else 1.0  # noqa: SLF001


def asha_knows(scheduler: AsyncHyperBandScheduler, trial_id: str) -> bool:
    return trial_id in scheduler._trial_info  # noqa: SLF001


def asha_adopt(scheduler: AsyncHyperBandScheduler, trial_id: str) -> None:
    """Put a restored trial that Ray did not re-add into the single bracket."""
    scheduler._trial_info[trial_id] = scheduler._brackets[0]  # noqa: SLF001


def asha_forget(scheduler: AsyncHyperBandScheduler, trial_id: str) -> None:
    scheduler._trial_info.pop(trial_id, None)  # noqa: SLF001


# -- HyperBandScheduler's bracket, for synchronous successive halving over a whole grid ------------
# Ray's HyperBandScheduler keeps trials in `_Bracket`s (a private class): `_live_trials` (trial ->
# its last result), `_all_trials`, the survivors to keep `_n` (of `_n0`), the milestone `_cumul_r`
# (reached by `_r *= eta`, capped at `_max_t_attr`), the halvings left `_halves`, `trials_to_unpause`
# and `is_being_processed`; the scheduler maps each trial to (bracket, band) in `_trial_info` and
# multiplies values by `_metric_op` (+1 max, -1 min). RungBracket subclasses Ray's bracket; the other
# functions here are the scheduler's only way at those attributes.
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import HyperBandScheduler  # noqa: E402
from ray.tune.schedulers.hyperband import _Bracket  # noqa: E402

from search.rungs import halving_rungs  # noqa: E402


class RungBracket(_Bracket):
    """Ray's successive-halving bracket over every trial of a grid (n known up front), reached through
    accessors, with two changes of bookkeeping: no rung is decided before all n trials were added,
    and each trial's value AT each milestone epoch is kept (a trial restored after a crash may report
    an epoch past it). Which trials survive a rung is the scheduler's rule (`rule`,
    search.tune.scheduler.survivors); each decision is kept (`decisions`)."""

    def __init__(self, n: int, first_rung: int, max_epochs: int, reduction_factor: int, rule,
                 time_attr: str = "epoch"):
        halvings = len(halving_rungs(first_rung, reduction_factor, max_epochs)) - 1
        super().__init__(time_attr=time_attr, max_trials=n, init_t_attr=first_rung, max_t_attr=max_epochs,
                         eta=reduction_factor, s=halvings, stop_last_trials=True)
        self.rule = rule  # (trials best first, how many to keep, the milestone) -> (kept, cut)
        self.at_rung: dict[str, dict[int, float]] = {}  # trial id -> {milestone epoch: value}
        self.decisions: list[tuple[int, list[str], list[str]]] = []  # (milestone, kept ids, cut ids)

    @property
    def milestone(self) -> int:
        return int(self._cumul_r)

    @property
    def halvings_left(self) -> int:
        return int(self._halves)

    def live(self) -> list:
        return list(self._live_trials)

    def last_time(self, trial) -> float:
        return self._get_result_time(self._live_trials.get(trial))

    def added(self) -> int:
        return len(self._all_trials)

    def cur_iter_done(self) -> bool:
        return len(self._all_trials) >= self._n0 and super().cur_iter_done()

    def note(self, trial, result: dict, metric: str) -> None:
        """Keep the trial's value at a milestone epoch, whatever it reports later."""
        epoch = int(result.get(self._time_attr, 0))
        if metric in result:
            self.at_rung.setdefault(trial.trial_id, {})[epoch] = float(result[metric])

    def successive_halving(self, metric: str, metric_op: float):
        """Ray's arithmetic of one halving (the survivors to keep, the next milestone), then the rule."""
        self._halves -= 1
        milestone = self.milestone
        self._n = int(np.ceil(self._n / self._eta))
        self._r = int(min(self._r * self._eta, self._max_t_attr))
        self._cumul_r = self._r

        def value(t):
            return metric_op * self.at_rung.get(t.trial_id, {}).get(milestone, self._live_trials[t][metric])
        ranked = sorted(self._live_trials, key=value, reverse=True)  # best first; ties: the order added
        good, bad = self.rule(ranked, self._n, milestone)
        self.decisions.append((milestone, [t.trial_id for t in good], [t.trial_id for t in bad]))
        return good, bad

    def replay_decisions(self, milestones: list[int]) -> None:
        """Advance the bracket's arithmetic past rungs decided before a restart (trials cut there
        are simply never added again)."""
        for _ in milestones:
            self._halves -= 1
            self._n = int(np.ceil(self._n / self._eta))
            self._r = int(min(self._r * self._eta, self._max_t_attr))
            self._cumul_r = self._r

    def admit(self, trial, result: dict | None = None) -> None:
        """Make a trial live (with its last result when restored). Ray's add_trial refuses trials once
        `_n` are live, which survivors kept by the insurance rule can exceed after a restart."""
        self._live_trials[trial] = result
        self._all_trials.append(trial)

    def count_added(self, trial) -> None:
        """Count an ended trial towards the n the first decision waits for, without making it live."""
        self._all_trials.append(trial)

    def unpause(self, trial) -> None:
        self.trials_to_unpause.add(trial)

    def marked_to_unpause(self, trial) -> bool:
        return trial in self.trials_to_unpause


def hold_restored(trial) -> None:
    """Keep a trial that Tune is restoring from being started on its own: Tune starts PENDING trials
    eagerly, but leaves PAUSED ones to the scheduler. Tune's add_trial files a trial under the status
    it has after the scheduler's on_trial_add, so setting it there is safe (checked by
    tests/search/tune/test_ray_internals.py against the installed Ray)."""
    trial.set_status(Trial.PAUSED)


def hyperband_map(scheduler: HyperBandScheduler) -> dict:
    """Ray's trial -> (bracket, band) map, which its on_trial_result and on_trial_remove read."""
    return scheduler._trial_info  # noqa: SLF001


def hyperband_metric_op(scheduler: HyperBandScheduler) -> float:
    return scheduler._metric_op  # noqa: SLF001


def hyperband_stopped(scheduler: HyperBandScheduler, n: int) -> None:
    scheduler._num_stopped += n  # noqa: SLF001


PAUSED, PENDING, RUNNING, TERMINATED, ERROR = Trial.PAUSED, Trial.PENDING, Trial.RUNNING, Trial.TERMINATED, Trial.ERROR

