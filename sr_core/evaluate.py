"""Validation of a model on a set of pairs: val/mse, val/psnr, val/ssim, in big batches under
inference_mode, with one host sync per evaluation."""
from __future__ import annotations

import torch

from sr_core import metrics
from sr_core.data import SRPairs
from sr_core.faults import Fault, inject
from sr_core.pixels import to_float

EVAL_BATCH = 64  # the reference eval batch; FastPaths.eval_batch is what trials use


@torch.inference_mode()
def evaluate(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
             amp_dtype: torch.dtype | None = None, fault: Fault | None = None,
             epoch: int = 0, batch_size: int = EVAL_BATCH, channels_last: bool = False) -> dict[str, float]:
    """val/mse (pixel mean), val/psnr and val/ssim (means of per-image values)."""
    was_training = model.training
    model.eval()
    # Per-batch sums (fp32) accumulate in fp64 on the device: the same arithmetic as adding their
    # .item()s in Python, without a sync per batch.
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for start in range(0, len(pairs), batch_size):
        inject(fault, "eval", epoch)
        lr = to_float(pairs.lr[start:start + batch_size].to(device))
        hr = to_float(pairs.hr[start:start + batch_size].to(device))
        if channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = model(lr)
        pred = pred.float()
        sums += torch.stack([metrics.mse(pred, hr).sum(), metrics.psnr(pred, hr).sum(),
                             metrics.ssim(pred, hr).sum()]).double()
    model.train(was_training)
    mse, psnr, ssim = sums.tolist()  # sync point, once per evaluation
    return {"val/mse": mse / len(pairs), "val/psnr": psnr / len(pairs), "val/ssim": ssim / len(pairs)}
