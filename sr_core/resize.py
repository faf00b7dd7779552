"""The x4 resizes of the data pipeline, on any device.

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

from sr_core.sizes import SCALE

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


def downscale_pil_like(hr: torch.Tensor) -> torch.Tensor:
    """Pillow's x4 bicubic made on any device: the horizontal pass, rounded to uint8 as Pillow rounds
    between its passes, then the vertical one. On 512 embedded train patches it equals Pillow's on
    99.94% of the values and is 1 gray level off on the rest (Pillow's fixed-point weights)."""
    _check_hr(hr, "downscale_pil_like")
    batch = hr.float() if hr.dim() == 4 else hr.float().unsqueeze(0)
    h, w = batch.shape[-2:]
    wide = F.interpolate(batch, size=(h, w // SCALE), mode="bicubic", antialias=True, align_corners=False)
    lr = F.interpolate(wide.round().clamp(0, 255), size=(h // SCALE, w // SCALE), mode="bicubic", antialias=True,
                       align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return lr if hr.dim() == 4 else lr[0]


def _downscale_opencv(hr: torch.Tensor) -> torch.Tensor:
    batch = hr.float() if hr.dim() == 4 else hr.float().unsqueeze(0)
    size = (hr.shape[-2] // SCALE, hr.shape[-1] // SCALE)
    lr = F.interpolate(batch, size=size, mode="bicubic", antialias=False, align_corners=False)
    lr = lr.round().clamp(0, 255).to(torch.uint8)
    return lr if hr.dim() == 4 else lr[0]


def downscale_with(hr: torch.Tensor, kernel: str, on_device: bool = False) -> torch.Tensor:
    """x4 resize of uint8 [N,3,H,W] or [3,H,W] with one of ``LR_KERNELS`` (see the module docstring).
    `on_device`: "pil" by `downscale_pil_like`, with no trip through Pillow on the host (random crops'
    LR, made every step)."""
    if kernel not in LR_KERNELS:
        raise ValueError(f"unknown LR kernel {kernel!r}; expected one of {LR_KERNELS}")
    _check_hr(hr, f"downscale_with(kernel={kernel!r})")
    if kernel == "pil":
        return downscale_pil_like(hr) if on_device else _downscale_pil(hr)
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
