"""Pure tensor ops of the data pipeline, on any device: the x4 resizes, uint8 -> float, and the
8 dihedral symmetries used for augmentation and self-ensemble."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE = 4


def downscale(hr: torch.Tensor) -> torch.Tensor:
    """The one x4 resize: uint8 [N,3,H,W] or [3,H,W] -> uint8, bicubic with antialias (as PIL's)."""
    if hr.dtype != torch.uint8 or hr.dim() not in (3, 4):
        raise ValueError(f"downscale expects uint8 [N,3,H,W] or [3,H,W], got {hr.dtype} {tuple(hr.shape)}")
    h, w = hr.shape[-2:]
    if h % SCALE or w % SCALE:
        raise ValueError(f"downscale needs height and width divisible by {SCALE}, got {h}x{w}")
    batch = hr.float() if hr.dim() == 4 else hr.float().unsqueeze(0)
    size = (h // SCALE, w // SCALE)
    lr = F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)
    lr = lr.round().clamp(0, 255).to(torch.uint8)
    return lr if hr.dim() == 4 else lr[0]


def bicubic_upscale(lr: torch.Tensor) -> torch.Tensor:
    """Float [N,3,h,w] in [0,1] -> [N,3,4h,4w] bicubic, clamped (bicubic overshoots at edges)."""
    if not lr.is_floating_point():
        raise ValueError(f"bicubic_upscale expects a float tensor in [0,1], got {lr.dtype}")
    h, w = lr.shape[-2:]
    up = F.interpolate(lr, size=(h * SCALE, w * SCALE), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1."""
    if x_uint8.dtype != torch.uint8:
        raise ValueError(f"to_float expects uint8, got {x_uint8.dtype}")
    return x_uint8.to(torch.float32) / 255.0


def dihedral(x: torch.Tensor, op: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: op 0..3 rotate by 90*op degrees, op 4..7 flip first."""
    if op >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, op % 4, dims=(-2, -1))


def undo_dihedral(x: torch.Tensor, op: int) -> torch.Tensor:
    """The inverse of `dihedral(x, op)`."""
    x = torch.rot90(x, -(op % 4), dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if op >= 4 else x


def augment_batch(
    lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random dihedral op per sample, the same op on an LR and its HR. The inputs are untouched."""
    n = lr.shape[0]
    if hr.shape[0] != n:
        raise ValueError(f"augment_batch needs as many LR as HR images, got {n} and {hr.shape[0]}")
    if lr.shape[-1] != lr.shape[-2] or hr.shape[-1] != hr.shape[-2]:
        raise ValueError(f"augment_batch needs square images, got {tuple(lr.shape)} and {tuple(hr.shape)}")
    # Drawn on the CPU from a CPU generator: reproducible and resumable whatever the device, and
    # grouping the samples by op below then needs no GPU->CPU sync.
    ops = torch.randint(0, 8, (n,), generator=generator)
    lr_out, hr_out = torch.empty_like(lr), torch.empty_like(hr)
    for op in ops.unique().tolist():
        idx = torch.nonzero(ops == op).squeeze(1)
        lr_idx, hr_idx = idx.to(lr.device), idx.to(hr.device)
        lr_out.index_copy_(0, lr_idx, dihedral(lr.index_select(0, lr_idx), op))
        hr_out.index_copy_(0, hr_idx, dihedral(hr.index_select(0, hr_idx), op))
    return lr_out, hr_out
