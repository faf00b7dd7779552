"""Pure tensor ops of the data pipeline, on any device: the x4 resizes, uint8 -> float, and the
8 dihedral symmetries used for augmentation and self-ensemble.

LR kernels. ``downscale`` is sr-search's own x4 resize (bicubic with antialias, as PIL's) and makes
every LR that is *measured against*: val, bicubic baselines, samples. Users' LR images come from other
pipelines too, so ``downscale_with(hr, kernel)`` offers the common ones by name (``LR_KERNELS``):

- ``"sr-search"``: ``downscale`` itself;
- ``"pil"``: Pillow's ``Image.resize(..., Image.BICUBIC)`` (antialiased; rounds to uint8 between its
  horizontal and vertical passes, so it differs from ours by a few gray levels);
- ``"opencv"``: OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)``: bicubic (a = -0.75)
  sampled without antialiasing, so fine texture aliases. torch's non-antialiased bicubic computes the
  same kernel at the same sample positions (cross-checked against opencv-python-headless: see
  docs/demo-design.md).

Training LR made by sr-search mixes the three (one kernel per patch, see ``sr_core.data``), so the
models it trains do not overfit one resize.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SCALE = 4
LR_KERNELS = ("sr-search", "pil", "opencv")


def downscale(hr: torch.Tensor) -> torch.Tensor:
    """sr-search's x4 resize: uint8 [N,3,H,W] or [3,H,W] -> uint8, bicubic with antialias (as PIL's).

    Every LR that metrics are computed on (val, bicubic baselines) is made with it.
    """
    _check_hr(hr, "downscale")
    h, w = hr.shape[-2:]
    batch = hr.float() if hr.dim() == 4 else hr.float().unsqueeze(0)
    size = (h // SCALE, w // SCALE)
    lr = F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)
    lr = lr.round().clamp(0, 255).to(torch.uint8)
    return lr if hr.dim() == 4 else lr[0]


def _check_hr(hr: torch.Tensor, what: str) -> None:
    if hr.dtype != torch.uint8 or hr.dim() not in (3, 4):
        raise ValueError(f"{what} expects uint8 [N,3,H,W] or [3,H,W], got {hr.dtype} {tuple(hr.shape)}")
    h, w = hr.shape[-2:]
    if h % SCALE or w % SCALE:
        raise ValueError(f"{what} needs height and width divisible by {SCALE}, got {h}x{w}")


def _downscale_pil(hr: torch.Tensor) -> torch.Tensor:
    batch = hr if hr.dim() == 4 else hr.unsqueeze(0)
    h, w = batch.shape[-2:]
    out = [np.asarray(Image.fromarray(img.permute(1, 2, 0).cpu().numpy()).resize(
        (w // SCALE, h // SCALE), Image.BICUBIC)) for img in batch]
    lr = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(hr.device)
    return lr if hr.dim() == 4 else lr[0]


def _downscale_opencv(hr: torch.Tensor) -> torch.Tensor:
    batch = hr.float() if hr.dim() == 4 else hr.float().unsqueeze(0)
    size = (hr.shape[-2] // SCALE, hr.shape[-1] // SCALE)
    lr = F.interpolate(batch, size=size, mode="bicubic", antialias=False, align_corners=False)
    lr = lr.round().clamp(0, 255).to(torch.uint8)
    return lr if hr.dim() == 4 else lr[0]


def downscale_with(hr: torch.Tensor, kernel: str) -> torch.Tensor:
    """x4 resize of uint8 [N,3,H,W] or [3,H,W] with one of ``LR_KERNELS`` (see the module docstring)."""
    if kernel not in LR_KERNELS:
        raise ValueError(f"unknown LR kernel {kernel!r}; expected one of {LR_KERNELS}")
    _check_hr(hr, f"downscale_with(kernel={kernel!r})")
    if kernel == "pil":
        return _downscale_pil(hr)
    if kernel == "opencv":
        return _downscale_opencv(hr)
    return downscale(hr)


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
