"""A measured cost model: seconds per train step and per evaluated image of every config, fitted per
architecture to a few real steps timed on the trials' device (sr_core.cost_probe, in a Ray task placed
like a trial), instead of one FLOP rate for every net.

Per architecture, step seconds = a + b x FLOPs of a step (3 x forward FLOPs x batch) and evaluation
seconds per image = c + d x forward FLOPs, least squares over the probed shapes with a, c >= 0 (the
intercept is launch overhead, which dominates small nets). One probed shape: a line through the origin.
An epoch of a config = its steps x step seconds + the val images x evaluation seconds: what Tune's
`time_total_s` counts, so what `actual/device_hours` sums. `speedup` is the final step's: it trains on
a whole node's CPU threads (search.run.cluster.final_resources), measured on the middle shape.

One scoring of a full-size val folder ([study].full_val) = its forward, priced by pixels as the
evaluation of LR_SIZE x LR_SIZE images (its LR pixels / LR_SIZE^2 of them; tiles' overlap, only for
wide nets on big images, not counted), plus its metrics at the probe's `score_pixel_s` per HR pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sr_core.models import flops_per_image
from sr_core.sizes import LR_SIZE


@dataclass(frozen=True)
class Line:
    intercept: float
    slope: float

    def __call__(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_line(xs: list[float], ys: list[float]) -> Line:
    """Least squares y = a + b x with a >= 0 and b >= 0; through the origin for one point."""
    if len(xs) == 1 or len(set(xs)) == 1:
        return Line(0.0, float(np.mean(ys)) / float(np.mean(xs)) if np.mean(xs) > 0 else 0.0)
    b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    if b < 0:
        return Line(float(np.mean(ys)), 0.0)
    if a < 0:  # refit through the origin
        x, y = np.asarray(xs, float), np.asarray(ys, float)
        return Line(0.0, float((x @ y) / (x @ x)))
    return Line(float(a), float(b))


@dataclass(frozen=True)
class CostModel:
    steps: dict[str, Line]  # arch -> step seconds against the step's FLOPs
    evals: dict[str, Line]  # arch -> evaluation seconds per image against forward FLOPs
    batch_size: int
    probe_seconds: float = 0.0
    speedup: float = 1.0  # the final step's threads against a trial's
    rows: list = field(default_factory=list, compare=False)  # what the probe measured
    score_pixel_s: float = 0.0  # scoring a full-size image, per HR pixel (on the host)

    def step_s(self, arch: str, blocks: int, channels: int, params=()) -> float:
        line = self.steps.get(arch) or next(iter(self.steps.values()))
        return line(3 * flops_per_image(arch, blocks, channels, params) * self.batch_size)

    def eval_image_s(self, arch: str, blocks: int, channels: int, params=()) -> float:
        line = self.evals.get(arch) or next(iter(self.evals.values()))
        return line(flops_per_image(arch, blocks, channels, params))

    def epoch_s(self, arch: str, blocks: int, channels: int, train_images: int, val_images: int,
                params=()) -> float:
        """One epoch of the config: its steps (train_images / batch, rounded up) and its evaluation
        (`params`: a user arch's other parameters, sr_core.archs)."""
        steps = math.ceil(train_images / self.batch_size)
        return (steps * self.step_s(arch, blocks, channels, params)
                + val_images * self.eval_image_s(arch, blocks, channels, params))

    def full_val_s(self, arch: str, blocks: int, channels: int, params, lr_pixels: int, hr_pixels: int) -> float:
        """One scoring of a full-size val folder of `lr_pixels` LR and `hr_pixels` HR pixels in all."""
        forward = lr_pixels / LR_SIZE ** 2 * self.eval_image_s(arch, blocks, channels, params)
        return forward + hr_pixels * self.score_pixel_s


def fit(rows: list[dict], batch_size: int, speedup: float = 1.0) -> CostModel:
    """The model from `sr_core.cost_probe.probe`'s rows."""
    if not rows:
        raise ValueError("the cost model needs at least one probed shape")
    steps, evals = {}, {}
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        steps[arch] = fit_line([3 * r["flops_per_image"] * batch_size for r in mine], [r["step_s"] for r in mine])
        evals[arch] = fit_line([r["flops_per_image"] for r in mine], [r["eval_image_s"] for r in mine])
    score = [r["score_pixel_s"] for r in rows if "score_pixel_s" in r]  # rows of older probes lack it
    return CostModel(steps, evals, batch_size, sum(r["probe_s"] for r in rows), speedup, list(rows),
                     sum(score) / len(score) if score else 0.0)
