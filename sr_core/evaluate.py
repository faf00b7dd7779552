"""Validation of a model on a set of pairs: the study's metrics (val/mse, val/psnr, val/ssim: RGB, no
crop) and the papers' (val/psnr_y, val/ssim_y: luma, `SCALE` pixels cropped from each border), in big
batches under inference_mode, with one host sync per evaluation. `evaluate_images` also returns each
image's values of them (what a paired bootstrap over the val images compares, reports.noise)."""
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
IMAGE_METRICS = METRICS  # kept per image by `evaluate_images`


def evaluate(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
             amp_dtype: torch.dtype | None = None, fault: Fault | None = None,
             epoch: int = 0, batch_size: int = EVAL_BATCH, channels_last: bool = False) -> dict[str, float]:
    """The means over `pairs` of each of `METRICS`, keyed by name."""
    return _evaluate(model, pairs, device, amp_dtype, fault, epoch, batch_size, channels_last, False)[0]


def evaluate_images(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
                    amp_dtype: torch.dtype | None = None, fault: Fault | None = None, epoch: int = 0,
                    batch_size: int = EVAL_BATCH, channels_last: bool = False
                    ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """`evaluate`'s means (the same numbers) and each image's `IMAGE_METRICS`, in `pairs`' order."""
    return _evaluate(model, pairs, device, amp_dtype, fault, epoch, batch_size, channels_last, True)


@torch.inference_mode()
def _evaluate(model, pairs, device, amp_dtype, fault, epoch, batch_size, channels_last, keep_images):
    was_training = model.training
    model.eval()
    # Per-batch sums accumulate in fp64 on the device: the same arithmetic as adding their .item()s
    # in Python, without a sync per batch.
    sums = torch.zeros(len(METRICS), dtype=torch.float64, device=device)
    images = []
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
        if keep_images:
            images.append(torch.stack([per_image[name.removeprefix("val/")] for name in IMAGE_METRICS]))
    model.train(was_training)
    if keep_images:  # one sync point for both
        together = torch.cat([sums, torch.cat(images, dim=1).flatten()]).tolist()
        totals, flat = together[:len(METRICS)], together[len(METRICS):]
        n = len(pairs)
        kept = {name: flat[i * n:(i + 1) * n] for i, name in enumerate(IMAGE_METRICS)}
    else:
        totals, kept = sums.tolist(), {}  # sync point, once per evaluation
    return {name: total / len(pairs) for name, total in zip(METRICS, totals)}, kept
