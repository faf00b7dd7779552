"""ASHA that survives a driver crash, rebuilt from what Optuna already holds.

Ray's `Tuner.restore` rebuilds the scheduler from the pickle written when the study started, so the
rung records collected before a crash are lost and, after a resume, the remaining trials are compared
against empty rungs: nothing gets pruned until the rungs fill again. But every epoch's objective is
also an Optuna intermediate value (the driver callback writes it), and every trial ASHA stopped is
PRUNED there. So the first time this scheduler is used in a process, it refills its rungs from the
Optuna study: no file of its own, nothing that only the driver's disk holds.

Ray's private scheduler state is touched only through search/tune/ray_internals.py.
"""
from __future__ import annotations

import math

from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, TrialScheduler

from search.questions import Questions, choose_epoch
from search.rungs import halving_rungs
from search.tune import ray_internals as ray_private
from search.tune.optuna_store import RAY_TRIAL_ID, OptunaTarget
from sr_core.contract import ENDED, summary_key

TIME_ATTR = "epoch"


class PersistentASHA(AsyncHyperBandScheduler):
    def __init__(self, target: OptunaTarget, max_epochs: int, grace_period: int, reduction_factor: int,
                 metric: str = "val/mse", mode: str = "min"):
        if grace_period >= max_epochs:
            raise ValueError(f"grace_period must be < max_epochs, got {grace_period=} {max_epochs=}")
        # stop_last_trials=False: a trial that reaches max_epochs ends by itself and sends its
        # closing status report; ASHA must not stop it first.
        super().__init__(time_attr=TIME_ATTR, metric=metric, mode=mode, max_t=max_epochs,
                         grace_period=grace_period, reduction_factor=reduction_factor, brackets=1,
                         stop_last_trials=False)
        self.target = target
        self.pruned: set[str] = set()
        self._loaded = False

    @property
    def milestones(self) -> list[int]:
        """The epochs at which ASHA compares trials, ascending (Ray's own computation)."""
        return sorted(milestone for milestone, _ in ray_private.asha_rungs(self))

    def _load(self) -> None:
        """Refill the rungs (and the set of pruned trials) from Optuna, once per process."""
        if self._loaded:
            return
        self._loaded = True
        sign, rungs = ray_private.asha_sign(self), ray_private.asha_rungs(self)
        for trial in self.target.trials():
            ray_id = trial.user_attrs.get(RAY_TRIAL_ID)
            if ray_id is None:
                continue
            if trial.user_attrs.get("status") == "pruned":
                self.pruned.add(ray_id)
            for milestone, recorded in rungs:
                if milestone in trial.intermediate_values:
                    recorded.setdefault(ray_id, sign * trial.intermediate_values[milestone])

    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._load()
        if trial.trial_id in self.pruned:  # pruned before a crash that Tune's snapshot missed
            return TrialScheduler.STOP
        if not ray_private.asha_knows(self, trial.trial_id):  # a restored trial that Ray did not re-add
            ray_private.asha_adopt(self, trial.trial_id)
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._load()
        if ray_private.asha_knows(self, trial.trial_id):
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        ray_private.asha_forget(self, trial.trial_id)


def survivors(ranked: list, keep: int, group_of=None, cells_of=None, choosing: bool = True,
              cell_rank=None) -> tuple[list, list]:
    """The halving rule: of the trials ranked best first at a rung, the best `keep` go on; with
    `group_of`, so does the best of each group (e.g. each depth), insurance against curves that cross;
    with `cells_of` (a trial's question cells, search.questions), every trial in a cell goes on while
    not `choosing`, then the best of each cell by `cell_rank` (a key, lower is better; default the
    rung ranking): the study's questions reach the full budget. (kept, cut), each in rank order."""
    good = ranked[:keep]
    if group_of is not None:
        best_of_group = {}
        for t in ranked:
            best_of_group.setdefault(group_of(t), t)
        good += [t for t in best_of_group.values() if t not in good]
    if cells_of is not None:
        members: dict = {}
        for t in ranked:
            for cell in cells_of(t):
                members.setdefault(cell, []).append(t)
        if choosing:
            order = cell_rank or ranked.index
            members = {cell: [min(ts, key=order)] for cell, ts in members.items()}
        good += [t for kept in members.values() for t in kept if t not in good]
        good = [t for t in ranked if t in good]  # rank order, whichever rule kept it
    return good, [t for t in ranked if t not in good]


class _Rule:
    """`survivors`, insured by one config key or not, carrying the questions' cells or not (picklable,
    unlike a lambda: Tune pickles the scheduler into its experiment state)."""

    def __init__(self, insure_by: str = "", questions: Questions | None = None, choose_at: int = 0,
                 metric: str = "val/mse", mode: str = "min"):
        self.key = insure_by
        self.questions, self.choose_at = questions, choose_at
        self.best_key, self.sign = summary_key(metric), (1.0 if mode == "min" else -1.0)

    def group_of(self, trial) -> object:
        return trial.config.get(self.key)

    def cells_of(self, trial) -> list:
        return self.questions.cells(trial.config)

    def best_so_far(self, trial) -> float:
        """A cell's lr is chosen by each trial's best value so far (its best/ summary at the rung), not
        its value at the rung epoch: on the residual proxy's curves the choice at epoch 12 then matched
        the full budget's best lr in 25 of 33 cells, against 9 by the rung value (BENCHMARKS.md)."""
        value = (trial.last_result or {}).get(self.best_key)
        return self.sign * float(value) if value is not None else math.inf

    def __call__(self, ranked: list, keep: int, milestone: int = 0) -> tuple[list, list]:
        asks = self.questions is not None and bool(self.questions.active)
        return survivors(ranked, keep, self.group_of if self.key else None, self.cells_of if asks else None,
                         choosing=milestone >= self.choose_at, cell_rank=self._cell_rank(ranked))

    def _cell_rank(self, ranked: list):
        """Best so far when every trial reports it (Tune's results carry best/*), else the rung ranking."""
        if all(self.best_key in (t.last_result or {}) for t in ranked):
            return self.best_so_far
        return ranked.index


DECISIONS_ATTR = "sync_decisions"  # the Optuna study's user attr holding every rung decision


class RungRecord:
    """What a synchronous schedule remembers of its rungs, so that a restarted driver finds its
    decisions: in memory here (a replay of recorded curves, `bench search`, never restarts), in the
    study's Optuna study for a real study (`OptunaRungRecord`)."""

    def __init__(self):
        self._decisions: list[list] = []

    def decisions(self) -> list[list]:
        """Every rung decided so far: [milestone, kept trial ids, cut trial ids], in order."""
        return list(self._decisions)

    def keep(self, decision: tuple[int, list[str], list[str]]) -> None:
        self._decisions.append(list(decision))

    def trials(self) -> list:
        """Optuna's trials (their user attrs and intermediate values): none in memory."""
        return []


class OptunaRungRecord(RungRecord):
    """The rung decisions as a user attr of the study's Optuna study (DECISIONS_ATTR), and its trials."""

    def __init__(self, target: OptunaTarget):
        self.target = target

    def _study_id(self) -> int:
        return self.target.backend.get_study_id_from_name(self.target.study_name)

    def decisions(self) -> list[list]:
        return self.target.backend.get_study_user_attrs(self._study_id()).get(DECISIONS_ATTR, [])

    def keep(self, decision: tuple[int, list[str], list[str]]) -> None:
        self.target.backend.set_study_user_attr(self._study_id(), DECISIONS_ATTR, [*self.decisions(), list(decision)])

    def trials(self) -> list:
        return self.target.trials()


class SyncHalving(HyperBandScheduler):
    """Synchronous successive halving over a whole grid, on Ray's HyperBandScheduler and its bracket.

    Every trial runs to the first rung and is PAUSED there (Ray checkpoints it and frees its slot);
    when all n have reached it (or ended), the best 1/reduction_factor (plus, with `insure_by`, the
    best of each value of that config key, e.g. each depth) are resumed from the checkpoint of that
    epoch, the rest are stopped for good; and so on at every rung up to max_epochs, where the
    survivors end by themselves. Unlike ASHA no trial is promoted before the field is complete, which
    is what a fixed grid known up front allows.

    A rung is decided between Tune's steps (in `choose_trial_to_run`), once every live trial has
    reached it and none is still running or being saved: the last trial to arrive is paused like the
    others, so its epoch is recorded by the driver's callback before any decision can end a trial.
    Each decision is written to its RungRecord (the Optuna study's user attr `sync_decisions`) before Ray acts on it,
    and after a restart (Tune rebuilds the scheduler from the pickle of the start) the first trial
    added reloads them: rungs decided stay decided, trials cut stay cut (a cut trial Tune brings back
    is stopped at once), survivors compare at the values they had at the milestone, and trials that
    were waiting at a rung wait again instead of training past it. Ray's private state is reached only
    through search/tune/ray_internals.py.
    """

    def __init__(self, record: RungRecord, n_trials: int, max_epochs: int, first_rung: int,
                 reduction_factor: int, metric: str = "val/mse", mode: str = "min", insure_by: str = "",
                 questions: Questions | None = None):
        if not 1 <= first_rung < max_epochs:
            raise ValueError(f"first_rung must be in [1, max_epochs), got {first_rung=} {max_epochs=}")
        if n_trials < 1 or reduction_factor < 2:
            raise ValueError(f"need n_trials >= 1 and reduction_factor >= 2, got {n_trials=} {reduction_factor=}")
        super().__init__(time_attr=TIME_ATTR, metric=metric, mode=mode, max_t=max_epochs,
                         reduction_factor=reduction_factor, stop_last_trials=True)
        self.record, self.max_epochs, self.metric_name = record, max_epochs, metric
        self.milestones = halving_rungs(first_rung, reduction_factor, max_epochs)
        rule = _Rule(insure_by, questions, choose_epoch(questions or Questions(), self.milestones), metric, mode)
        self.bracket = ray_private.RungBracket(n_trials, first_rung, max_epochs, reduction_factor, rule)
        self._cut: set[str] = set()  # trial ids cut at a rung (from Optuna after a restart)
        self._ended: set[str] = set()  # trial ids Optuna holds as ended
        self._to_stop: list = []  # cut trials that Tune brought back
        self._loaded = False

    # -- Tune's hooks -------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        ray_private.hyperband_map(self)[trial] = (self.bracket, 0)
        if trial.status in (ray_private.TERMINATED, ray_private.ERROR):
            self.bracket.count_added(trial)
            return
        if trial.trial_id in self._ended or trial.trial_id in self._cut:
            # Ended (or cut at a rung) before a restart that Tune's last snapshot missed: it comes back
            # PENDING, so it is held and stopped at the first chance, before it can train again.
            self.bracket.count_added(trial)
            ray_private.hold_restored(trial)
            self._to_stop.append(trial)
            return
        last = trial.last_result if trial.last_result and TIME_ATTR in trial.last_result else None
        self.bracket.admit(trial, last)  # a restored trial comes back with its last result
        if last is not None and int(last[TIME_ATTR]) >= self.bracket.milestone:
            ray_private.hold_restored(trial)  # it was waiting at the rung: it waits again

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial not in self.bracket.live():
            return TrialScheduler.STOP
        if result.get("final"):
            # The trial's closing report: it ends by itself (completed, stopped early, diverged, out of
            # memory or failed; a failure before its first epoch has no epoch at all), so it leaves the
            # bracket and the rung is decided without it.
            self.bracket.cleanup_trial(trial)
            return TrialScheduler.CONTINUE
        self.bracket.note(trial, result, self.metric_name)
        if int(result.get(TIME_ATTR, 0)) >= self.max_epochs:
            # The last epoch: the trial ends by itself, with its own closing report (completed).
            self.bracket.cleanup_trial(trial)
            return TrialScheduler.CONTINUE
        self.bracket.update_trial_stats(trial, result)
        return TrialScheduler.CONTINUE if self.bracket.continue_trial(trial) else TrialScheduler.PAUSE

    def on_trial_remove(self, tune_controller, trial) -> None:
        if trial in self.bracket.live():
            self.bracket.cleanup_trial(trial)  # the next decision may now be due: choose_trial_to_run

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        while self._to_stop:
            tune_controller.stop_trial(self._to_stop.pop())
        if self._decision_due():
            self._decide(tune_controller)
        for trial in self.bracket.live():
            if trial.status == ray_private.PAUSED and self.bracket.marked_to_unpause(trial):
                return trial
            if trial.status == ray_private.PENDING and self.bracket.last_time(trial) < self.bracket.milestone:
                return trial
        return None

    # -- the rung decision --------------------------------------------------------------------
    def _decision_due(self) -> bool:
        settled = all(t.status in (ray_private.PAUSED, ray_private.PENDING) and not t.is_saving
                      for t in self.bracket.live())
        return self.bracket.halvings_left > 0 and settled and self.bracket.cur_iter_done()

    def _decide(self, tune_controller) -> None:
        """Ray's bracket halves the field by `survivors` (search.tune.ray_internals.RungBracket), the decision is kept
        in Optuna, then the losers are stopped and the survivors marked to resume."""
        good, bad = self.bracket.successive_halving(self._metric, ray_private.hyperband_metric_op(self))
        self._keep(self.bracket.decisions[-1])
        ray_private.hyperband_stopped(self, len(bad))
        for trial in bad:
            self.bracket.cleanup_trial(trial)
            tune_controller.stop_trial(trial)
        for trial in good:
            self.bracket.unpause(trial)

    def _keep(self, decision: tuple[int, list[str], list[str]]) -> None:
        self._cut.update(decision[2])
        self.record.keep(decision)

    def _load(self) -> None:
        """Once per process: the rungs decided, the trials cut or ended, and the values at each
        milestone, from its RungRecord: the Optuna study (what a restarted driver knows of the last one)."""
        if self._loaded:
            return
        self._loaded = True
        decisions = self.record.decisions()
        self.bracket.replay_decisions([m for m, _, _ in decisions])
        self.bracket.decisions = [tuple(d) for d in decisions]
        self._cut = {tid for _, _, cut in decisions for tid in cut}
        for trial in self.record.trials():
            ray_id = trial.user_attrs.get(RAY_TRIAL_ID)
            if ray_id is None:
                continue
            if trial.user_attrs.get("status") in ENDED:
                self._ended.add(ray_id)
            for milestone in self.milestones:
                if milestone in trial.intermediate_values:
                    self.bracket.at_rung.setdefault(ray_id, {})[milestone] = trial.intermediate_values[milestone]
