"""The workdir layout (default ./sr-runs), in one place.

    mlflow.db, mlartifacts/      MLflow store and artifacts (unless --tracking-uri names a server)
    data/                        prepared-data caches, one file per source
    studies/<name>/              study.toml snapshot, state.json, optuna.journal, asha.json, ray/
    reports/<name>.html          the HTML report
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
