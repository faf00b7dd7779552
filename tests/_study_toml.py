"""A small study TOML from Python values, for the tests that need one (importable from every test folder:
tests/ is on sys.path).

    study_toml(space={"arch": "residual", "blocks": [1, 2], "lr": [1e-3]}, search={"sampler": "grid"})

gives

    [space]
    arch = "residual"
    blocks = [1, 2]
    lr = [1e-3]
    [search]
    sampler = "grid"

Tables in the order given, fields in their dict's order, one `key = value` a line: a test can edit the
text with str.replace ("lr = [1e-3]", "[train]"). A table or field given as None is left out.
"""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import PurePath

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value) -> str:
    """`value` as TOML: strings (and paths) quoted, small floats as 1e-3, lists as [a, b], dicts inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and math.isfinite(value) and abs(value) < 1e-2:
            return f"{Decimal(repr(value)):e}"  # 0.001 -> 1e-3, 2.5e-05 -> 2.5e-5: as a person writes it
        return repr(value)  # 0.0, 0.25, 1e+20, inf, nan: valid TOML as they are
    if isinstance(value, (str, PurePath)):
        return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no TOML for {value!r} ({type(value).__name__})")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def study_toml(**tables: dict | None) -> str:
    """A study file's text: one [table] per keyword (study, search, space, train, pruner, resources,
    questions, faults, ...), its fields from the dict."""
    lines = []
    for name, fields in tables.items():
        if fields is None:
            continue
        lines.append(f"[{name}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in fields.items() if v is not None]
    return "\n".join(lines) + "\n"
