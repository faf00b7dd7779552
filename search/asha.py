"""ASHA that survives a driver crash, and that tells pruned trials from finished ones.

Ray's `Tuner.restore` rebuilds the scheduler from the pickle written when the study started, so the
rung records collected before a crash are lost and, after a resume, the remaining trials are compared
against empty rungs: nothing gets pruned until the rungs fill again. This subclass writes its rung
records (and the ids of the trials it stopped early) to a JSON file after every decision and reads them
back the first time it is used after a restore.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

TIME_ATTR = "epoch"


class PersistentASHA(AsyncHyperBandScheduler):
    def __init__(self, state_path: str | os.PathLike, max_epochs: int, grace_period: int,
                 reduction_factor: int, metric: str = "val/mse", mode: str = "min"):
        if grace_period >= max_epochs:
            raise ValueError(f"grace_period must be < max_epochs, got {grace_period=} {max_epochs=}")
        # stop_last_trials=False: a trial that reaches max_epochs ends by itself and sends its
        # final status report; ASHA must not stop it first.
        super().__init__(time_attr=TIME_ATTR, metric=metric, mode=mode, max_t=max_epochs,
                         grace_period=grace_period, reduction_factor=reduction_factor, brackets=1,
                         stop_last_trials=False)
        self.state_path = str(state_path)
        self.pruned: set[str] = set()
        self._loaded = False

    @property
    def milestones(self) -> list[int]:
        return sorted(int(m) for m, _ in self._brackets[0]._rungs)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = Path(self.state_path)
        if not path.exists():
            return
        state = json.loads(path.read_text())
        for milestone, recorded in self._brackets[0]._rungs:
            recorded.update(state["rungs"].get(str(int(milestone)), {}))
        self.pruned |= set(state["pruned"])

    def _save(self) -> None:
        state = {"rungs": {str(int(m)): dict(rec) for m, rec in self._brackets[0]._rungs},
                 "pruned": sorted(self.pruned)}
        tmp = f"{self.state_path}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._load()
        if trial.trial_id not in self._trial_info:  # restored trial that Ray did not re-add
            self._trial_info[trial.trial_id] = self._brackets[0]
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result.get(TIME_ATTR, 0) < self._max_t:
            self.pruned.add(trial.trial_id)
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._load()
        if trial.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, trial, result)
        self._save()

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)


def read_pruned(state_path: str | os.PathLike) -> set[str]:
    """Ids of the trials ASHA stopped early, as recorded on disk (for the tracking callback)."""
    path = Path(state_path)
    return set(json.loads(path.read_text())["pruned"]) if path.exists() else set()
