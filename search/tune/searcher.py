"""The Tune `Searcher` of a study: Optuna's sampler asks for each trial's config; it never tells
Optuna anything (search.tune.optuna_store.OptunaRecorder does, from the driver's callback)."""
from __future__ import annotations

import pickle

import optuna
from ray.tune.search import Searcher

from search.study import Range, Study
from search.tune.optuna_store import OPTUNA_NUMBER, RAY_TRIAL_ID, OptunaTarget
from sr_core.trial_config import fold_point


def optuna_space(study: Study) -> dict[str, optuna.distributions.BaseDistribution]:
    space = {}
    for key, value in study.space.items():
        if isinstance(value, Range):
            space[key] = optuna.distributions.FloatDistribution(value.low, value.high, log=value.log)
        else:
            space[key] = optuna.distributions.CategoricalDistribution(list(value))
    return space


def make_sampler(study: Study) -> optuna.samplers.BaseSampler:
    seed = study.search.seed
    if study.search.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(v) for k, v in study.space.items()}, seed=seed)
    if study.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


class StudySearcher(Searcher):
    """Asks Optuna for each trial's config and passes the Optuna trial number along in it."""

    def __init__(self, target: OptunaTarget, space: dict, sampler: optuna.samplers.BaseSampler,
                 metric: str = "val/mse", mode: str = "min"):
        super().__init__(metric=metric, mode=mode)
        self.target, self.space, self.sampler = target, space, sampler
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_study"] = None  # reopened lazily: storages hold locks and connections
        return state

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = self.target.open_study(self.sampler)
        return self._study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric and mode are fixed at construction

    def suggest(self, trial_id: str) -> dict:
        trial = self.study.ask(self.space)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        # TrialConfig's fields: a user arch's parameters under arch_params (sr_core.trial_config.fold_point)
        return {**fold_point(trial.params), OPTUNA_NUMBER: trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass  # OptunaRecorder, from the driver callback, sees every result (pruning ones too)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # OptunaRecorder tells Optuna, with the status the callback decided

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"sampler": self.sampler}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.sampler = pickle.load(f)["sampler"]
        self._study = None


class ListSearcher(Searcher):
    """Suggests the given configs in order, then FINISHED: the pruning audit's trials (search.run.audit),
    whose configs are decided before it starts. Its place in the list is saved with Tune's
    experiment, so a restored audit makes no trial twice."""

    def __init__(self, configs: list[dict], metric: str = "val/mse", mode: str = "min"):
        super().__init__(metric=metric, mode=mode)
        self.configs, self.next = list(configs), 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.next >= len(self.configs):
            return Searcher.FINISHED
        self.next += 1
        return dict(self.configs[self.next - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # the driver's callback records every trial

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"configs": self.configs, "next": self.next}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.configs, self.next = state["configs"], state["next"]
