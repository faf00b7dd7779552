"""A study's state in its workdir folder (`state.json`): what `--resume`, `status`, `ui` and
`dashboard` need to find the study's runs again. Written by the engine (atomically), read by the rest.

Every URI in it is masked (search.redaction): a password never reaches the workdir.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sr_core.files import write_text_atomic

STATE_FILE = "state.json"


@dataclass
class StudyState:
    parent_run_id: str  # the study's MLflow run
    experiment_id: str
    tracking_uri: str  # masked
    storage: str | None  # the --storage URL (masked), or None for the journal
    optuna_study: str  # the Optuna study's name; also Tune's experiment name and the scratch tag
    optuna: str  # where the Optuna study lives: the (masked) RDB URL, or the journal file's path
    ray_storage: str  # Tune's storage_path
    overrides: dict[str, Any] = field(default_factory=dict)  # CLI flags over the study file
    estimate_seconds: float = 0.0  # the cost estimate's wall time, for the ETA before any epoch
    wall_seconds: float = 0.0  # Tune's fit() time over every session of this study
    ray_session_dir: str | None = None  # the last private Ray's session folder (to reap after kill -9)

    def experiment_path(self, name: str) -> str:
        """Where Tune keeps the experiment `name` (the search's is `optuna_study`): in `ray_storage`."""
        return f"{self.ray_storage.rstrip('/')}/{name}"

    @staticmethod
    def path(study_dir: Path) -> Path:
        return Path(study_dir) / STATE_FILE

    @classmethod
    def load(cls, study_dir: Path) -> StudyState | None:
        """The study's state, or None when it never started."""
        path = cls.path(study_dir)
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, study_dir: Path) -> None:
        write_text_atomic(self.path(study_dir), json.dumps(dataclasses.asdict(self), indent=2))
