"""A study's questions: the comparisons its report must answer at the full budget.

    [questions]
    choose_at = 12                                   # the rung where each point's lr is chosen
    depth = {vary = "blocks", fixed = {channels = 712}}
    width = {vary = "channels", fixed = {blocks = 16}}
    arch = {vary = "arch", along = "blocks", fixed = {channels = 32}}

A question is a slice of [space]: `vary` (and `along`, a second axis the comparison repeats over) take
every value of the space, `fixed` holds other keys at one value each, and every key left (lr, eta_min)
is free: each point of the slice (a "cell") is answered by its best config over the free keys. Under
synchronous halving (search.tune.scheduler) every config of a cell is kept up to the rung `choose_at`
(where the free keys are chosen: an lr ranking at the first rung is noise, BENCHMARKS.md), from there
the cell's best at each rung, so each cell reaches the full budget with its best lr and the report draws
full-budget values only. `ask = false` (or `sr-search run --no-questions`) turns them off.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from search.errors import StudyError

FIXED_SPACE = ("arch", "blocks", "channels")  # what a question may vary or hold; lr and eta_min stay free


@dataclass(frozen=True)
class Question:
    name: str
    vary: str
    along: str = ""
    fixed: tuple[tuple[str, Any], ...] = ()  # ((key, value), ...)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys a cell of this question pins: vary, along and the fixed ones."""
        return tuple(k for k in (self.vary, self.along) if k) + tuple(k for k, _ in self.fixed)

    def holds(self, config: dict) -> bool:
        return all(config.get(k) == v for k, v in self.fixed)

    def cell(self, config: dict) -> tuple | None:
        """The cell of `config` in this question (its values of `keys`), or None when it is off the slice."""
        return tuple(sorted((k, config.get(k)) for k in self.keys)) if self.holds(config) else None

    def as_dict(self) -> dict:
        return {"name": self.name, "vary": self.vary, "along": self.along, "fixed": dict(self.fixed)}


@dataclass(frozen=True)
class Questions:
    items: tuple[Question, ...] = ()
    choose_at: int = 0  # the epoch (a rung) where a cell's free keys are chosen; 0: the schedule's second rung
    ask: bool = True

    @property
    def active(self) -> tuple[Question, ...]:
        return self.items if self.ask else ()

    def cells(self, config: dict) -> list[tuple]:
        """Every question cell `config` lies in (a cell shared by two questions counts once)."""
        return list(dict.fromkeys(c for q in self.active if (c := q.cell(config)) is not None))

    def to_json(self) -> str:
        """The questions as the study run's `questions` param (what the report reads)."""
        return json.dumps({"choose_at": self.choose_at, "ask": self.ask,
                           "questions": [q.as_dict() for q in self.items]}, sort_keys=True)

    def off(self) -> "Questions":
        return dataclasses.replace(self, ask=False)


def choose_epoch(questions: Questions, rungs: list[int]) -> int:
    """The rung where cells choose their lr: `choose_at`, else the second rung (the first when there is one)."""
    if questions.choose_at:
        return questions.choose_at
    return rungs[1] if len(rungs) > 1 else (rungs[0] if rungs else 0)


def parse_questions(table: Any, where: str, space: dict) -> Questions:
    """[questions] of a study file; a StudyError names the field that is wrong."""
    if not isinstance(table, dict):
        raise StudyError(f"{where}: [questions]: expected a table, got {table!r}")
    items, choose_at, ask = [], 0, True
    for name, spec in table.items():
        field_name = f"[questions].{name}"
        if name == "choose_at":
            if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
                raise StudyError(f"{where}: {field_name}: expected an epoch >= 1, got {spec!r}")
            choose_at = spec
            continue
        if name == "ask":
            if not isinstance(spec, bool):
                raise StudyError(f"{where}: {field_name}: expected true or false, got {spec!r}")
            ask = spec
            continue
        items.append(_question(name, spec, where, field_name, space))
    return Questions(tuple(items), choose_at, ask)


def _question(name: str, spec: Any, where: str, field_name: str, space: dict) -> Question:
    if not isinstance(spec, dict):
        raise StudyError(f"{where}: {field_name}: expected a table {{vary = KEY, fixed = {{...}}}}, got {spec!r}")
    unknown = set(spec) - {"vary", "along", "fixed"}
    if unknown:
        raise StudyError(f"{where}: {field_name}.{sorted(unknown)[0]}: unknown field; known: along, fixed, vary")
    vary, along, fixed = spec.get("vary"), spec.get("along", ""), spec.get("fixed", {})
    for key, value in (("vary", vary), ("along", along)):
        if key == "along" and value == "":
            continue
        if value not in FIXED_SPACE:
            raise StudyError(f"{where}: {field_name}.{key}: one of {FIXED_SPACE}, got {value!r}")
        if len(space[value]) < 2:
            raise StudyError(f"{where}: {field_name}.{key}: [space].{value} has one value: nothing to compare")
    if along == vary:
        raise StudyError(f"{where}: {field_name}.along: must differ from vary ({vary!r})")
    if not isinstance(fixed, dict):
        raise StudyError(f"{where}: {field_name}.fixed: expected a table of KEY = value, got {fixed!r}")
    pinned = []
    for key, value in fixed.items():
        if key not in FIXED_SPACE or key in (vary, along):
            raise StudyError(f"{where}: {field_name}.fixed.{key}: one of {FIXED_SPACE} other than vary and along")
        if value not in space[key]:
            raise StudyError(f"{where}: {field_name}.fixed.{key}: {value!r} is not in [space].{key} {list(space[key])}")
        pinned.append((key, value))
    loose = [k for k in FIXED_SPACE if k not in (vary, along, *fixed) and len(space[k]) > 1]
    if loose:
        raise StudyError(f"{where}: {field_name}.fixed: hold {loose[0]} at one value (its [space] has "
                         f"{list(space[loose[0]])}); only lr and eta_min are chosen per point")
    return Question(name, vary, along, tuple(pinned))


def slice_configs(questions: Questions, grid: list[dict]) -> dict[tuple, list[dict]]:
    """Each cell of the questions -> the grid's configs in it (the ones carried to the full budget)."""
    out: dict[tuple, list[dict]] = {}
    for config in grid:
        for cell in questions.cells(config):
            out.setdefault(cell, []).append(config)
    return out

