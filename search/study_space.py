"""One [space] field of a study file: a value (fixed), a list (choices) or, for lr and eta_min, a
{low, high, log} range; each checked, a StudyError naming the field (search.study)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search.errors import StudyError
from sr_core.errors import ConfigError
from sr_core.losses import LOSSES
from sr_core.models import check_model_args


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
