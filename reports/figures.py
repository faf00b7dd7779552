"""One function per figure: DataFrames in, a plotly Figure out (the effects of architecture, depth and
width are in figures_effects.py; what all figures share in figure_base.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import analysis as an
from .figure_base import (MSE, OTHER_COLORS, PSNR, SSIM, STATUS_COLORS, FigureUnavailable, arch_color, finish,
                          need_finished)
from .verdict import schedule_of

__all__ = ["FigureUnavailable", "all_curves", "anytime", "best_progress", "pareto", "parallel_coordinates",
           "pruning_validity", "runs_table", "scaling_fit"]


def runs_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The original study's runs table, best val/mse first; trials without one go last."""
    cols = ["name", "study", "runtime_s", "channels", "eta_min", "lr", "blocks", "train/mse",
            "val/mse", "val/psnr", "val/ssim", "status", "epochs_run", "max_epochs", "run_id"]  # fmt: skip
    ordered = trials.sort_values(["val/mse", "name"], na_position="last", kind="stable")
    return ordered[cols].reset_index(drop=True)


def best_progress(trials: pd.DataFrame, history: pd.DataFrame, objective: tuple[str, str]) -> go.Figure:
    """Figure 3: train/val MSE, PSNR and SSIM per epoch of the best trial (by the study's objective)."""
    best = an.best_trial(trials, objective)
    if best is None:
        raise FigureUnavailable("no trial finished (completed or early_stopped) with a val/mse yet")
    rows = history[history["run_id"] == best["run_id"]].sort_values("epoch")
    if rows.empty:
        raise FigureUnavailable(f"the best trial {best['name']} logged no per-epoch metrics")
    fig = make_subplots(rows=1, cols=3, subplot_titles=["MSE", "PSNR", "SSIM"])
    series = [("train/mse", 1, "#7f7f7f"), ("val/mse", 1, "#1f77b4"), ("val/psnr", 2, "#1f77b4"),
              ("val/ssim", 3, "#1f77b4")]  # fmt: skip
    for metric, col, colour in series:
        fig.add_scatter(x=rows["epoch"], y=rows[metric], mode="lines+markers", name=metric,
                        line_color=colour, row=1, col=col)  # fmt: skip
    for col, label in ((1, "MSE (per pixel, RGB in [0,1])"), (2, PSNR), (3, SSIM)):
        fig.update_xaxes(title_text="epoch", row=1, col=col)
        fig.update_yaxes(title_text=label, row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    title = f"Training progress of the best trial: {best['name']} ({best['study']}, {best['status']})"
    at = f"epoch {_count(best['best_epoch'])} of {_count(best['epochs_run'])}"
    return finish(fig, title, f"Best val/mse {best['val/mse']:.5f} at {at}.", run_id=best["run_id"])


def _count(value) -> str:
    return f"{value:.0f}" if np.isfinite(value) else "?"


def _rungs(studies: pd.DataFrame, max_epoch: int) -> list[int]:
    rungs: set[int] = set()
    for _, s in studies.iterrows():
        if np.isfinite(s["grace_period"]):
            rf = s["reduction_factor"] if np.isfinite(s["reduction_factor"]) else 0
            rungs.update(an.rung_epochs(int(s["grace_period"]), float(rf), max_epoch))
    return sorted(rungs)


def all_curves(trials: pd.DataFrame, history: pd.DataFrame, studies: pd.DataFrame) -> go.Figure:
    """Figure 6: every trial's val/mse per epoch; pruned ones dashed and crossed where they stopped."""
    hist = history.dropna(subset=["val/mse"])
    if hist.empty:
        raise FigureUnavailable("no trial logged a per-epoch val/mse")
    fig, seen = go.Figure(), set()
    for run_id, rows in hist.groupby("run_id", sort=False):
        status, name = rows["status"].iloc[0], rows["name"].iloc[0]
        pruned = status == "pruned"
        n, colour = len(rows), STATUS_COLORS.get(status, "#7f7f7f")
        fig.add_scatter(
            x=rows["epoch"], y=rows["val/mse"], name=status, legendgroup=status, showlegend=status not in seen,
            mode="lines+markers", line=dict(color=colour, dash="dash" if pruned else "solid", width=1.5),
            marker=dict(size=[4] * (n - 1) + [10], symbol=["circle"] * (n - 1) + ["x" if pruned else "circle"]),
            text=[f"{name} ({rows['study'].iloc[0]})"] * n, customdata=[run_id] * n,
            hovertemplate="%{text}<br>epoch %{x}<br>val/mse %{y:.5f}",
        )  # fmt: skip
        seen.add(status)
    rungs = _rungs(studies, int(hist["epoch"].max()))
    for epoch in rungs:
        fig.add_vline(x=epoch, line_dash="dot", line_color="#999", annotation_text=f"rung {epoch}")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=MSE, type="log")
    counts = trials["status"].value_counts()
    stopped = trials[trials["status"] == "pruned"]["epochs_run"].dropna().astype(int)
    caption = f"{int(counts.get('pruned', 0))} of {len(trials)} trials were pruned"
    if len(stopped):
        caption += f", after epoch(s) {', '.join(map(str, sorted(set(stopped))))}"
    schedules = sorted({schedule_of(p or {}).split(" (")[0] for p in studies.get("params", [])}) or ["the schedule"]
    caption += f"; {' / '.join(schedules)} rungs at epoch(s) {', '.join(map(str, rungs))}." if rungs else "."
    title = "Validation MSE of every trial per epoch (pruned: dashed, ✕ where stopped)"
    return finish(fig, title, caption, height=480)


def pareto(trials: pd.DataFrame) -> go.Figure:
    """Figure 7: val/mse against trial wall time and against parameter count; the front is marked."""
    done = need_finished(trials)
    scale, unit = an.time_unit(done["runtime_s"])
    done = done.assign(runtime=done["runtime_s"] / scale)
    archs = sorted(done["arch"].unique())
    fig = make_subplots(rows=1, cols=2, subplot_titles=["vs trial wall time", "vs parameter count"])
    fronts, words = {}, []
    axes = [
        ("runtime", f"trial wall time ({unit})", "wall time"),
        ("n_params", "parameters (count, log scale)", "parameters"),
    ]
    for col, (x, xlabel, what) in enumerate(axes, start=1):
        for arch, rows in done.groupby("arch"):
            fig.add_scatter(
                x=rows[x], y=rows["val/mse"], mode="markers", name=arch, legendgroup=arch, showlegend=col == 1,
                marker=dict(color=arch_color(arch, archs), size=8, opacity=0.6), text=rows["name"], row=1, col=col,
            )  # fmt: skip
        front = done[an.pareto_front(done, x, "val/mse")].sort_values(x)
        fronts[what] = list(front["name"])
        fig.add_scatter(
            x=front[x], y=front["val/mse"], mode="lines+markers", name="Pareto front", legendgroup="front",
            showlegend=col == 1, line=dict(shape="hv", color="#111", width=1.5), text=front["name"],
            marker=dict(size=13, symbol="circle-open", color="#111", line_width=2), row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text=xlabel, row=1, col=col, type="log" if x == "n_params" else None)
        fig.update_yaxes(title_text=MSE, type="log", row=1, col=col)
        words.append(f"{what}: {', '.join(fronts[what])}")
    caption = (
        "Finished trials only (pruned ones stopped early, so their cost and quality are partial). "
        f"Front by {'; by '.join(words)}."
    )
    return finish(fig, "Cost vs quality: the Pareto front", caption, fronts=fronts)


def scaling_fit(trials: pd.DataFrame) -> go.Figure:
    """Figure 8: val/mse against parameters on log-log axes with a fitted power law per arch."""
    best = an.best_per_size(need_finished(trials))
    archs = sorted(best["arch"].unique())
    fig, statements, fits = go.Figure(), [], {}
    for arch, rows in best.groupby("arch"):
        colour = arch_color(arch, archs)
        fig.add_scatter(
            x=rows["n_params"], y=rows["val/mse"], mode="markers", name=arch, text=rows["name"],
            marker=dict(color=colour, size=9),
        )
        fit = an.fit_power_law(rows["n_params"], rows["val/mse"])
        if fit is None:
            statements.append(f"{arch}: too few sizes to fit (need 3 with different parameter counts).")
            continue
        xs = np.geomspace(rows["n_params"].min(), rows["n_params"].max(), 50)
        fig.add_scatter(
            x=xs, y=fit.predict(xs), mode="lines", name=f"{arch} fit: slope {fit.slope:.3f}",
            line=dict(color=colour, dash="dash"),
        )
        fits[arch] = dict(slope=fit.slope, coef=fit.coef, r2=fit.r2, n=fit.n, ratio_4x=fit.ratio(4.0))
        statements.append(an.doubling_width_statement(arch, fit))
    if not fits:
        raise FigureUnavailable("no architecture has 3 finished sizes with different parameter counts to fit")
    fig.update_xaxes(title_text="parameters (count, log scale)", type="log")
    fig.update_yaxes(title_text=f"{MSE}, log scale", type="log")
    caption = (
        " ".join(statements) + " Parameters scale about as width² for these convnets, so doubling width ≈ 4x "
        "parameters. The PSNR equivalent is 10·log10 of the MSE ratio; the per-image mean PSNR moves about alike."
    )
    return finish(fig, "Scaling: val/mse against parameters (log-log, best lr per size)", caption, fits=fits)


def pruning_validity(trials: pd.DataFrame, history: pd.DataFrame, studies: pd.DataFrame,
                     audits: pd.DataFrame | None = None, images: dict | None = None,
                     objective: tuple[str, str] = ("val/mse", "min")) -> go.Figure:
    """Figure 9: val/mse at the first rung against the final val/mse, with Spearman's rho, over the
    trials that finished and the pruned ones a pruning audit resumed to the full budget (diamonds)."""
    checks, reasons = [], []
    for _, s in studies.iterrows():
        if not np.isfinite(s["grace_period"]):
            reasons.append(f"{s['study']}: no pruner.grace_period logged, so no pruning rung to check.")
            continue
        rf = float(s["reduction_factor"]) if np.isfinite(s["reduction_factor"]) else None
        check = an.rung_check(s["study"], trials, history, int(s["grace_period"]), rf, audits, images, objective,
                              schedule_of(s.get("params") or {}))
        if np.isfinite(check.rho):
            checks.append(check)
        else:
            reasons.append(check.verdict)
    if not checks:
        raise FigureUnavailable(" ".join(reasons))
    fig = go.Figure()
    for i, check in enumerate(checks):
        colour = OTHER_COLORS[i % len(OTHER_COLORS)] if len(checks) > 1 else "#1f77b4"
        done, audited = (check.table[check.table["kind"] == k] for k in ("finished", "audited"))
        fig.add_scatter(
            x=done["rung_val_mse"], y=done["final_val_mse"], mode="markers",
            text=done["name"], name=f"{check.study}: ρ = {check.rho:.3f} (n={check.n})",
            marker=dict(size=9, color=colour),
        )
        if len(audited):
            fig.add_scatter(
                x=audited["rung_val_mse"], y=audited["final_val_mse"], mode="markers", text=audited["name"],
                name=f"{check.study}: audited (pruned, then resumed to the end)",
                marker=dict(size=12, color=colour, symbol="diamond-open", line=dict(width=2)),
            )
    rungs = ", ".join(str(r) for r in sorted({c.rung for c in checks}))
    fig.update_xaxes(title_text=f"val MSE at the first rung (epoch {rungs}), log scale", type="log")
    fig.update_yaxes(title_text="final val MSE (best epoch), log scale", type="log")
    caption = " ".join([c.verdict for c in checks] + reasons)
    title = "Pruning validity: val/mse at the first rung against the final val/mse (trials that ran to the end)"
    return finish(fig, title, caption, spearman={c.study: c.rho for c in checks},
                  audit={c.study: c.audit for c in checks if c.audit})


def anytime(trials: pd.DataFrame, history: pd.DataFrame, studies: pd.DataFrame) -> go.Figure:
    """The search's best val/mse found so far against the device-hours spent, with what running every
    trial to its full budget would have cost marked."""
    fig, lines = go.Figure(), []
    for i, name in enumerate(studies["study"]):
        found = an.anytime(name, trials, history)
        if found is None:
            continue
        colour = OTHER_COLORS[i % len(OTHER_COLORS)] if len(studies) > 1 else "#1f77b4"
        c = found.curve
        fig.add_scatter(x=c["device_hours"], y=c["best_val_mse"], mode="lines", line_shape="hv", text=c["name"],
                        name=f"{name}: best val/mse so far", line=dict(color=colour, width=2))
        fig.add_vline(x=found.full_hours, line=dict(color=colour, dash="dash"),
                      annotation_text=f"{name}: full budget {found.full_hours:.3g} h", annotation_position="top left")
        share = found.spent_hours / found.full_hours if found.full_hours > 0 else float("nan")
        reached = c["device_hours"][c["best_val_mse"] <= c["best_val_mse"].iloc[-1]].iloc[0]
        lines.append(f"{name}: the search spent {found.spent_hours:.3g} device-hours, {share:.0%} of the "
                     f"{found.full_hours:.3g} that every trial to its full budget would have cost (dashed line, "
                     f"at each trial's measured epoch time); its best val/mse {c['best_val_mse'].iloc[-1]:.5g} "
                     f"was in hand after {reached:.3g}.")
    if not lines:
        raise FigureUnavailable("no trial logged timed epochs (epoch_seconds and val/mse) yet")
    fig.update_xaxes(title_text="cumulative device-hours (each epoch's seconds x its trial's device share)",
                     rangemode="tozero")
    fig.update_yaxes(title_text=f"best {MSE} so far, log scale", type="log")
    caption = (" ".join(lines) + " A device-hour is a GPU-hour on a GPU (a trial packed at 0.25 GPU counts a "
               "quarter) and a trial-slot-hour on a CPU. The search's own trials only: not the final step "
               "or the pruning audit.")
    return finish(fig, "Anytime: the best val/mse found so far against the compute spent", caption)


def parallel_coordinates(trials: pd.DataFrame) -> go.Figure:
    """Figure 10: parallel coordinates over (arch,) blocks, channels, lr and val/mse."""
    done = need_finished(trials)
    if len(done) < 2:
        raise FigureUnavailable("parallel coordinates need at least two finished trials")
    dims = []
    archs = sorted(done["arch"].unique())
    if len(archs) > 1:
        codes = done["arch"].map(archs.index)
        dims.append(dict(label="arch", values=codes, tickvals=list(range(len(archs))), ticktext=archs))
    for col, label in (("blocks", "blocks (count)"), ("channels", "channels (width)")):
        vals = sorted(done[col].unique())
        dims.append(dict(label=label, values=done[col], tickvals=vals if len(vals) <= 12 else None))
    lrs = sorted(done["lr"].unique())
    ticks = dict(tickvals=list(np.log10(lrs)), ticktext=[f"{v:g}" for v in lrs]) if len(lrs) <= 8 else {}
    dims.append(dict(label="lr (log scale)", values=np.log10(done["lr"]), **ticks))
    dims.append(dict(label="val MSE (per pixel)", values=done["val/mse"]))
    line = dict(color=done["val/mse"], colorscale="Viridis", showscale=True, colorbar=dict(title="val MSE"))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    caption = f"{len(done)} finished trials; darker is a lower (better) val MSE. Drag along an axis to filter."
    fig = finish(fig, "Parallel coordinates: blocks, channels, lr and val MSE", caption, height=480)
    fig.update_layout(margin=dict(t=120, l=80, r=40))  # room for the axis labels under the title
    return fig
