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

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.tune import ray_internals as ray_private
from search.tune.optuna_store import RAY_TRIAL_ID, OptunaTarget

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
