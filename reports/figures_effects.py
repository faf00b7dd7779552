"""The figures of the hyperparameters' effects: refiner against residual at equal size, depth, width,
and any numeric parameter of a user's arch (`param_effect`).

Differences of a few tenths of a dB are the point of these figures, so they are drawn as the gain over
the study's own bicubic baseline (bicubic/val_mse, val_psnr, val_ssim on its val set), with each value
written on its bar or point; without a logged baseline, as raw values on axes that span the measured
values (never from 0). Only trials that reached the full budget are drawn: where they do not cover a
comparison the figure is not drawn and says so; a pruned trial's rung value never stands in (early in
training every net still equals bicubic, so a rung comparison shows noise where the finding is). A
study that names its [questions] gets them answered at the full budget, with their noise, instead
(reports/figures_questions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import analysis as an
from .figure_base import MSE, PSNR, SSIM, FigureUnavailable, arch_color, finish, need_finished

BICUBIC = {"val/mse": "bicubic/val_mse", "val/psnr": "bicubic/val_psnr", "val/ssim": "bicubic/val_ssim"}
SPREAD_NOTE = " (axis spans the measured values)"


@dataclass(frozen=True)
class Panel:
    """One of a figure's three panels: the column it plots, its axis title, how a value is written."""

    column: str
    label: str
    text: str  # a format spec for the value written on each bar or point

    def words(self, values: pd.Series) -> list[str]:
        """The value written on each bar or point."""
        return [format(v, self.text) for v in values]


GAIN_PANELS = (Panel("gain/mse", "val MSE below bicubic (%)", ".1f"),
               Panel("gain/psnr", "PSNR gain over bicubic (dB)", "+.2f"),
               Panel("gain/ssim", "SSIM gain over bicubic", "+.3f"))
RAW_PANELS = (Panel("val/mse", MSE + SPREAD_NOTE, ".5f"), Panel("val/psnr", PSNR + SPREAD_NOTE, ".2f"),
              Panel("val/ssim", SSIM + SPREAD_NOTE, ".4f"))


def against_bicubic(rows: pd.DataFrame, studies: pd.DataFrame | None) -> tuple[pd.DataFrame, tuple[Panel, ...]]:
    """The rows with their gain over their own study's bicubic baseline, and the panels that plot it:
    MSE below bicubic (%), PSNR and SSIM gain. Where a study of the rows logged no baseline, the raw
    values and panels whose axes span them (a figure never mixes the two)."""
    if studies is None or rows.empty:
        return rows, RAW_PANELS
    baseline = studies.set_index("study").reindex(rows["study"])
    if not all(np.isfinite(baseline[col].astype(float)).all() for col in BICUBIC.values()):
        return rows, RAW_PANELS
    mse, psnr, ssim = (baseline[BICUBIC[m]].to_numpy(dtype=float) for m in ("val/mse", "val/psnr", "val/ssim"))
    return rows.assign(**{"gain/mse": 100.0 * (1.0 - rows["val/mse"].to_numpy(dtype=float) / mse),
                          "gain/psnr": rows["val/psnr"].to_numpy(dtype=float) - psnr,
                          "gain/ssim": rows["val/ssim"].to_numpy(dtype=float) - ssim}), GAIN_PANELS


def _finish_panels(fig: go.Figure, title: str, caption: str, panels: tuple[Panel, ...], **meta) -> go.Figure:
    """finish(), with what the panels measure against (meta "baseline"): every value is a full-budget one."""
    return finish(fig, title, caption, budget_epoch=None, baseline="bicubic" if panels is GAIN_PANELS else None, **meta)


def _spread_range(values: pd.Series) -> list[float]:
    """A y range around the measured values with room for the numbers written on them."""
    low, high = float(values.min()), float(values.max())
    pad = 0.25 * (high - low) if high > low else 0.05 * abs(high) or 1.0
    return [low - pad, high + pad]


def arch_comparison(trials: pd.DataFrame, studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 2: val mse, psnr, ssim per architecture at each (blocks, channels) every arch finished
    (best lr per size); not drawn when no size was finished by every architecture."""
    archs = sorted(trials["arch"].dropna().unique())
    if len(archs) < 2:
        raise FigureUnavailable(
            f"only one architecture ({', '.join(archs)}) in this report: nothing to compare. "
            "Put a refiner and a residual study into one report to see this figure."
        )
    best = an.best_per_size(an.finished(trials))
    shared = _shared_sizes(best)
    if shared.empty:
        raise FigureUnavailable("no (blocks, channels) size was finished by every architecture, and values of "
                                "pruned trials at a rung never stand in for the full budget")
    best = best.set_index(["blocks", "channels"]).loc[shared].reset_index()
    best["size"] = "b" + best["blocks"].astype(str) + " c" + best["channels"].astype(str)
    best, panels = against_bicubic(best, studies)
    fig = _arch_bars(best, panels, archs)
    psnr = panels[1].column
    wide = best.pivot(index="size", columns="arch", values=psnr)
    mean = wide.mean().sort_values(ascending=False)
    a, b = mean.index[0], mean.index[1]  # a: the arch with the higher mean PSNR
    wins = int((wide[a] > wide[b]).sum())
    what = "PSNR gain over bicubic" if psnr == "gain/psnr" else "PSNR"
    caption = (
        f"At the {len(wide)} size(s) both finished (best lr per size), {a} has the higher {what} at "
        f"{wins} of {len(wide)}; on average {a} − {b} = {(wide[a] - wide[b]).mean():+.2f} dB."
    )
    title = f"{' vs '.join(a.capitalize() for a in archs)} at equal blocks and channels"
    return _finish_panels(fig, title, caption, panels, sizes=list(wide.index))


def _arch_bars(best: pd.DataFrame, panels: tuple[Panel, ...], archs: list[str]) -> go.Figure:
    """Grouped bars per size, one panel per metric, each bar with its value written on it."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p.label for p in panels])
    for arch, rows in best.groupby("arch"):
        for col, panel in enumerate(panels, start=1):
            fig.add_bar(
                x=rows["size"], y=rows[panel.column], name=arch, legendgroup=arch, showlegend=col == 1,
                marker_color=arch_color(arch, archs), hovertext=rows["name"], text=panel.words(rows[panel.column]),
                textposition="outside", cliponaxis=False, row=1, col=col,
            )  # fmt: skip
    for col, panel in enumerate(panels, start=1):
        spread = {} if panels is GAIN_PANELS else {"range": _spread_range(best[panel.column])}
        fig.update_yaxes(title_text=panel.label, row=1, col=col, **spread)
        fig.update_xaxes(title_text="size (blocks, channels)", row=1, col=col)
    fig.update_layout(barmode="group", uniformtext=dict(minsize=10, mode="show"))  # small bars keep legible numbers
    return fig


def _shared_sizes(best: pd.DataFrame) -> pd.Index:
    if best.empty or best["arch"].nunique() < 2:
        return pd.Index([])
    sizes = best.groupby(["blocks", "channels"])["arch"].nunique()
    return sizes[sizes == best["arch"].nunique()].index


def _steps(df: pd.DataFrame, x: str, psnr: str = "val/psnr") -> str:
    """'+0.30 dB from 2→4, +0.10 dB from 4→8 blocks' for one arch's series."""
    df = df.sort_values(x)
    xs, ps = df[x].to_numpy(), df[psnr].to_numpy()
    steps = [f"{ps[i + 1] - ps[i]:+.2f} dB from {xs[i]}→{xs[i + 1]}" for i in range(len(xs) - 1)]
    return f"{', '.join(steps)} {x}" if steps else "a single point"


def _effect(trials: pd.DataFrame, fixed: str, value: int | None, varied: str, label: str,
            studies: pd.DataFrame | None = None) -> go.Figure:
    """Final quality of finished trials along `varied`, every other size column (`an.shape_columns`:
    blocks, channels, a user arch's numeric parameters) held at one value: `fixed` at `value`, the
    rest (and `fixed` when `value` is None) at the value with the most coverage."""
    done = need_finished(trials)
    held = {}
    for col in (c for c in an.shape_columns(done) if c != varied):
        chosen = value if col == fixed and value is not None else an.coverage_choice(done, col, varied, True)
        if chosen is None:
            raise FigureUnavailable(f"no single {col} value has finished trials at two or more {varied} values")
        done = done[(done[col] == chosen) | done[col].isna()]  # NaN: a net without that parameter
        held[col] = chosen
    best = an.best_per_size(done)
    at = ", ".join(f"{k} = {_plain(v)}" for k, v in held.items())
    if best[varied].nunique() < 2:
        raise FigureUnavailable(f"at {at}, fewer than two {varied} values finished")
    best, panels = against_bicubic(best, studies)
    fig = _effect_lines(best, panels, varied, label)
    words = "; ".join(f"{arch}: {_steps(rows, varied, panels[1].column)}" for arch, rows in best.groupby("arch"))
    default = " (the default: the most coverage)" if value is None or len(held) > 1 else ""
    caption = f"At {at}{default}, best lr per point, finished trials only. PSNR change per step — {words}."
    title = f"{varied.capitalize()} effect at " + " and ".join(f"{_plain(v)} {k}" for k, v in held.items())
    return _finish_panels(fig, title, caption, panels, **{k: _plain(v) for k, v in held.items()})


def _plain(value):
    """1.0 -> 1 (numeric params come back from MLflow as floats); other values as they are."""
    return int(value) if float(value).is_integer() else float(value)


def _effect_lines(best: pd.DataFrame, panels: tuple[Panel, ...], varied: str, label: str) -> go.Figure:
    """One line per arch against `varied`, one panel per metric, each point with its value written on it."""
    archs = sorted(best["arch"].unique())
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p.label for p in panels])
    for i, (arch, rows) in enumerate(best.groupby("arch")):
        rows = rows.sort_values(varied)
        for col, panel in enumerate(panels, start=1):
            fig.add_scatter(  # one arch's values above its points, the next one's below: they do not collide
                x=rows[varied], y=rows[panel.column], mode="lines+markers+text", name=arch, hovertext=rows["name"],
                text=panel.words(rows[panel.column]), textposition=("top center", "bottom center")[i % 2],
                cliponaxis=False, legendgroup=arch, showlegend=col == 1, line_color=arch_color(arch, archs), row=1, col=col,
            )  # fmt: skip
    for col, panel in enumerate(panels, start=1):
        fig.update_yaxes(title_text=panel.label, range=_spread_range(best[panel.column]), row=1, col=col)
        log = bool((best[varied] > 0).all())
        fig.update_xaxes(title_text=label, type="log" if log else "linear", tickvals=sorted(best[varied].unique()),
                         row=1, col=col)
    return fig


def depth_effect(trials: pd.DataFrame, channels: int | None = None, studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: val metrics against blocks at one width (default: the most depth coverage)."""
    return _effect(trials, "channels", channels, "blocks", "blocks (residual blocks, log scale)", studies)


def width_effect(trials: pd.DataFrame, blocks: int | None = None, studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 5: val metrics against channels at one depth (default: the most width coverage)."""
    return _effect(trials, "blocks", blocks, "channels", "channels (feature width, log scale)", studies)


def param_effect(trials: pd.DataFrame, param: str, studies: pd.DataFrame | None = None) -> go.Figure:
    """A user arch's numeric parameter (sr_core.archs) against val metrics, the other size columns held
    at their most-covered values (as depth and width are)."""
    return _effect(trials, param, None, param, param, studies)
