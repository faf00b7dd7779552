"""ASHA that survives a driver crash, rebuilt from what Optuna already holds.

Ray's `Tuner.restore` rebuilds the scheduler from the pickle written when the study started, so the
rung records collected before a crash are lost and, after a resume, the remaining trials are compared
against empty rungs: nothing gets pruned until the rungs fill again. But every epoch's val/mse is also
an Optuna intermediate value (the driver callback writes it), and every trial ASHA stopped is PRUNED
there. So the first time this scheduler is used in a process, it refills its rungs from the Optuna
study: no file of its own, nothing that only the driver's disk holds.

Ray's scheduler keeps its rungs in private attributes (`_brackets[0]._rungs`); they are touched only in
`_rungs` below, and tests/search/test_asha.py fails loudly if Ray changes them.
"""
from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.optuna_link import RAY_TRIAL_ID, OptunaTarget, optuna_trials

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
        return sorted(milestone for milestone, _ in self._rungs())

    def _rungs(self) -> list[tuple[int, dict]]:
        return [(int(milestone), recorded) for milestone, recorded in self._brackets[0]._rungs]  # noqa: SLF001

    def _load(self) -> None:
        """Refill the rungs (and the set of pruned trials) from Optuna, once per process."""
        if self._loaded:
            return
        self._loaded = True
        sign = -1.0 if self._mode == "min" else 1.0  # ASHA records metric_op * value
        for trial in optuna_trials(self.target):
            ray_id = trial.user_attrs.get(RAY_TRIAL_ID)
            if ray_id is None:
                continue
            if trial.user_attrs.get("status") == "pruned":
                self.pruned.add(ray_id)
            for milestone, recorded in self._rungs():
                if milestone in trial.intermediate_values:
                    recorded.setdefault(ray_id, sign * trial.intermediate_values[milestone])

    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._load()
        if trial.trial_id in self.pruned:  # pruned before a crash that Tune's snapshot missed
            return TrialScheduler.STOP
        if trial.trial_id not in self._trial_info:  # a restored trial that Ray did not re-add
            self._trial_info[trial.trial_id] = self._brackets[0]
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._load()
        if trial.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)
