"""Optuna as the sampler and as a record that tells the truth about every trial.

Ray's own `OptunaSearch` tells Optuna a trial is COMPLETE with whatever value it last saw: trials that
ASHA stopped become COMPLETE with a partial val/mse (so TPE learns from truncated values), and a
closing report without the metric raises KeyError inside Tune. So here the work is split:

- `StudySearcher` (a Tune `Searcher`) only *asks* Optuna for the next config, and passes the Optuna
  trial number along in the config (`OPTUNA_NUMBER`).
- `OptunaRecorder`, called by the driver's Tune callback, writes every epoch's val/mse as an
  intermediate value and *tells* Optuna how the trial ended, with the state `outcome.OPTUNA_STATE`
  gives and the user attrs `status` and `reason`. The callback writes MLflow from the same decision,
  so the two stores cannot disagree.

Storage: a JournalStorage file in the study folder on one machine (SQLite is not for many writers);
any RDB URL (postgresql://...) across machines.
"""
from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search.outcome import OPTUNA_STATE
from search.secrets import STORAGE_ENV, mask, redact, resolve
from search.study import StudyError

OPTUNA_NUMBER = "_optuna_trial"
RAY_TRIAL_ID = "ray_trial_id"


@dataclass(frozen=True)
class OptunaTarget:
    """Which Optuna study, in which storage: a journal file path, or an RDB URL with any password
    masked (the real one comes from the driver's environment, see search.secrets)."""
    study_name: str
    storage: str

    def open_study(self) -> optuna.Study:
        return optuna.load_study(study_name=self.study_name, storage=_storage(self.storage))

    def create_study(self) -> optuna.Study:
        return optuna.create_study(study_name=self.study_name, storage=_storage(self.storage),
                                   direction="minimize", load_if_exists=True)


def check_storage(url: str) -> None:
    """Fail fast, before anything is written, when --storage cannot be used (naming the URL, masked)."""
    if "://" not in url:
        raise StudyError(f"--storage {mask(url)!r}: expected a database URL such as "
                         "postgresql://USER@HOST/DB (default: a journal file in the workdir)")
    try:
        import sqlalchemy
        engine = sqlalchemy.create_engine(sqlalchemy_url(url), connect_args=_connect_timeout(url))
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as exc:
        raise StudyError(f"--storage {mask(url)}: its database driver ({exc.name}) is not installed; "
                         "for PostgreSQL: pip install 'sr-search[postgres]'") from None
    except Exception as exc:  # sqlalchemy wraps the driver's many error types
        detail = redact(str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0], url)
        raise StudyError(f"--storage {mask(url)}: cannot connect ({detail})") from None


def sqlalchemy_url(url: str) -> str:
    """postgresql://... names SQLAlchemy's default driver, psycopg2; the `postgres` extra installs
    psycopg (3), so plain postgresql URLs use it unless the user named a driver (postgresql+x://)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _connect_timeout(url: str) -> dict:
    return {"connect_timeout": 5} if url.startswith("postgresql") else {}


@functools.lru_cache(maxsize=8)
def _storage(spec: str) -> optuna.storages.BaseStorage:
    """One storage object per process and spec (an RDB storage holds a connection pool)."""
    if "://" in spec:
        return optuna.storages.RDBStorage(sqlalchemy_url(resolve(spec, STORAGE_ENV)))
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(Path(spec))))


class StudySearcher(Searcher):
    """Asks Optuna for each trial's config; never tells it anything (OptunaRecorder does)."""

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
            self._study = optuna.load_study(study_name=self.target.study_name,
                                            storage=_storage(self.target.storage), sampler=self.sampler)
        return self._study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric and mode are fixed at construction

    def suggest(self, trial_id: str) -> dict:
        trial = self.study.ask(self.space)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        return {**trial.params, OPTUNA_NUMBER: trial.number}

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


class OptunaRecorder:
    """Writes intermediate values and final states into the Optuna study (driver side, one writer)."""

    def __init__(self, target: OptunaTarget):
        self.target = target
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict:
        return {"target": self.target, "_study": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = self.target.open_study()
        return self._study

    def _trial_id(self, number: int) -> int:
        storage = self.study._storage  # noqa: SLF001 (the storage API below is Optuna's public BaseStorage)
        return storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)  # noqa: SLF001

    def _running(self, number: int) -> tuple[optuna.storages.BaseStorage, int] | None:
        trial_id = self._trial_id(number)
        storage = self.study._storage  # noqa: SLF001
        if storage.get_trial(trial_id).state != TrialState.RUNNING:
            return None  # told already (a resumed study replays its last results): nothing to do
        return storage, trial_id

    def report(self, number: int, epoch: int, value: float) -> None:
        found = self._running(number)
        if found is not None:
            storage, trial_id = found
            storage.set_trial_intermediate_value(trial_id, int(epoch), float(value))

    def finish(self, number: int, status: str, reason: str, best_val_mse: float | None) -> None:
        found = self._running(number)
        if found is None:
            return
        storage, trial_id = found
        storage.set_trial_user_attr(trial_id, "status", status)
        storage.set_trial_user_attr(trial_id, "reason", reason)
        state = TrialState[OPTUNA_STATE[status]]
        if state == TrialState.COMPLETE:
            self.study.tell(number, float(best_val_mse))
        else:
            self.study.tell(number, state=state)


def optuna_trials(target: OptunaTarget) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the study (for ASHA's rung records after a resume, and for tests)."""
    return target.open_study().get_trials(deepcopy=False)
