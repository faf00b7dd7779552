"""What a trial is and what it returns: `TrialConfig` (validated on construction), `TrialResult`,
the per-step learning-rate schedule, and the run name. No torch work happens here.

`TrialConfig` is the one declaration of a trial's hyperparameters and their defaults. Each field
says which table of a study file sets it (`metadata["table"]`): `space` fields are searched, `train`
fields are fixed for the whole study, `seed` comes from `[search]`, and `fault` is the test-only
`[faults]` hook. The study parser, the Tune config, the MLflow params and the report's columns are
derived from these fields (`fields_in`, `LOGGED_FIELDS`), so a new hyperparameter is one edit here.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sr_core.archs import as_params
from sr_core.contract import TRAINER_STATUSES
from sr_core.errors import ConfigError
from sr_core.faults import parse_fault
from sr_core.losses import LOSSES
from sr_core.models import check_model_args

STATUSES = TRAINER_STATUSES  # how the trainer ends a trial (sr_core.contract)


def _in(table: str, default: Any, logged: bool = True) -> Any:
    return field(default=default, metadata={"table": table, "logged": logged})


@dataclass(frozen=True)
class TrialConfig:
    # searched: a study's [space]
    arch: str = _in("space", "residual")
    blocks: int = _in("space", 8)
    channels: int = _in("space", 64)
    lr: float = _in("space", 1e-4)
    eta_min: float = _in("space", 1e-7)
    # The training loss (sr_core.losses): a study fixes it in [train] or searches it in [space].
    loss: str = _in("space", "mse")
    # A user's arch's other [space] parameters (sr_core.archs), name -> value, passed to its factory
    # with blocks and channels; empty for the built-ins. Logged as params of their own, in the run name.
    arch_params: dict = field(default_factory=dict, metadata={"table": "arch", "logged": False})
    # fixed for a study: its [train]
    epochs: int = _in("train", 20)
    batch_size: int = _in("train", 16)
    grad_clip: float = _in("train", 1.0)
    patience: int = _in("train", 10)
    augment: bool = _in("train", True)
    # With augment: each sample's R, G, B channels also in a random order (sr_core.augment). Off by
    # default, so the original study's recipe (and every curve measured with it) stays as it was.
    rgb_permute: bool = _in("train", False)
    # Images per epoch, drawn afresh each epoch; 0 = the whole train set. Lets CPU demos report
    # (and be pruned) often without shrinking the data they see over a trial.
    epoch_samples: int = _in("train", 0)
    seed: int = _in("search", 0)
    # Test-only hook: inject a fault ("raise@2", "nan@2", "oom@1", "oom:eval@1", "oom:to_device")
    # so the fault suite exercises the real handling paths. Empty for every real trial.
    fault: str = _in("faults", "", logged=False)

    def __post_init__(self) -> None:
        if not isinstance(self.arch_params, Mapping):
            raise ConfigError("arch_params", f"arch_params must be a mapping, got {self.arch_params!r}")
        object.__setattr__(self, "arch_params", dict(as_params(self.arch_params)))  # a copy, sorted
        check_model_args(self.arch, self.blocks, self.channels, self.arch_params)
        for name in ("epochs", "batch_size", "patience", "epoch_samples", "seed"):
            value, low = getattr(self, name), 0 if name in ("epoch_samples", "seed") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(name, f"{name} must be an int >= {low}, got {name}={value!r}")
        for name in ("augment", "rgb_permute"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"{name} must be true or false, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError("lr", f"lr must be a positive number, got {self.lr=}")
        if not (isinstance(self.eta_min, (int, float)) and 0 <= self.eta_min <= self.lr):
            raise ConfigError("eta_min", f"eta_min must be in [0, lr], got {self.eta_min=} with {self.lr=}")
        if not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ConfigError("grad_clip", f"grad_clip must be > 0, got {self.grad_clip=}")
        if self.loss not in LOSSES:
            raise ConfigError("loss", f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        try:
            parse_fault(self.fault)
        except ValueError as exc:
            raise ConfigError("fault", str(exc)) from None

    @property
    def run_name(self) -> str:
        return run_name(self.arch, self.blocks, self.channels, self.lr, self.eta_min, self.arch_params, self.loss)

    @property
    def net(self) -> tuple:
        """(arch, blocks, channels, params): what builds the network (sr_core.models.build_model(*net))."""
        return self.arch, self.blocks, self.channels, as_params(self.arch_params)


def fields_in(table: str) -> tuple[dataclasses.Field, ...]:
    """TrialConfig's fields that the study table `table` sets ("space", "train", "search", "faults")."""
    return tuple(f for f in dataclasses.fields(TrialConfig) if f.metadata["table"] == table)


#: The fields logged as MLflow params of every trial (all but the test-only fault hook).
LOGGED_FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig) if f.metadata["logged"])


def run_name(arch: str, blocks: int, channels: int, lr: float, eta_min: float,
             arch_params: Mapping[str, Any] | None = None, loss: str = "mse") -> str:
    """`residual_b24_c612_lr0.0001_eta1e-07`: unique over every searched field (it keys MLflow runs
    and the [faults] table), short enough to read in a table. A user's arch's parameters follow the
    width: `mypkg.nets:make_net_b4_c16_groups2_lr0.001_eta1e-07`; a loss other than the default MSE is
    a suffix (`..._eta1e-07_l1`), so the names of MSE trials are what they always were."""
    extra = "".join(f"_{k}{v:g}" if isinstance(v, float) else f"_{k}{v}"
                    for k, v in as_params(arch_params or {}))
    return f"{arch}_b{blocks}_c{channels}{extra}_lr{lr:g}_eta{eta_min:g}" + ("" if loss == "mse" else f"_{loss}")


def space_point(values: Mapping[str, Any]) -> dict[str, Any]:
    """A TrialConfig-shaped mapping's [space] point, flat: its space fields and its arch_params."""
    return {**{f.name: values[f.name] for f in fields_in("space")}, **dict(values.get("arch_params") or {})}


def fold_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """A flat [space] point as TrialConfig's fields: the keys that are not its space fields go under
    arch_params (left out when there are none, so a built-in's config is what it always was)."""
    names = {f.name for f in fields_in("space")}
    extra = {k: v for k, v in point.items() if k not in names}
    return {**{k: v for k, v in point.items() if k in names}, **({"arch_params": extra} if extra else {})}


@dataclass
class TrialResult:
    status: str
    best: dict[str, float]
    history: list[dict[str, float]]
    epochs: int
    seconds: float
    weights: dict[str, torch.Tensor] | None = field(repr=False, default=None)
    reason: str = ""  # one line saying why a trial that did not complete ended
    # Each val image's metrics at the best epoch (sr_core.evaluate.IMAGE_METRICS), and its val/mse at
    # every epoch this session trained (a resumed trial's earlier epochs are not in it).
    best_images: dict[str, list[float]] = field(repr=False, default_factory=dict)
    epoch_images: list[dict[str, list[float]]] = field(repr=False, default_factory=list)


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
