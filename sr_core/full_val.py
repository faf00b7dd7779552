"""Full-size validation: whole images (Set5, Set14, ...) scored the way `sr-search evaluate` scores a
benchmark folder (search.apply.evaluate uses `score_image` too), so that a study can log, rank and
prune on the papers' figure while it trains, not only after it ended.

Each image's LR (made once by the driver, search.apply.benchmark_folders: HR mod-cropped to a multiple
of 4, MATLAB's bicubic) is upscaled whole, in exact tiles under sr_core.infer's memory bound, in fp32
(no autocast: evaluate's arithmetic); the SR output is rounded to 8 bits as the papers' scripts save it;
then PSNR and SSIM on Y of BT.601 YCbCr with `CROP` pixels cut from every border, and RGB PSNR without a
crop. The folder's figure is the mean over its images (FULL_METRICS, sr_core.contract).

A trial scores it every `every` epochs and at its last epoch (`FullVal.due`): scoring a full-size
folder costs a whole-image forward per image plus float64 SSIM on every pixel, far more than the
128x128 val patches.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sr_core.contract import FULL_METRICS
from sr_core.infer import tiling_for, upscale_image
from sr_core.matlab_resize import matlab_upscale
from sr_core.metrics import psnr, psnr_y, ssim_y
from sr_core.pixels import to_float, to_uint8
from sr_core.sizes import SCALE

CROP = SCALE  # pixels cut from each border before PSNR-Y and SSIM-Y, as papers do


@dataclass(frozen=True)
class FullImage:
    name: str
    hr: torch.Tensor  # uint8 [3,H,W], mod-cropped to a multiple of SCALE
    lr: torch.Tensor  # uint8 [3,H/SCALE,W/SCALE]


@dataclass(frozen=True)
class FullVal:
    """The decoded folder and how often a trial scores it."""
    images: tuple[FullImage, ...]
    every: int = 1

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("FullVal needs at least one image")
        if not (isinstance(self.every, int) and not isinstance(self.every, bool) and self.every >= 1):
            raise ValueError(f"every must be an int >= 1, got every={self.every!r}")

    def due(self, epoch: int, last_epoch: int) -> bool:
        """Scored at every `every`-th epoch, and at the last epoch, so a trial that runs to its end
        always ends on a fresh figure."""
        return epoch % self.every == 0 or epoch == last_epoch


def score_image(sr: torch.Tensor, hr: torch.Tensor) -> tuple[float, float, float]:
    """(PSNR-Y, SSIM-Y, RGB PSNR) of one image: float SR [3,H,W] in [0,1], rounded to 8 bits first;
    uint8 HR [3,H,W]."""
    pred, target = to_float(to_uint8(sr))[None], to_float(hr)[None]
    return psnr_y(pred, target, CROP).item(), ssim_y(pred, target, CROP).item(), psnr(pred, target).item()


def score(model: torch.nn.Module, full_val: FullVal, tile: int | None = None
          ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """({full/psnr_y: mean, ...}, {full/psnr_y: [per image], ...}) of `model` on the folder, run on the
    model's device; `tile` (LR pixels) defaults to sr_core.infer's, as `evaluate` does (a net that does
    not declare its receptive radius, a user's arch, runs each image whole: sr_core.infer.tiling_for)."""
    tile, overlap = tiling_for(model, tile)
    return _scores(full_val, lambda lr: upscale_image(model, lr, tile=tile, overlap=overlap))


def bicubic(full_val: FullVal) -> tuple[dict[str, float], dict[str, list[float]]]:
    """`score`'s figures for MATLAB's bicubic upscale of each LR: the floor (evaluate's bicubic row)."""
    return _scores(full_val, lambda lr: to_float(matlab_upscale(lr)))


def _scores(full_val: FullVal, upscale: Callable[[torch.Tensor], torch.Tensor]
            ) -> tuple[dict[str, float], dict[str, list[float]]]:
    per_image: dict[str, list[float]] = {name: [] for name in FULL_METRICS}
    for image in full_val.images:
        for name, value in zip(FULL_METRICS, score_image(upscale(image.lr), image.hr)):
            per_image[name].append(value)
    means = {name: sum(values) / len(values) for name, values in per_image.items()}
    return means, per_image
