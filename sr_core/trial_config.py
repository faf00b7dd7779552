"""What a trial is and what it returns: `TrialConfig` (validated on construction), `TrialResult`,
the per-step learning-rate schedule, and the names the search logs. No torch work happens here."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sr_core.faults import parse_fault
from sr_core.models import ARCHS

STATUSES = ("completed", "early_stopped", "pruned", "diverged", "oom")


@dataclass(frozen=True)
class TrialConfig:
    arch: str = "residual"
    blocks: int = 4
    channels: int = 32
    lr: float = 1e-4
    eta_min: float = 1e-7
    epochs: int = 10
    batch_size: int = 16
    grad_clip: float = 1.0
    patience: int = 10
    seed: int = 0
    augment: bool = True
    # Images per epoch, drawn afresh each epoch; None = the whole train set. Lets CPU demos report
    # (and be pruned) often without shrinking the data they see over a trial.
    epoch_samples: int | None = None
    # Test-only hook: inject a fault ("raise@2", "nan@2", "oom@1", "oom:eval@1", "oom:to_device")
    # so the fault suite exercises the real handling paths. Empty for every real trial.
    fault: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch=}")
        for name in ("blocks", "channels", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "blocks" else 1):
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr=}")
        if not (0 <= self.eta_min <= self.lr):
            raise ValueError(f"eta_min must be in [0, lr], got {self.eta_min=} with {self.lr=}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip=}")
        if self.epoch_samples is not None and self.epoch_samples < 1:
            raise ValueError(f"epoch_samples must be >= 1 or None, got {self.epoch_samples=}")
        parse_fault(self.fault)  # raises ValueError naming `fault` when malformed

    @property
    def run_name(self) -> str:
        return f"{self.arch}_b{self.blocks}_c{self.channels}_lr{self.lr:g}"


@dataclass
class TrialResult:
    status: str
    best: dict[str, float]
    history: list[dict[str, float]]
    epochs: int
    seconds: float
    weights: dict[str, torch.Tensor] | None = field(repr=False, default=None)
    reason: str = ""  # one line saying why a trial that did not complete ended


def lr_at(step: int, total_steps: int, config: TrialConfig) -> float:
    """Cosine from config.lr at step 0 to config.eta_min at the last step (a pure function)."""
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return config.eta_min + 0.5 * (config.lr - config.eta_min) * (1 + math.cos(math.pi * progress))


def best_metrics(best: dict[str, float]) -> dict[str, float]:
    """{"val/mse": x, "epoch": 3} -> {"best/val_mse": x, "best/epoch": 3} (the MLflow summary keys)."""
    return {"best/" + k.replace("/", "_"): v for k, v in best.items()}


def config_from_dict(values: dict[str, Any]) -> TrialConfig:
    """A TrialConfig from a mapping, naming any unknown key (for configs coming from a search)."""
    known = {f.name for f in dataclasses.fields(TrialConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown TrialConfig field(s) {unknown}; known: {sorted(known)}")
    return TrialConfig(**values)
