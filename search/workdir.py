"""The workdir layout (default ./sr-runs), in one place.

    mlflow.db, mlartifacts/      MLflow store and artifacts (unless --tracking-uri names a server)
    data/                        prepared-data caches, one file per source
    studies/<name>/              study.toml snapshot, state.json, optuna.journal, ray/, driver.lock
    reports/<name>.html          the HTML report
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search.errors import StudyError

LOCK_FILE = "driver.lock"


@dataclass(frozen=True)
class Workdir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def data_cache(self) -> Path:
        return self.root / "data"

    def study_dir(self, name: str) -> Path:
        return self.root / "studies" / name

    def report_path(self, name: str) -> Path:
        return self.root / "reports" / f"{name}.html"

    def tracking_uri(self, override: str | None) -> str:
        return override or self.mlflow_uri


class StudyBusy(StudyError):
    """Another live driver holds the study (or the data cache) right now."""


@contextlib.contextmanager
def held_lock(path: Path, what: str) -> Iterator[None]:
    """An exclusive lock on `path` for the block. The OS releases it when its holder dies, even by
    kill -9, so a lock that can be taken means nobody is running that study."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StudyBusy(f"{what} is in use by {holder}; wait for it to finish or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def driver_alive(study_dir: Path) -> bool:
    """True while a driver holds the study's lock (a `run` is in progress)."""
    path = study_dir / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
