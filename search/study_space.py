"""One [space] field of a study file: a value (fixed), a list (choices) or, for lr and eta_min, a
{low, high, log} range; each checked, a StudyError naming the field (search.study). A user's arch
(sr_core.archs) may take more parameters: any other [space] key, a value or a list; `check_nets` then
builds every net of the space on the meta device, so a factory that fails stops the study here."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from search.errors import StudyError
from sr_core.errors import ConfigError
from sr_core.archs import probe_net
from sr_core.contract import TRIAL_SHAPE_PARAMS
from sr_core.losses import LOSSES
from sr_core.models import MODELS, check_model_args


#: What a user arch's parameter may not be called: TrialConfig's fields and the other columns of a trial's record.
RESERVED = frozenset({"arch_params", "epochs", "batch_size", "grad_clip", "patience", "augment", "rgb_permute",
                      "epoch_samples", "seed", "fault", "name", "study", "status", "run_id", "role",
                      "max_epochs", "loss", *TRIAL_SHAPE_PARAMS})


@dataclass(frozen=True)
class Range:
    """A continuous range for TPE/random sampling."""
    low: float
    high: float
    log: bool = True


def _fail(where: str, field_name: str, message: str) -> StudyError:
    return StudyError(f"{where}: {field_name}: {message}")


def typed(value: Any, kind: type | tuple, where: str, name: str) -> Any:
    if isinstance(kind, tuple):  # a number or a keyword: the rule's predicate then judges it
        return value if isinstance(value, str) else typed(value, kind[0], where, name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise _fail(where, name, f"expected {kind.__name__}, got {value!r}")
    return value


def space_range(key: str, value: dict, where: str) -> Range:
    name = f"[space].{key}"
    if key not in ("lr", "eta_min"):
        raise _fail(where, name, "only lr and eta_min may be a {low, high, log} range")
    unknown = set(value) - {"low", "high", "log"}
    if unknown or not {"low", "high"} <= set(value):
        raise _fail(where, name, f"a range needs low and high (and optional log), got {value!r}")
    low, high = (typed(value[k], float, where, f"{name}.{k}") for k in ("low", "high"))
    if not 0 < low < high:
        raise _fail(where, name, f"need 0 < low < high, got {low=} {high=}")
    return Range(low, high, typed(value.get("log", True), bool, where, f"{name}.log"))


def space_value(key: str, value: Any, where: str) -> tuple | Range:
    name = f"[space].{key}"
    if isinstance(value, dict):
        return space_range(key, value, where)
    choices = value if isinstance(value, list) else [value]
    if not choices:
        raise _fail(where, name, "an empty list has nothing to search")
    if key == "loss":
        if any(v not in LOSSES for v in choices):
            raise _fail(where, name, f"expected some of {list(LOSSES)}, got {choices!r}")
    elif key in ("arch", "blocks", "channels"):
        shape = {"arch": "residual", "blocks": 0, "channels": 1}
        for v in choices:
            try:
                check_model_args(**{**shape, key: v})
            except ConfigError as exc:
                raise _fail(where, name, str(exc)) from None
    else:
        choices = [typed(v, float, where, name) for v in choices]
        if any(not (v >= 0 and math.isfinite(v)) or (key == "lr" and v == 0) for v in choices):
            raise _fail(where, name, f"expected positive numbers, got {choices!r}")
    if len(set(choices)) != len(choices):
        raise _fail(where, name, f"duplicate values in {choices!r}")
    return tuple(choices)


def extra_space(raw: dict, known: tuple[str, ...], archs: tuple, where: str) -> dict[str, tuple]:
    """The [space] keys beyond TrialConfig's (`known`): a user's arch's parameters, each a value or a
    list of numbers, strings or booleans. With only built-in archs they are unknown fields."""
    extra = {}
    for key in (k for k in raw if k not in known):
        name = f"[space].{key}"
        if all(a in MODELS for a in archs):
            raise _fail(where, name, f"unknown field; known fields: {list(known)} (more only for an arch "
                                     "of your own: see docs/studies-and-schedules.md)")
        if key in RESERVED:
            raise _fail(where, name, f"a name the trials' records use already: rename it (reserved: {sorted(RESERVED)})")
        if not key.isidentifier():
            raise _fail(where, name, "a parameter of an arch is a Python identifier (it is passed by keyword)")
        value = raw[key]
        choices = value if isinstance(value, list) else [value]
        if isinstance(value, dict) or not choices:
            raise _fail(where, name, f"expected a value or a non-empty list of values, got {value!r}")
        if not all(isinstance(v, (int, float, str, bool)) for v in choices):
            raise _fail(where, name, f"expected numbers, strings or booleans, got {choices!r}")
        if len(set(choices)) != len(choices):
            raise _fail(where, name, f"duplicate values in {choices!r}")
        extra[key] = tuple(choices)
    return extra


def check_nets(space: dict, known: tuple[str, ...], where: str) -> None:
    """Every net of the space built once on the meta device and run on a 32x32 input when an arch is
    a user's: its factory must import, return an nn.Module and give a 3-channel 128x128 output."""
    extras = [k for k in space if k not in known]
    if all(a in MODELS for a in space["arch"]) and not extras:
        return
    for arch, blocks, channels, *values in itertools.product(
            space["arch"], space["blocks"], space["channels"], *(space[k] for k in extras)):
        params = tuple(zip(extras, values))
        try:
            check_model_args(arch, blocks, channels, params)
            if arch not in MODELS:
                probe_net(arch, blocks, channels, params)
        except ConfigError as exc:
            raise _fail(where, f"[space].{exc.field}", str(exc)) from None
