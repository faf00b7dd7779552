"""The figures of the hyperparameters' effects: refiner against residual at equal size, depth, width.

Differences of a few tenths of a dB are the point of these figures, so they are drawn as the gain over
the study's own bicubic baseline (bicubic/val_mse, val_psnr, val_ssim on its val set), with each value
written on its bar or point; without a logged baseline, as raw values on axes that span the measured
values (never from 0). Where finished trials do not cover a comparison, every trial is compared at the
first ASHA rung's epoch (an equal budget, which pruned trials reached too), and the figure says so in
the axis titles and beside every number, not only in its caption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import analysis as an
from .figure_base import MSE, PSNR, SSIM, VAL_METRICS, FigureUnavailable, arch_color, finish, need_finished

BICUBIC = {"val/mse": "bicubic/val_mse", "val/psnr": "bicubic/val_psnr", "val/ssim": "bicubic/val_ssim"}
SPREAD_NOTE = " (axis spans the measured values)"


@dataclass(frozen=True)
class Panel:
    """One of a figure's three panels: the column it plots, its axis title, how a value is written."""

    column: str
    label: str
    text: str  # a format spec for the value written on each bar or point

    def words(self, values: pd.Series, budget: int | None) -> list[str]:
        """The value written on each bar or point; at an equal budget, with the epoch beside it."""
        at = f" (epoch {budget})" if budget is not None else ""
        return [format(v, self.text) + at for v in values]


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


def _panel_title(panel: Panel, budget: int | None) -> str:
    """A panel's title: what it plots and, at an equal budget, that its values are all at that epoch."""
    return panel.label + (f"<br>all at epoch {budget} (equal budget)" if budget is not None else "")


def _finish_panels(fig: go.Figure, title: str, caption: str, panels: tuple[Panel, ...], budget: int | None,
                   why: str, **meta) -> go.Figure:
    """finish(), with what the panels measure against (meta "baseline") and the budget (meta
    "budget_epoch"). At an equal budget the title and the caption say so, and `why`; the second line
    of the panel titles gets its room."""
    if budget is not None:
        title += f", all at epoch {budget} (equal budget)"
        caption += (f" Equal budget: {why}, so every trial is compared at epoch {budget}, the first ASHA rung, "
                    "which pruned trials reached too; this is quality after equal training, not final quality.")
    fig = finish(fig, title, caption, budget_epoch=budget, baseline="bicubic" if panels is GAIN_PANELS else None, **meta)
    if budget is not None:
        fig.update_layout(margin_t=110)
    return fig


def _spread_range(values: pd.Series) -> list[float]:
    """A y range around the measured values with room for the numbers written on them."""
    low, high = float(values.min()), float(values.max())
    pad = 0.25 * (high - low) if high > low else 0.05 * abs(high) or 1.0
    return [low - pad, high + pad]


def arch_comparison(trials: pd.DataFrame, history: pd.DataFrame | None = None,
                    studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 2: val mse, psnr, ssim per architecture at each (blocks, channels) every arch has.

    Final quality where every architecture finished the size; otherwise (given the history) every
    trial at one equal budget, the first ASHA rung's epoch, which pruned trials reached too. The
    title says which: budgets are never mixed.
    """
    archs = sorted(trials["arch"].dropna().unique())
    if len(archs) < 2:
        raise FigureUnavailable(
            f"only one architecture ({', '.join(archs)}) in this report: nothing to compare. "
            "Put a refiner and a residual study into one report to see this figure."
        )
    best = an.best_per_size(an.finished(trials))
    shared = _shared_sizes(best)
    budget = None
    if shared.empty and history is not None and studies is not None:
        budget = _first_rung(studies, trials)
        best = an.best_per_size(_at_epoch(trials, history, budget), require_finished=False) if budget else best
        shared = _shared_sizes(best)
    if shared.empty:
        why = "no (blocks, channels) size was finished by every architecture"
        raise FigureUnavailable(why + (f", nor reached epoch {budget} (the first rung) by each" if budget else ""))
    best = best.set_index(["blocks", "channels"]).loc[shared].reset_index()
    best["size"] = "b" + best["blocks"].astype(str) + " c" + best["channels"].astype(str)
    best, panels = against_bicubic(best, studies)
    fig = _arch_bars(best, panels, archs, budget)
    psnr = panels[1].column
    wide = best.pivot(index="size", columns="arch", values=psnr)
    mean = wide.mean().sort_values(ascending=False)
    a, b = mean.index[0], mean.index[1]  # a: the arch with the higher mean PSNR
    wins = int((wide[a] > wide[b]).sum())
    where = "both finished" if budget is None else f"both reached epoch {budget}"
    what = "PSNR gain over bicubic" if psnr == "gain/psnr" else "PSNR"
    caption = (
        f"At the {len(wide)} size(s) {where} (best lr per size), {a} has the higher {what} at "
        f"{wins} of {len(wide)}; on average {a} − {b} = {(wide[a] - wide[b]).mean():+.2f} dB."
    )
    title = f"{' vs '.join(a.capitalize() for a in archs)} at equal blocks and channels"
    why = "not every size finished for every architecture"
    return _finish_panels(fig, title, caption, panels, budget, why, sizes=list(wide.index))


def _arch_bars(best: pd.DataFrame, panels: tuple[Panel, ...], archs: list[str], budget: int | None) -> go.Figure:
    """Grouped bars per size, one panel per metric, each bar with its value written on it."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[_panel_title(p, budget) for p in panels])
    for arch, rows in best.groupby("arch"):
        for col, panel in enumerate(panels, start=1):
            fig.add_bar(
                x=rows["size"], y=rows[panel.column], name=arch, legendgroup=arch, showlegend=col == 1,
                marker_color=arch_color(arch, archs), hovertext=rows["name"], text=panel.words(rows[panel.column], budget),
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


def _first_rung(studies: pd.DataFrame, trials: pd.DataFrame) -> int | None:
    grace = pd.to_numeric(studies["grace_period"], errors="coerce").dropna()
    return int(grace.max()) if not grace.empty else None


def _at_epoch(trials: pd.DataFrame, history: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """Each trial's val metrics at `epoch` (trials that did not reach it are left out)."""
    at = history[history["epoch"] == epoch].drop_duplicates("run_id", keep="last").set_index("run_id")
    out = trials[trials["run_id"].isin(at.index)].copy()
    for metric, _ in VAL_METRICS:
        out[metric] = out["run_id"].map(at[metric]).astype(float)
    return out


def _steps(df: pd.DataFrame, x: str, psnr: str = "val/psnr") -> str:
    """'+0.30 dB from 2→4, +0.10 dB from 4→8 blocks' for one arch's series."""
    df = df.sort_values(x)
    xs, ps = df[x].to_numpy(), df[psnr].to_numpy()
    steps = [f"{ps[i + 1] - ps[i]:+.2f} dB from {xs[i]}→{xs[i + 1]}" for i in range(len(xs) - 1)]
    return f"{', '.join(steps)} {x}" if steps else "a single point"


def _effect(trials: pd.DataFrame, fixed: str, value: int | None, varied: str, label: str,
            history: pd.DataFrame | None = None, studies: pd.DataFrame | None = None) -> go.Figure:
    """Final quality of finished trials; when they cover fewer than 3 values of `varied` at any one
    `fixed` value (and the history is given), every trial at the first ASHA rung's epoch instead,
    which pruned trials reached too, when that covers more. The title says which: never mixed."""
    done = need_finished(trials)
    pool, budget, covered = done, None, an.coverage(done, fixed, varied)
    if value is None and history is not None and studies is not None and covered < 3:
        rung = _first_rung(studies, trials)
        at = _at_epoch(trials, history, rung) if rung else None
        if at is not None and an.coverage(at, fixed, varied, False) > covered:
            pool, budget = at, rung
    choose = an.default_width if fixed == "channels" else an.default_depth
    chosen = choose(pool, budget is None) if value is None else value
    if chosen is None:
        raise FigureUnavailable(f"no single {fixed} value has finished trials at two or more {varied} values")
    best = an.best_per_size(pool, require_finished=budget is None)
    best = best[best[fixed] == chosen]
    if best[varied].nunique() < 2:
        raise FigureUnavailable(f"at {fixed} = {chosen}, fewer than two {varied} values finished")
    best, panels = against_bicubic(best, studies)
    fig = _effect_lines(best, panels, varied, label, budget)
    words = "; ".join(f"{arch}: {_steps(rows, varied, panels[1].column)}" for arch, rows in best.groupby("arch"))
    default = " (the default: the most coverage)" if value is None else ""
    caption = f"At {fixed} = {chosen}{default}, best lr per point. PSNR change per step — {words}."
    title = f"{varied.capitalize()} effect at {chosen} {fixed}"
    why = f"the finished trials cover fewer than 3 {varied} values at any {fixed}"
    return _finish_panels(fig, title, caption, panels, budget, why, **{fixed: int(chosen)})


def _effect_lines(best: pd.DataFrame, panels: tuple[Panel, ...], varied: str, label: str,
                  budget: int | None) -> go.Figure:
    """One line per arch against `varied`, one panel per metric, each point with its value written on it."""
    archs = sorted(best["arch"].unique())
    fig = make_subplots(rows=1, cols=3, subplot_titles=[_panel_title(p, budget) for p in panels])
    for i, (arch, rows) in enumerate(best.groupby("arch")):
        rows = rows.sort_values(varied)
        for col, panel in enumerate(panels, start=1):
            fig.add_scatter(  # one arch's values above its points, the next one's below: they do not collide
                x=rows[varied], y=rows[panel.column], mode="lines+markers+text", name=arch, hovertext=rows["name"],
                text=panel.words(rows[panel.column], budget), textposition=("top center", "bottom center")[i % 2],
                cliponaxis=False, legendgroup=arch, showlegend=col == 1, line_color=arch_color(arch, archs), row=1, col=col,
            )  # fmt: skip
    for col, panel in enumerate(panels, start=1):
        fig.update_yaxes(title_text=panel.label, range=_spread_range(best[panel.column]), row=1, col=col)
        fig.update_xaxes(title_text=label, type="log", tickvals=sorted(best[varied].unique()), row=1, col=col)
    return fig


def depth_effect(trials: pd.DataFrame, channels: int | None = None, history: pd.DataFrame | None = None,
                 studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: val metrics against blocks at one width (default: the most depth coverage)."""
    return _effect(trials, "channels", channels, "blocks", "blocks (residual blocks, log scale)", history, studies)


def width_effect(trials: pd.DataFrame, blocks: int | None = None, history: pd.DataFrame | None = None,
                 studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 5: val metrics against channels at one depth (default: the most width coverage)."""
    return _effect(trials, "blocks", blocks, "channels", "channels (feature width, log scale)", history, studies)


