"""What every figure of the report shares: the reason a figure is not drawn, the axis labels, the
colours (so every figure agrees on them) and the layout. figures.py and figures_effects.py draw.

A figure that cannot be drawn raises FigureUnavailable with the reason, which the page shows in
its place. Words that explain a figure (a verdict, a prediction) ride along in
`fig.layout.meta["caption"]`; numbers tests check sit next to it in `fig.layout.meta`.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from . import analysis as an

MSE = "val MSE (per pixel, RGB in [0,1])"
PSNR = "PSNR (dB)"
SSIM = "SSIM (0-1)"
VAL_METRICS = (("val/mse", MSE), ("val/psnr", PSNR), ("val/ssim", SSIM))
ARCH_COLORS = {"residual": "#1f77b4", "refiner": "#ff7f0e"}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
STATUS_COLORS = {
    "completed": "#1f77b4", "early_stopped": "#17becf", "pruned": "#d62728", "diverged": "#ff7f0e",
    "oom": "#8c564b", "failed": "#7f7f7f", "running": "#bcbd22", "paused": "#e377c2", "interrupted": "#9467bd",
}  # fmt: skip  # every status of sr_core.contract.STATUSES (tests/reports/test_reports_figures.py)


class FigureUnavailable(Exception):
    """This figure cannot be drawn from the data at hand; str(exc) says why."""


def arch_color(arch: str, archs: list[str]) -> str:
    """Fixed colours for the two known archs, so every figure of a report agrees."""
    if arch in ARCH_COLORS:
        return ARCH_COLORS[arch]
    return OTHER_COLORS[sorted(archs).index(arch) % len(OTHER_COLORS)]


def finish(fig: go.Figure, title: str, caption: str = "", height: int = 420, **meta) -> go.Figure:
    fig.update_layout(
        title=title, template="plotly_white", height=height, margin=dict(t=70, l=70, r=30, b=60),
        meta={"caption": caption, **meta},
    )  # fmt: skip
    return fig


def need_finished(trials: pd.DataFrame) -> pd.DataFrame:
    done = an.finished(trials)
    if done.empty:
        raise FigureUnavailable("no trial finished (completed or early_stopped) with a val/mse yet")
    return done
