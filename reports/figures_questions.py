"""The study's questions (its [questions]: refiner vs residual, depth, width), answered at the full
budget with their noise (reports/answers.py).

Each point is the best full-budget trial of its cell (best lr per point): a finished trial, or a pruned
one the audit resumed to the end. It is drawn as its gain over the study's bicubic baseline on the same
val images, with the 95% paired bootstrap interval as an error bar. A cell no trial of which reached the
full budget is left out, and the caption names it: a rung value never stands in, budgets never mix.
Each step (8 -> 16 blocks, refiner -> residual) is written with its interval, or "tied within noise".
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from . import analysis as an
from .answers import Answer, answer, delta_of, step_text
from .figure_base import FigureUnavailable, arch_color, finish
from .noise import gain, unit_of

LABELS = {"arch": "architecture", "blocks": "blocks (residual blocks)", "channels": "channels (feature width)"}


def question_rows(trials: pd.DataFrame, audits: pd.DataFrame | None, images: dict[str, dict],
                  metric: str) -> list[dict]:
    """One row per run that may answer a cell: every trial (full: it finished), and every audit run
    that ran to its end (full, with its pruned trial's config). `images`: run id -> VAL_IMAGES."""
    rows = []
    for _, t in trials.iterrows():
        value = float(t.get(metric, math.nan))
        rows.append({"name": t["name"], "run_id": t["run_id"], "study": t["study"], "arch": t["arch"],
                     "blocks": _int(t.get("blocks")), "channels": _int(t.get("channels")), "lr": t.get("lr"),
                     "value": value, "full": t["status"] in an.FINISHED and math.isfinite(value),
                     "images": (images.get(t["run_id"]) or {}).get(metric)})
    if audits is not None and not audits.empty:
        by_id = trials.set_index("run_id")
        for _, a in audits.iterrows():
            if a["status"] not in an.FINISHED or a["source_run_id"] not in by_id.index:
                continue
            source = by_id.loc[a["source_run_id"]]
            value = float(a.get(metric, math.nan))  # audit rows carry every val metric (reports.load)
            rows.append({"name": a["name"], "run_id": a["run_id"], "study": a["study"], "arch": source["arch"],
                         "blocks": _int(source.get("blocks")), "channels": _int(source.get("channels")),
                         "lr": source.get("lr"), "value": value, "full": math.isfinite(value),
                         "images": (images.get(a["run_id"]) or {}).get(metric)})
    return rows


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def question_figure(question: dict, rows: list[dict], space: dict[str, list], metric: str, mode: str,
                    bicubic: dict | None, bicubic_value: float, epochs: int) -> go.Figure:
    """One question's figure: each point's gain over bicubic with its interval; steps in the caption."""
    result = answer(question, rows, space, metric, mode)
    if len(result.points) < 2:
        named = ", ".join(_cell_words(c) for c in result.left_out) or "none"
        raise FigureUnavailable(f"{question['name']}: fewer than two points reached the full budget "
                                f"(epoch {epochs}); left out: {named}")
    unit = unit_of(metric) or metric
    ys, lows, highs, hover = [], [], [], []
    base = (bicubic or {}).get(metric)
    for p in result.points:
        if p.images and base and len(base) == len(p.images):
            g = gain(p.images, base, metric, mode)
            ys.append(g.value), lows.append(g.value - g.low), highs.append(g.high - g.value)
            hover.append(f"{p.name}: {g.text()} over bicubic")
        else:
            ys.append(delta_of(p.value, bicubic_value, metric, mode) if math.isfinite(bicubic_value) else math.nan)
            lows.append(0.0), highs.append(0.0)
            hover.append(f"{p.name}: no per-image values (noise unknown)")
    fig = go.Figure()
    vary, along = question["vary"], question.get("along") or ""
    frame = pd.DataFrame({"x": [p.get(along or vary) for p in result.points],
                          "group": [p.get(vary) if along else "" for p in result.points],
                          "y": ys, "low": lows, "high": highs, "hover": hover,
                          "lr": [p.lr for p in result.points]})
    groups = list(dict.fromkeys(frame["group"]))
    for group in groups:
        rows_g = frame[frame["group"] == group]
        error = dict(type="data", symmetric=False, array=rows_g["high"], arrayminus=rows_g["low"], visible=True)
        text = [f"{y:+.2f}" for y in rows_g["y"]]
        kwargs = dict(x=[str(x) for x in rows_g["x"]], y=rows_g["y"], error_y=error, hovertext=rows_g["hover"],
                      text=text, name=str(group) if along else question["name"])
        if along:
            colour = arch_color(group, [str(g) for g in groups]) if vary == "arch" else None
            fig.add_bar(**kwargs, marker_color=colour, textposition="outside", cliponaxis=False)
        else:
            fig.add_scatter(**kwargs, mode="lines+markers+text", textposition="top right", cliponaxis=False)
    fig.update_layout(barmode="group", showlegend=bool(along))
    fig.update_xaxes(title_text=LABELS.get(along or vary, along or vary), type="category")
    fig.update_yaxes(title_text=f"gain over bicubic ({unit}), at epoch {epochs}", zeroline=True)
    fixed = ", ".join(f"{k} {v}" for k, v in question.get("fixed", {}).items())
    title = (f"{question['name'].capitalize()}: {LABELS.get(vary, vary)}"
             + (f" at each {along}" if along else "") + (f", {fixed}" if fixed else "")
             + f" (full budget: epoch {epochs}; best lr per point)")
    return finish(fig, title, _caption(result, metric, epochs, len(base) if base else 0), budget_epoch=epochs,
                  steps=[{"along": s.along, "from": s.low_value, "to": s.high_value, "direction": s.direction,
                          "delta": s.delta, **({"gain": s.gain.as_dict()} if s.gain else {})} for s in result.steps],
                  points=[p.name for p in result.points], left_out=[_cell_words(c) for c in result.left_out])


def _caption(result: Answer, metric: str, epochs: int, images: int) -> str:
    vary = result.question["vary"]
    along = result.question.get("along") or ""
    steps = "; ".join(step_text(s, metric, along) for s in result.steps) or "no step"
    noise = (f"Error bars and intervals: 95% paired bootstrap (BCa) over the {images} val images. A bar is a "
             "point's gain over bicubic; a step pairs its two points image by image, so it can be surer than the "
             "bars' overlap suggests." if images else "No per-image values were logged, so no interval is known.")
    text = f"Every point reached the full budget (epoch {epochs}), at its best lr. Steps in {vary}: {steps}. {noise}"
    if result.left_out:
        text += (" Left out, no trial of it reached the full budget: "
                 + ", ".join(_cell_words(c) for c in result.left_out) + ".")
    return text


def _cell_words(cell: tuple) -> str:
    return " ".join(f"{k} {v}" if k != "arch" else str(v) for k, v in cell)


def space_of(trials: pd.DataFrame) -> dict[str, list]:
    """Each key's values in the order a step goes through them (sorted; arch: refiner before residual,
    the original study's baseline first)."""
    out = {}
    for key in ("arch", "blocks", "channels"):
        values = [v for v in trials[key].dropna().unique()]
        out[key] = sorted(values, key=lambda v: (v != "refiner", v)) if key == "arch" else sorted(int(v) for v in values)
    return out

