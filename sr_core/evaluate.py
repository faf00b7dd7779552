"""Validation of a model on a set of pairs: the study's metrics (val/mse, val/psnr, val/ssim: RGB, no
crop) and the papers' (val/psnr_y, val/ssim_y: luma, `SCALE` pixels cropped from each border), in big
batches under inference_mode, with one host sync per evaluation."""
from __future__ import annotations

import torch

from sr_core import metrics
from sr_core.data import SRPairs
from sr_core.faults import Fault, inject
from sr_core.pixels import to_float
from sr_core.sizes import SCALE

EVAL_BATCH = 64  # the reference eval batch; FastPaths.eval_batch is what trials use
# Each is a per-image value (`metrics.per_image_metrics`); the evaluation reports their means (val/mse
# too: all images are one size).
METRICS = ("val/mse", "val/psnr", "val/ssim", "val/psnr_y", "val/ssim_y")


@torch.inference_mode()
def evaluate(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
             amp_dtype: torch.dtype | None = None, fault: Fault | None = None,
             epoch: int = 0, batch_size: int = EVAL_BATCH, channels_last: bool = False) -> dict[str, float]:
    """The means over `pairs` of each of `METRICS`, keyed by name."""
    was_training = model.training
    model.eval()
    # Per-batch sums accumulate in fp64 on the device: the same arithmetic as adding their .item()s
    # in Python, without a sync per batch.
    sums = torch.zeros(len(METRICS), dtype=torch.float64, device=device)
    for start in range(0, len(pairs), batch_size):
        inject(fault, "eval", epoch)
        lr = to_float(pairs.lr[start:start + batch_size].to(device))
        hr = to_float(pairs.hr[start:start + batch_size].to(device))
        if channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = model(lr)
        pred = pred.float()
        per_image = metrics.per_image_metrics(pred, hr, crop=SCALE)
        sums += torch.stack([per_image[name.removeprefix("val/")].sum() for name in METRICS])
    model.train(was_training)
    totals = sums.tolist()  # sync point, once per evaluation
    return {name: total / len(pairs) for name, total in zip(METRICS, totals)}
