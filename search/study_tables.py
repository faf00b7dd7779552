"""The small tables of a study file (search.study): [study] (its name, data and folders), [faults], and
`[train] loss`, which is the space's loss with one value; each checked, a StudyError naming the field."""
from __future__ import annotations

from typing import Any

from search.study_space import _fail
from search.study_space import typed as _typed
from sr_core.data import CROPS
from sr_core.losses import LOSSES


def faults_table(table: Any, where: str) -> dict[str, str]:
    from sr_core.faults import parse_fault
    if not isinstance(table, dict):
        raise _fail(where, "[faults]", f"expected a table of run name = fault, got {table!r}")
    for name, spec in table.items():
        _typed(spec, str, where, f"[faults].{name}")
        try:
            parse_fault(spec)
        except ValueError as exc:
            raise _fail(where, f"[faults].{name}", str(exc)) from None
    return dict(table)


_HEAD = ("name", "description", "data", "val_data", "crops", "full_val", "full_val_every")


def head_table(raw: dict, where: str, default_name: str) -> dict[str, Any]:
    head = raw.get("study", {})
    for key in head:
        if key not in _HEAD:
            raise _fail(where, f"[study].{key}", f"unknown field; known fields: {sorted(_HEAD)}")
    crops = _typed(head.get("crops", ""), str, where, "[study].crops")
    if crops not in ("", *CROPS):
        raise _fail(where, "[study].crops", f"one of {list(CROPS)}, got {crops!r}")
    name = _typed(head.get("name", default_name), str, where, "[study].name")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise _fail(where, "[study].name", f"use letters, digits, '-', '_' or '.', got {name!r}")
    every = _typed(head.get("full_val_every", 1), int, where, "[study].full_val_every")
    if every < 1:
        raise _fail(where, "[study].full_val_every", f"must be >= 1 (epochs between scorings), got {every!r}")
    return {"name": name, "description": _typed(head.get("description", ""), str, where, "[study].description"),
            "data": _typed(head.get("data", "embedded"), str, where, "[study].data"),
            "val_data": _typed(head.get("val_data", ""), str, where, "[study].val_data"), "crops": crops,
            "full_val": _typed(head.get("full_val", ""), str, where, "[study].full_val"), "full_val_every": every}


def train_loss(raw: dict, space_raw: dict, where: str) -> dict:
    """`[train] loss` fixes the loss for the study: it is the space's loss with one value ([space] loss
    searches it). Moved out of raw's [train], into the space it returns."""
    train = raw.get("train")
    if not isinstance(train, dict) or "loss" not in train:
        return space_raw
    if "loss" in space_raw:
        raise _fail(where, "[train].loss", "also given as [space].loss: give it once ([space] to search it)")
    if train["loss"] not in LOSSES:
        raise _fail(where, "[train].loss", f"one of {list(LOSSES)} ([space] to search several), got {train['loss']!r}")
    raw["train"] = {k: v for k, v in train.items() if k != "loss"}
    return {**space_raw, "loss": train["loss"]}
