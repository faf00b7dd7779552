"""A study's questions answered at the full budget, each step with its noise.

A question (search.questions; the study run's `questions` param holds them as JSON) is a slice of the
space: `vary` (and `along`) take every value, `fixed` keys hold one. Each cell of the slice is answered
by its best trial among those that reached the full budget (each point at its best lr); a cell none of
whose trials got there is left out and named, never filled by a rung value. Consecutive points along
`vary` make the steps (depth 8 -> 16, width 64 -> 128, refiner -> residual), each a paired bootstrap
gain over the val images (reports.noise) when both points have per-image values, else the bare
difference with no interval (older runs).

Pure: rows in, answers out. Used by the report (reports/figures_effects.py) and by `bench search`, which
checks each step's direction against the full grid's.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .noise import Gain, gain, unit_of


@dataclass(frozen=True)
class Point:
    cell: tuple  # ((key, value), ...) of vary, along and the fixed keys
    name: str  # the run that answers it
    value: float  # its objective at its best epoch
    lr: float
    images: tuple | None = None  # per-image objective values, None when not kept

    def get(self, key: str):
        return dict(self.cell).get(key)


@dataclass(frozen=True)
class Step:
    question: str
    along: object  # the `along` value this step is at (None without one)
    low_value: object  # the vary value stepped from
    high_value: object  # ... and to
    delta: float  # how much better `high_value`'s point is, in the objective's unit (positive: better)
    gain: Gain | None  # with its 95% interval, when both points kept per-image values

    @property
    def direction(self) -> str:
        """"+" (the step helps beyond noise), "-" (hurts beyond noise) or "tied"; without per-image
        values the bare sign ("+?"/"-?": no noise known)."""
        if self.gain is not None:
            return {"better": "+", "worse": "-", "tied": "tied"}[self.gain.verdict]
        return "+?" if self.delta > 0 else "-?"


@dataclass
class Answer:
    question: dict  # {"name", "vary", "along", "fixed"}
    points: list[Point] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    left_out: list[tuple] = field(default_factory=list)  # cells with no full-budget trial


def parse(param: str | None) -> tuple[list[dict], int, bool]:
    """The study run's `questions` param -> (questions, choose_at, ask); ([], 0, False) when absent."""
    if not param:
        return [], 0, False
    try:
        raw = json.loads(param)
    except json.JSONDecodeError:
        return [], 0, False
    return list(raw.get("questions", [])), int(raw.get("choose_at", 0)), bool(raw.get("ask", True))


def delta_of(better: float, worse: float, metric: str, mode: str) -> float:
    """How much better `better` is than `worse` in the objective's unit (dB of mean MSE for val/mse)."""
    if metric == "val/mse":
        return 10 * math.log10(worse / better) if better > 0 and worse > 0 else math.nan
    return (better - worse) if mode == "max" else (worse - better)


def answer(question: dict, rows: list[dict], space: dict[str, list], metric: str, mode: str) -> Answer:
    """`rows`: one per trial, with its config keys, `name`, `value` (objective at its best epoch), `lr`,
    `full` (it reached the full budget), `images` (per-image objective values or None). `space`: each
    key's values in the study's order (the order points are stepped through)."""
    keys = [k for k in (question["vary"], question.get("along") or "") if k]
    fixed = question.get("fixed", {})
    on_slice = [r for r in rows if all(r.get(k) == v for k, v in fixed.items())]
    out = Answer(question)
    sign = -1 if mode == "min" else 1
    for combo in _product([space[k] for k in keys]):
        cell = tuple(zip(keys, combo)) + tuple(sorted(fixed.items()))
        mine = [r for r in on_slice if all(r.get(k) == v for k, v in zip(keys, combo))]
        full = [r for r in mine if r.get("full") and math.isfinite(r["value"])]
        if not full:
            out.left_out.append(cell)
            continue
        best = max(full, key=lambda r: sign * r["value"])
        images = tuple(best["images"]) if best.get("images") else None
        out.points.append(Point(cell, best["name"], best["value"], best.get("lr", math.nan), images))
    along = question.get("along") or ""
    for at in (space[along] if along else [None]):
        line = [p for p in out.points if along == "" or p.get(along) == at]
        order = {v: i for i, v in enumerate(space[question["vary"]])}
        line.sort(key=lambda p: order[p.get(question["vary"])])
        for low, high in zip(line, line[1:]):
            g = None
            if low.images and high.images and len(low.images) == len(high.images):
                g = gain(high.images, low.images, metric, mode)
            out.steps.append(Step(question["name"], at, low.get(question["vary"]), high.get(question["vary"]),
                                  delta_of(high.value, low.value, metric, mode), g))
    return out


def _product(lists: list[list]) -> list[tuple]:
    out: list[tuple] = [()]
    for values in lists:
        out = [(*p, v) for p in out for v in values]
    return out


def step_text(step: Step, metric: str, along: str = "") -> str:
    """`64 -> 128: +0.12 dB [+0.05, +0.19]` or `... tied within noise (+0.01 dB [-0.03, +0.05])`."""
    where = f" (at {along + ' ' if along else ''}{step.along})" if step.along is not None else ""
    head = f"{step.low_value} -> {step.high_value}{where}"
    if step.gain is None:
        unit = unit_of(metric)
        return f"{head}: {step.delta:+.3f}{(' ' + unit) if unit else ''} (no per-image values: noise unknown)"
    if step.gain.verdict == "tied":
        return f"{head}: tied within noise ({step.gain.text()})"
    return f"{head}: {step.gain.text()}"
