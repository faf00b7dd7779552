"""Bicubic x4 upscaling's scores on a set of pairs: the floor every model is compared with (the study
run's bicubic/ metrics, the per-image values its paired bootstrap needs)."""
from __future__ import annotations

import numpy as np
import torch

from sr_core import metrics, patches
from sr_core.data import HR_ONLY_STRIDE, SRPairs, make_lr
from sr_core.photos import Photos, photo_views
from sr_core.pixels import to_float
from sr_core.resize import bicubic_upscale, downscale_with
from sr_core.sizes import SCALE


def bicubic_scores(pairs: SRPairs, kernel: str | None = None, batch: int = 256,
                   which: tuple[str, ...] = ("mse", "psnr", "ssim")) -> dict[str, float]:
    """Bicubic x4 upscaling against pairs.hr, the floor a model must beat: the mean per image of each
    metric in `which` (sr_core.metrics' mse, psnr, ssim), so val/mse's bicubic is the study's val/mse.

    kernel=None upscales pairs.lr as stored; a kernel of LR_KERNELS remakes the LR from the HR first,
    so that train (mixed kernels) and val (``downscale``) compare on content alone:
    ``bicubic_psnr(data.train, kernel="sr-search")`` against ``bicubic_psnr(data.val)``.
    """
    if len(pairs) == 0:
        raise ValueError("bicubic_scores needs at least one pair")
    sums = dict.fromkeys(which, 0.0)
    for start in range(0, len(pairs), batch):
        hr_u8 = pairs.hr[start:start + batch]
        lr_u8 = pairs.lr[start:start + batch] if kernel is None else downscale_with(hr_u8, kernel)
        pred, hr = bicubic_upscale(to_float(lr_u8)), to_float(hr_u8)
        for name in which:
            sums[name] += getattr(metrics, name)(pred, hr).sum().item()
    return {name: total / len(pairs) for name, total in sums.items()}


def train_pairs(train: SRPairs | Photos, cap: int = 2048) -> SRPairs:
    """The train set as pairs: itself, or for random crops the fixed patches its photos hold (at most
    `cap`, evenly spaced), LR by ``downscale``: what a bicubic score of the train set is taken on."""
    if isinstance(train, SRPairs):
        return train
    cuts = [patches.cut(view.permute(1, 2, 0).numpy(), patches.grid(*view.shape[1:], HR_ONLY_STRIDE))
            for view in photo_views(train)]
    hr = torch.from_numpy(np.concatenate(cuts)).permute(0, 3, 1, 2)
    hr = hr[torch.from_numpy(patches.evenly(len(hr), min(cap, len(hr))))].contiguous()
    return SRPairs(make_lr(hr, ["sr-search"] * len(hr)), hr, tuple(f"patch{i}" for i in range(len(hr))))


def bicubic_images(pairs: SRPairs, batch: int = 256) -> dict[str, list[float]]:
    """Bicubic x4 upscaling's value of each val metric (sr_core.evaluate.METRICS) per image, in the
    pairs' order, with their "names": the floor every model's per-image values are compared with."""
    out: dict[str, list] = {}
    for start in range(0, len(pairs), batch):
        pred = bicubic_upscale(to_float(pairs.lr[start:start + batch]))
        per_image = metrics.per_image_metrics(pred, to_float(pairs.hr[start:start + batch]), crop=SCALE)
        for name, values in per_image.items():  # mse, psnr, ssim, psnr_y, ssim_y: evaluate's METRICS
            out.setdefault(f"val/{name}", []).extend(values.tolist())
    return {"names": list(pairs.names), **out}


def bicubic_psnr(pairs: SRPairs, kernel: str | None = None, batch: int = 256) -> float:
    """Mean per-image PSNR (dB) of bicubic x4 upscaling against pairs.hr (`bicubic_scores`)."""
    return bicubic_scores(pairs, kernel, batch, which=("psnr",))["psnr"]
