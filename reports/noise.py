"""How sure a comparison on a finite val set is: a paired bootstrap over the val images.

Two models scored on the same val images differ image by image; the difference of their means is one
draw of what another val set would show. `gain` resamples the images (the same images for both
models: paired) and returns the difference with its 95% interval, by scipy.stats.bootstrap's BCa.
"Better" means the interval excludes zero; otherwise the two are tied within noise.

A gain is always "how much better A is than B", in the objective's own unit, signed so that positive
means better whatever the direction:
- val/mse: dB of PSNR of the mean MSE, 10 log10(mean MSE of B / mean MSE of A) (the study's PSNR);
- any other metric (val/psnr, val/ssim, ...): mean of A - mean of B, negated when lower is better.

Pure numpy and scipy, in reports (which imports nothing of sr_core but its contract): `run`'s closing
lines (search.run.closing) and `bench search` import it from here, so the report and `run` state the
same intervals.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0  # the bootstrap's own seed: the same inputs give the same interval


@dataclass(frozen=True)
class Gain:
    """A better than B by `value` (the objective's unit), 95% interval [low, high] over `images` val images."""
    value: float
    low: float
    high: float
    images: int
    unit: str = "dB"

    @property
    def verdict(self) -> str:
        """"better" (the interval is above zero), "worse" (below) or "tied" (it holds zero)."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "tied"

    def text(self, digits: int = 2) -> str:
        """`+0.12 dB [+0.05, +0.19]`; one more digit where a bound would round to zero."""
        unit = f" {self.unit}" if self.unit else ""
        if any(0 < abs(v) < 0.5 * 10 ** -digits for v in (self.low, self.high)):
            digits += 1
        return f"{self.value:+.{digits}f}{unit} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "images": self.images,
                "unit": self.unit, "verdict": self.verdict}


def unit_of(metric: str) -> str:
    return {"val/mse": "dB", "val/psnr": "dB", "val/psnr_y": "dB", "full/psnr_y": "dB", "full/psnr": "dB"}.get(metric, "")


def gain(a, b, metric: str = "val/mse", mode: str = "min", *, confidence: float = CONFIDENCE,
         resamples: int = RESAMPLES, seed: int = SEED) -> Gain:
    """A (per-image values of `metric`) against B on the same images, in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a paired comparison needs two equal 1-d sets of >= 2 images, got {a.shape} and {b.shape}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    statistic = _db_of_mean_mse if metric == "val/mse" else _mean_difference(1.0 if mode == "max" else -1.0)
    value = float(statistic(a, b, axis=-1))
    if np.allclose(a - b, (a - b)[0], rtol=1e-12, atol=0):  # every image moved alike: no spread to resample
        return Gain(value, value, value, len(a), unit_of(metric))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample: handled below
        result = stats.bootstrap((a, b), statistic, paired=True, vectorized=True, method="BCa",
                                 confidence_level=confidence, n_resamples=resamples,
                                 random_state=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined (e.g. ties everywhere): percentile
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap((a, b), statistic, paired=True, vectorized=True, method="percentile",
                                     confidence_level=confidence, n_resamples=resamples,
                                     random_state=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Gain(value, low, high, len(a), unit_of(metric))


def _db_of_mean_mse(a, b, axis=-1):
    return 10.0 * np.log10(np.mean(b, axis=axis) / np.mean(a, axis=axis))


def _mean_difference(sign: float):
    def statistic(a, b, axis=-1):
        return sign * (np.mean(a, axis=axis) - np.mean(b, axis=axis))
    return statistic


def tied_with_best(images: dict[str, list[float]], best: str, metric: str = "val/mse",
                   mode: str = "min") -> dict[str, Gain]:
    """The configs whose per-image values are tied with `best`'s within noise: {name: gain of best over
    it}, the best included (a zero gain). `images` maps each config to its per-image values."""
    out = {best: Gain(0.0, 0.0, 0.0, len(images[best]), unit_of(metric))}
    for name, values in images.items():
        if name != best and len(values) == len(images[best]):
            g = gain(images[best], values, metric, mode)
            if g.verdict == "tied":
                out[name] = g
    return out
