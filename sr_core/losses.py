"""The training losses a study can choose (`[train] loss`, or searched in `[space]`): pixel losses on
float images in [0, 1], the mean over every pixel and channel.

- ``mse``: the original study's, and the default (PSNR is a function of it).
- ``l1``: the field's default since EDSR (Lim et al., 2017): sharper edges than MSE at equal PSNR.
- ``charbonnier``: sqrt(d^2 + eps), a smooth L1 (LapSRN, Lai et al., 2017), with BasicSR's eps = 1e-12
  (`basicsr.losses.CharbonnierLoss`): L1 to within 1e-6 for any difference, but its gradient is
  finite where prediction and target agree.

Whatever the loss, an epoch still reports `train/mse` (measured on the same outputs), so trials trained
with different losses stay comparable on one scale.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

CHARBONNIER_EPS = 1e-12


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    return torch.sqrt((pred - target).square() + eps).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss, "l1": F.l1_loss, "charbonnier": charbonnier}


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss called `name` (one of LOSSES)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSSES)}") from None
