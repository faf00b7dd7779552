"""MATLAB's ``imresize(img, 1/scale, 'bicubic')``, the resize that made the LR images of the SR
benchmarks (Set5, Set14, B100, Urban100, Manga109), ``mod_crop``, the crop papers apply first, and
``matlab_upscale``, MATLAB's ``imresize(lr, scale, 'bicubic')``: the "Bicubic" row of their tables.

What MATLAB does (``imresize.m``; the numpy port ``fatheral/matlab_imresize``, which follows it line by
line, reports zero difference from R2015b's output for both uint8 and double images):

- cubic kernel with a = -0.5; when shrinking it is stretched by 1/scale (antialiasing): 18 taps at x4;
- output pixel x (1-based) samples input position u = x/scale + (1 - 1/scale)/2 (corners aligned);
- taps outside the image are mirrored with the edge pixel repeated (d c b a | a b c d | d c b a), and
  each output pixel's weights are normalised to sum to 1;
- when enlarging the kernel is not stretched (4 taps), the same rules otherwise;
- the output size is ceil(size/scale): a 451-pixel side gives 113 (mod-crop first, so HR = 4 x LR);
- rows first, then columns, and a uint8 image stays uint8 between the two passes: each pass saturates
  to 0..255 and rounds half away from zero.

Each pass here is one float64 product with an [out, in] weight matrix built by those rules, on any
device and any size.

Why not a package from PyPI: written here (about 60 lines, no runtime dependency) because neither of
the two that claim MATLAB parity does what MATLAB does to a uint8 image. ``bicubic-pytorch`` computes
in float32 and rounds once, at the end: 9.4% of the LR pixels of the photos below differ from
MATLAB's rule, by up to 6 gray levels where the first pass saturates (mean 0.094, PSNR 58.4 dB).
``resize-right`` has no uint8 path, and where a side does not divide by the scale it aligns the image
centres, not the corners (a half-HR-pixel shift at 451 wide). Both are test-only references
(tests/sr_core/test_matlab_resize.py): our uint8 output equals bicubic-pytorch's own 1-D passes
rounded MATLAB's way to 0 gray levels, our float output is within 1e-3 gray levels of its imresize
(8e-5 measured) and equals resize-right's (float64, symmetric padding) to 1e-9 where the sizes divide.

How far the usual x4 resizes are from MATLAB's LR: 8 scikit-image photos at full size, mod-cropped
(astronaut, coffee, chelsea, rocket, hubble_deep_field, immunohistochemistry, camera as RGB, retina),
all LR pixels pooled, in gray levels (measured 2026-12-01 with that test file run as a script):

- Pillow ``Image.resize(BICUBIC)``: max 12, mean 0.135, PSNR 56.4 dB;
- ``sr_core.resize.downscale`` (torch bicubic, antialias=True, also a = -0.5): max 13, mean 0.103,
  PSNR 57.4 dB.

Both renormalise the truncated kernel at the borders where MATLAB mirrors (the large differences:
away from the 3 outermost LR pixels the max is 5 for Pillow, 3 for torch), and round differently
(Pillow between its passes too, torch once). Small, but a paper's LR is MATLAB's.
"""
from __future__ import annotations

import functools
import math

import torch

from sr_core.sizes import SCALE

_TAPS = 4  # the cubic kernel's support at scale 1


def mod_crop(hr: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Crop the bottom and right of [..., H, W] to multiples of `scale` (a view), as papers do before
    making LR, so that HR is exactly scale x LR."""
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"mod_crop needs an int scale >= 1, got {scale=}")
    h, w = hr.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"mod_crop: an image of {h}x{w} has nothing left at {scale=}")
    return hr[..., :h - h % scale, :w - w % scale]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic with a = -0.5 (MATLAB's), support [-2, 2]."""
    ax = x.abs()
    near = (1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
    far = (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=16)
def _weights(in_len: int, scale: float) -> torch.Tensor:
    """[ceil(scale*in_len), in_len] float64 matrix: row i holds output pixel i's weights on the input,
    MATLAB's contributions (antialiased kernel, symmetric edges, normalised) scattered onto the pixels
    they read (a mirrored tap adds to the pixel it mirrors)."""
    out_len = math.ceil(scale * in_len)
    stretch = min(scale, 1.0)  # antialiasing widens the kernel only when shrinking
    width = _TAPS / stretch
    u = torch.arange(1, out_len + 1, dtype=torch.float64) / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)  # 1-based
    weights = stretch * _cubic(stretch * (u[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    # MATLAB's mirror: aux = [1..n, n..1], index (t-1) mod 2n.
    period = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    index = period[(taps.long() - 1).remainder(2 * in_len)]
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    return matrix.scatter_add_(1, index, weights)


def _round_like_matlab(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's uint8(x): saturate to 0..255, round half away from zero (torch.round goes to even)."""
    return torch.floor(x.clamp(0, 255) + 0.5)


def _resize(x: torch.Tensor, scale: float, round_each_pass: bool) -> torch.Tensor:
    # Cached and shared: only ever read (a matrix product makes a new tensor).
    rows = _weights(x.shape[-2], scale).to(x.device)
    cols = _weights(x.shape[-1], scale).to(x.device)
    x = rows @ x.double()
    if round_each_pass:
        x = _round_like_matlab(x)
    x = x @ cols.T
    return _round_like_matlab(x) if round_each_pass else x


def _check(img: torch.Tensor, scale: int, what: str, kind: str, dtype_ok: bool) -> None:
    if not dtype_ok or img.dim() not in (3, 4):
        raise ValueError(f"{what} expects {kind} [C,H,W] or [N,C,H,W], got {img.dtype} {tuple(img.shape)}")
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"{what} needs an int scale >= 1, got {scale=}")


def matlab_downscale(img: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """MATLAB's ``imresize(img, 1/scale, 'bicubic')`` on uint8 [C,H,W] or [N,C,H,W] -> uint8
    [..., ceil(H/scale), ceil(W/scale)], by MATLAB's rules (see the module docstring)."""
    _check(img, scale, "matlab_downscale", "uint8", img.dtype == torch.uint8)
    return _resize(img, 1 / scale, round_each_pass=True).to(torch.uint8)


def matlab_downscale_float(img: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """MATLAB's ``imresize`` of a double image: float [C,H,W] or [N,C,H,W] -> float64, no rounding,
    no clamping (bicubic overshoots at edges, as in MATLAB)."""
    _check(img, scale, "matlab_downscale_float", "float", img.is_floating_point())
    return _resize(img, 1 / scale, round_each_pass=False)


def matlab_upscale(img: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """MATLAB's ``imresize(img, scale, 'bicubic')`` on uint8 [C,H,W] or [N,C,H,W] -> uint8
    [..., scale*H, scale*W]: the bicubic baseline SR papers report (Set5 x4: 28.42 dB PSNR-Y), which
    torch's and Pillow's bicubic (a = -0.75 and -0.5, other edges) only approximate."""
    _check(img, scale, "matlab_upscale", "uint8", img.dtype == torch.uint8)
    return _resize(img, float(scale), round_each_pass=True).to(torch.uint8)
