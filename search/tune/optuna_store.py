"""The Optuna study of a search: where it lives, and the record that tells the truth about every trial.

Ray's own `OptunaSearch` tells Optuna a trial is COMPLETE with whatever value it last saw: trials that
a scheduler stopped become COMPLETE with a partial value (so TPE learns from truncated values), and a
closing report without the metric raises KeyError inside Tune. So the work is split:
`search.tune.searcher.StudySearcher` only *asks* Optuna for configs, and `OptunaRecorder`, called by
the driver's Tune callback, writes every epoch's objective as an intermediate value and *tells* Optuna
how the trial ended, with the state `sr_core.contract.OPTUNA_STATE` gives and the user attrs `status`
and `reason`. The callback writes MLflow from the same decision, so the two stores cannot disagree.

Only Optuna's public API is used: the storage object is built here (so `study._storage` is never
needed), and trials are addressed through `BaseStorage`'s public methods.

Storage: a JournalStorage file in the study folder on one machine (SQLite is not for many writers);
any RDB URL (postgresql://...) across machines.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.errors import StudyError
from search.redaction import STORAGE_ENV, mask, redact, resolve
from sr_core.contract import OPTUNA_STATE

OPTUNA_NUMBER = "_optuna_trial"  # the Tune config key that carries the Optuna trial number
RAY_TRIAL_ID = "ray_trial_id"  # the Optuna user attr that names the Tune trial


@dataclass(frozen=True)
class OptunaTarget:
    """Which Optuna study, in which storage: a journal file path, or an RDB URL with any password
    masked (the real one comes from the driver's environment, see search.redaction)."""
    study_name: str
    storage: str
    direction: str = "minimize"

    @property
    def backend(self) -> optuna.storages.BaseStorage:
        return _storage(self.storage)

    def open_study(self, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        return optuna.load_study(study_name=self.study_name, storage=self.backend, sampler=sampler)

    def create_study(self) -> optuna.Study:
        return optuna.create_study(study_name=self.study_name, storage=self.backend,
                                   direction=self.direction, load_if_exists=True)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """Every trial of the study (the scheduler's rung records after a resume, and tests)."""
        backend = self.backend
        return backend.get_all_trials(backend.get_study_id_from_name(self.study_name), deepcopy=False)


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


class OptunaRecorder:
    """Writes intermediate values and final states into the Optuna study (driver side, one writer)."""

    def __init__(self, target: OptunaTarget):
        self.target = target
        self._study: optuna.Study | None = None
        self._study_id: int | None = None

    def __getstate__(self) -> dict:
        return {"target": self.target, "_study": None, "_study_id": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = self.target.open_study()
        return self._study

    def _trial_id(self, number: int) -> int:
        backend = self.target.backend
        if self._study_id is None:
            self._study_id = backend.get_study_id_from_name(self.target.study_name)
        return backend.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def _running(self, number: int) -> int | None:
        """The trial's storage id while Optuna still has it RUNNING; None once it was told how it
        ended (a resumed study replays its last results: nothing to do then)."""
        trial_id = self._trial_id(number)
        return trial_id if self.target.backend.get_trial(trial_id).state == TrialState.RUNNING else None

    def report(self, number: int, epoch: int, value: float) -> None:
        trial_id = self._running(number)
        if trial_id is not None:
            self.target.backend.set_trial_intermediate_value(trial_id, int(epoch), float(value))

    def set_attrs(self, number: int, **attrs) -> None:
        trial_id = self._running(number)
        if trial_id is not None:
            for key, value in attrs.items():
                self.target.backend.set_trial_user_attr(trial_id, key, value)

    def finish(self, number: int, status: str, reason: str, value: float | None) -> None:
        """Tell Optuna how the trial ended: COMPLETE with its best value, or PRUNED / FAIL."""
        trial_id = self._running(number)
        if trial_id is None:
            return
        backend = self.target.backend
        backend.set_trial_user_attr(trial_id, "status", status)
        backend.set_trial_user_attr(trial_id, "reason", reason)
        state = TrialState[OPTUNA_STATE[status]]
        if state == TrialState.COMPLETE:
            self.study.tell(number, float(value))
        else:
            self.study.tell(number, state=state)
