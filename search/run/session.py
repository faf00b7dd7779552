"""What a study's run shares between its steps (search.run.engine prepares it, search.run.steps runs the Tune
experiments, search.run.closing sums it up): the options it was started with, its data, its session."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from search.state import StudyState
from search.study import Study
from search.tune.packing import Packing
from search.workdir import Workdir
from sr_core.contract import DEFAULT_WORKDIR
from sr_core.data import SRData
from sr_core.full_val import FullVal


@dataclass(frozen=True)
class RunOptions:
    workdir: Path = Path(DEFAULT_WORKDIR)
    tracking_uri: str | None = None
    address: str | None = None  # an existing Ray cluster ("auto", HOST:PORT or ray://HOST:PORT)
    storage: str | None = None  # Optuna storage URL (postgresql://... across machines)
    ray_storage: str | None = None  # Tune's storage_path (a shared folder or URI across machines)
    resume: bool = False
    dry_run: bool = False
    tflops: float | None = None  # estimate for another device's effective TFLOP/s
    report: bool = True
    yes: bool = False  # start even when the estimate is far beyond a working day
    overrides: dict = field(default_factory=dict)  # CLI flags over the study file, replayed on --resume
    resume_command: str = ""  # the exact command that resumes this study, for messages


@dataclass(frozen=True)
class Prepared:
    """The study's data, validated, cached and loaded once in the driver."""
    path: Path  # the cache file
    data: SRData
    full_val: FullVal | None = None  # [study].full_val decoded once (search.run.engine.prepare)


@dataclass
class Session:
    """A study being run: what its steps share."""
    study: Study
    opts: RunOptions
    workdir: Workdir
    state: StudyState | None  # None until the study's tracking is opened
    tracking_uri: str  # the real one (may hold a password: never print it, use the state's)
    prepared: Prepared
    restoring: bool
    packing: Packing | None = None  # gpus_per_trial = "auto" on a cluster with GPUs

    @property
    def study_dir(self) -> Path:
        return self.workdir.study_dir(self.study.name)

    def save_state(self) -> None:
        self.state.save(self.study_dir)
