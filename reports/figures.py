"""One function per figure: DataFrames in, a plotly Figure out.

A figure that cannot be drawn raises FigureUnavailable with the reason, which the page shows in
its place. Words that explain a figure (a verdict, a prediction) ride along in
`fig.layout.meta["caption"]`; numbers tests check sit next to it in `fig.layout.meta`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import analysis as an

MSE = "val MSE (per pixel, RGB in [0,1])"
PSNR = "PSNR (dB)"
SSIM = "SSIM (0-1)"
VAL_METRICS = (("val/mse", MSE), ("val/psnr", PSNR), ("val/ssim", SSIM))
ARCH_COLORS = {"residual": "#1f77b4", "refiner": "#ff7f0e"}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
STATUS_COLORS = {
    "completed": "#1f77b4", "early_stopped": "#17becf", "pruned": "#d62728", "diverged": "#ff7f0e",
    "oom": "#8c564b", "failed": "#7f7f7f", "running": "#bcbd22",
}  # fmt: skip


class FigureUnavailable(Exception):
    """This figure cannot be drawn from the data at hand; str(exc) says why."""


def arch_color(arch: str, archs: list[str]) -> str:
    """Fixed colours for the two known archs, so every figure of a report agrees."""
    if arch in ARCH_COLORS:
        return ARCH_COLORS[arch]
    return OTHER_COLORS[sorted(archs).index(arch) % len(OTHER_COLORS)]


def _finish(fig: go.Figure, title: str, caption: str = "", height: int = 420, **meta) -> go.Figure:
    fig.update_layout(
        title=title, template="plotly_white", height=height, margin=dict(t=70, l=70, r=30, b=60),
        meta={"caption": caption, **meta},
    )  # fmt: skip
    return fig


def _need_finished(trials: pd.DataFrame) -> pd.DataFrame:
    done = an.finished(trials)
    if done.empty:
        raise FigureUnavailable("no trial finished (completed or early_stopped) with a val/mse yet")
    return done


def runs_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The original study's runs table, best val/mse first; trials without one go last."""
    cols = ["name", "study", "runtime_s", "channels", "eta_min", "lr", "blocks", "train/mse",
            "val/mse", "val/psnr", "val/ssim", "status", "epochs_run", "max_epochs", "run_id"]  # fmt: skip
    ordered = trials.sort_values(["val/mse", "name"], na_position="last", kind="stable")
    return ordered[cols].reset_index(drop=True)


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
    fig = make_subplots(rows=1, cols=3, subplot_titles=[label for _, label in VAL_METRICS])
    for arch, rows in best.groupby("arch"):
        for col, (metric, label) in enumerate(VAL_METRICS, start=1):
            fig.add_bar(
                x=rows["size"], y=rows[metric], name=arch, legendgroup=arch, showlegend=col == 1,
                marker_color=arch_color(arch, archs), hovertext=rows["name"], row=1, col=col,
            )  # fmt: skip
            fig.update_yaxes(title_text=label, row=1, col=col)
            fig.update_xaxes(title_text="size (blocks, channels)", row=1, col=col)
    fig.update_layout(barmode="group")
    wide = best.pivot(index="size", columns="arch", values="val/psnr")
    mean = wide.mean().sort_values(ascending=False)
    a, b = mean.index[0], mean.index[1]  # a: the arch with the higher mean PSNR
    wins = int((wide[a] > wide[b]).sum())
    where = "both finished" if budget is None else f"both reached epoch {budget}"
    caption = (
        f"At the {len(wide)} size(s) {where} (best lr per size), {a} has the higher PSNR at "
        f"{wins} of {len(wide)}; mean PSNR difference {a} − {b}: {(wide[a] - wide[b]).mean():+.2f} dB."
    )
    title = f"{' vs '.join(a.capitalize() for a in archs)} at equal blocks and channels"
    if budget is not None:
        title += f", all at epoch {budget} (equal budget)"
        caption += (f" Equal budget: not every size finished for every architecture, so each trial is "
                    f"compared at epoch {budget}, the first ASHA rung, which pruned trials reached too; "
                    "this is quality after equal training, not final quality.")
    return _finish(fig, title, caption, sizes=list(wide.index), budget_epoch=budget)


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


def best_progress(trials: pd.DataFrame, history: pd.DataFrame) -> go.Figure:
    """Figure 3: train/val MSE, PSNR and SSIM per epoch of the best trial."""
    best = an.best_trial(trials)
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
    return _finish(fig, title, f"Best val/mse {best['val/mse']:.5f} at {at}.", run_id=best["run_id"])


def _count(value) -> str:
    return f"{value:.0f}" if np.isfinite(value) else "?"


def _steps(df: pd.DataFrame, x: str) -> str:
    """'+0.30 dB from 2→4, +0.10 dB from 4→8 blocks' for one arch's series."""
    df = df.sort_values(x)
    xs, ps = df[x].to_numpy(), df["val/psnr"].to_numpy()
    steps = [f"{ps[i + 1] - ps[i]:+.2f} dB from {xs[i]}→{xs[i + 1]}" for i in range(len(xs) - 1)]
    return f"{', '.join(steps)} {x}" if steps else "a single point"


def _effect(trials: pd.DataFrame, fixed: str, value: int | None, varied: str, label: str,
            history: pd.DataFrame | None = None, studies: pd.DataFrame | None = None) -> go.Figure:
    """Final quality of finished trials; when they cover fewer than 3 values of `varied` at any one
    `fixed` value (and the history is given), every trial at the first ASHA rung's epoch instead,
    which pruned trials reached too, when that covers more. The title says which: never mixed."""
    done = _need_finished(trials)
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
    archs = sorted(best["arch"].unique())
    fig = make_subplots(rows=1, cols=3, subplot_titles=[lab for _, lab in VAL_METRICS])
    for arch, rows in best.groupby("arch"):
        rows = rows.sort_values(varied)
        for col, (metric, ylabel) in enumerate(VAL_METRICS, start=1):
            fig.add_scatter(
                x=rows[varied], y=rows[metric], mode="lines+markers", name=arch, text=rows["name"],
                legendgroup=arch, showlegend=col == 1, line_color=arch_color(arch, archs), row=1, col=col,
            )  # fmt: skip
            fig.update_yaxes(title_text=ylabel, row=1, col=col)
            fig.update_xaxes(title_text=label, type="log", tickvals=sorted(best[varied].unique()), row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    words = "; ".join(f"{arch}: {_steps(rows, varied)}" for arch, rows in best.groupby("arch"))
    default = " (the default: the most coverage)" if value is None else ""
    caption = f"At {fixed} = {chosen}{default}, best lr per point. PSNR change per step — {words}."
    title = f"{varied.capitalize()} effect at {chosen} {fixed}"
    if budget is not None:
        title += f", all at epoch {budget} (equal budget)"
        caption += (f" Equal budget: the finished trials cover fewer than 3 {varied} values at any {fixed}, so "
                    f"every trial is shown at epoch {budget}, the first ASHA rung, which pruned trials reached "
                    "too; this is quality after equal training, not final quality.")
    return _finish(fig, title, caption, budget_epoch=budget, **{fixed: int(chosen)})


def depth_effect(trials: pd.DataFrame, channels: int | None = None, history: pd.DataFrame | None = None,
                 studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 4: val metrics against blocks at one width (default: the most depth coverage)."""
    return _effect(trials, "channels", channels, "blocks", "blocks (residual blocks, log scale)", history, studies)


def width_effect(trials: pd.DataFrame, blocks: int | None = None, history: pd.DataFrame | None = None,
                 studies: pd.DataFrame | None = None) -> go.Figure:
    """Figure 5: val metrics against channels at one depth (default: the most width coverage)."""
    return _effect(trials, "blocks", blocks, "channels", "channels (feature width, log scale)", history, studies)


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
    caption += f"; ASHA rungs at epoch(s) {', '.join(map(str, rungs))}." if rungs else "."
    title = "Validation MSE of every trial per epoch (pruned: dashed, ✕ where stopped)"
    return _finish(fig, title, caption, height=480)


def pareto(trials: pd.DataFrame) -> go.Figure:
    """Figure 7: val/mse against trial wall time and against parameter count; the front is marked."""
    done = _need_finished(trials)
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
    return _finish(fig, "Cost vs quality: the Pareto front", caption, fronts=fronts)


def scaling_fit(trials: pd.DataFrame) -> go.Figure:
    """Figure 8: val/mse against parameters on log-log axes with a fitted power law per arch."""
    best = an.best_per_size(_need_finished(trials))
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
    return _finish(fig, "Scaling: val/mse against parameters (log-log, best lr per size)", caption, fits=fits)


def pruning_validity(trials: pd.DataFrame, history: pd.DataFrame, studies: pd.DataFrame) -> go.Figure:
    """Figure 9: val/mse at the first ASHA rung against the final val/mse, with Spearman's rho."""
    checks, reasons = [], []
    for _, s in studies.iterrows():
        if not np.isfinite(s["grace_period"]):
            reasons.append(f"{s['study']}: no pruner.grace_period logged, so no pruning rung to check.")
            continue
        rf = float(s["reduction_factor"]) if np.isfinite(s["reduction_factor"]) else None
        check = an.rung_check(s["study"], trials, history, int(s["grace_period"]), rf)
        if np.isfinite(check.rho):
            checks.append(check)
        else:
            reasons.append(check.verdict)
    if not checks:
        raise FigureUnavailable(" ".join(reasons))
    fig = go.Figure()
    for i, check in enumerate(checks):
        colour = OTHER_COLORS[i % len(OTHER_COLORS)] if len(checks) > 1 else "#1f77b4"
        fig.add_scatter(
            x=check.table["rung_val_mse"], y=check.table["final_val_mse"], mode="markers",
            text=check.table["name"], name=f"{check.study}: ρ = {check.rho:.3f} (n={check.n})",
            marker=dict(size=9, color=colour),
        )
    rungs = ", ".join(str(r) for r in sorted({c.rung for c in checks}))
    fig.update_xaxes(title_text=f"val MSE at the first rung (epoch {rungs}), log scale", type="log")
    fig.update_yaxes(title_text="final val MSE (best epoch), log scale", type="log")
    caption = " ".join([c.verdict for c in checks] + reasons)
    title = "Pruning validity: val/mse at the first rung against the final val/mse (trials that ran to the end)"
    return _finish(fig, title, caption, spearman={c.study: c.rho for c in checks})


def parallel_coordinates(trials: pd.DataFrame) -> go.Figure:
    """Figure 10: parallel coordinates over (arch,) blocks, channels, lr and val/mse."""
    done = _need_finished(trials)
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
    fig = _finish(fig, "Parallel coordinates: blocks, channels, lr and val MSE", caption, height=480)
    fig.update_layout(margin=dict(t=120, l=80, r=40))  # room for the axis labels under the title
    return fig
