"""Per-image MSE, PSNR and SSIM on batched tensors, on any device (no numpy round trip).

Conventions (DESIGN.md): RGB in [0,1], no border crop, pred clamped to [0,1] first.
- mse: mean over every pixel and channel of one image.
- psnr: 10*log10(1/mse) per image; a study's PSNR is the mean of these (not PSNR of the pooled MSE).
- ssim: Wang et al. with an 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, data range 1,
  per channel over the valid (unpadded) region, averaged over channels. Equals
  skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0, channel_axis=0).

Paper metrics, psnr_y and ssim_y: the same PSNR and SSIM on the luma of YCbCr (ITU-R BT.601, as
MATLAB's rgb2ycbcr and scikit-image's: Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0,1]),
with `crop` pixels cut from every border (papers crop the scale, 4). They work on Y/255, in
[16/255, 235/255], with data range 1: the same numbers as Y in [16, 235] with data range 255 (every
term of PSNR and SSIM scales with the data range), which is how BasicSR and the MATLAB scripts state it.

All of them compute in float64: it costs nothing next to a training epoch and keeps the match with
scikit-image within 1e-5 (float32 loses it in the variance term E[x^2] - E[x]^2).
"""
from __future__ import annotations

import functools
import math

import torch

_WIN, _SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03


def _prepare(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two [N,C,H,W] tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.detach().double().clamp(0.0, 1.0), target.detach().double()


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).pow(2).mean(dim=(1, 2, 3))


def _psnr(mse_values: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / mse_values)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _mse(*_prepare(pred, target))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB; inf for an exact match (as scikit-image)."""
    return _psnr(mse(pred, target))


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    # scipy's gaussian_filter(sigma=1.5, truncate=3.5) -> radius 5 -> 11 taps, normalised.
    x = torch.arange(_WIN, dtype=torch.float64, device=device) - (_WIN - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * _SIGMA ** 2))
    return g / g.sum()


@functools.lru_cache(maxsize=8)
def _band(n: int, device: torch.device) -> torch.Tensor:
    """[n, n-10] matrix whose column j holds the Gaussian taps at rows j..j+10: x @ band filters x's
    last axis over the valid region. One float64 GEMM instead of a float64 convolution, which has no
    fast kernel on CPU: ~3x faster SSIM, equal to rounding (the same sums of products)."""
    g = _gaussian_1d(device)
    band = torch.zeros(n, n - _WIN + 1, dtype=torch.float64, device=device)
    for j in range(n - _WIN + 1):
        band[j:j + _WIN, j] = g
    return band


def _filter(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian on each channel, valid region only ([N,C,H,W] -> [N,C,H-10,W-10])."""
    h, w = x.shape[-2:]
    return _band(h, x.device).T @ (x @ _band(w, x.device))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _ssim(*_prepare(pred, target))


def _ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if min(pred.shape[-2:]) < _WIN:
        raise ValueError(f"SSIM needs images of at least {_WIN}x{_WIN}, got {tuple(pred.shape[-2:])}")
    c1, c2 = _K1 ** 2, _K2 ** 2
    mu_x, mu_y = _filter(pred), _filter(target)
    var_x = _filter(pred * pred) - mu_x * mu_x
    var_y = _filter(target * target) - mu_y * mu_y
    cov = _filter(pred * target) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


# BT.601 luma for RGB in [0,1], divided by 255: Y/255 = (16 + 65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
_Y_OFFSET = 16 / 255


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Float RGB [N,3,H,W] in [0,1] -> BT.601 luma Y/255 [N,1,H,W], in [16/255, 235/255] (same dtype)."""
    if not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_y expects float RGB [N,3,H,W], got {x.dtype} {tuple(x.shape)}")
    weights = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True) + _Y_OFFSET


def _y_cropped(pred: torch.Tensor, target: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepared (clamped float64) pred and target -> their Y/255 with `crop` pixels cut from every border."""
    if not (isinstance(crop, int) and crop >= 0):
        raise ValueError(f"crop must be an int >= 0, got {crop=}")
    h, w = pred.shape[-2:]
    if 2 * crop >= min(h, w):
        raise ValueError(f"crop={crop} from every border leaves nothing of a {h}x{w} image")
    y_pred, y_target = rgb_to_y(pred), rgb_to_y(target)
    return y_pred[..., crop:h - crop, crop:w - crop], y_target[..., crop:h - crop, crop:w - crop]


def psnr_y(pred: torch.Tensor, target: torch.Tensor, crop: int = 4) -> torch.Tensor:
    """Per-image PSNR on Y (data range 1 on Y/255), `crop` pixels cut from each border: papers' PSNR."""
    return _psnr(_mse(*_y_cropped(*_prepare(pred, target), crop)))


def ssim_y(pred: torch.Tensor, target: torch.Tensor, crop: int = 4) -> torch.Tensor:
    """Per-image SSIM on Y (as `ssim`, data range 1 on Y/255), `crop` pixels cut from each border."""
    return _ssim(*_y_cropped(*_prepare(pred, target), crop))


def per_image_metrics(pred: torch.Tensor, target: torch.Tensor, crop: int = 4) -> dict[str, torch.Tensor]:
    """mse, psnr, ssim, psnr_y and ssim_y of each image at once, equal to calling each function: it
    shares the float64 copies, the luma and each MSE, which an evaluation would otherwise redo five
    times (a quarter of the metrics' time besides SSIM's filters)."""
    pred, target = _prepare(pred, target)
    y_pred, y_target = _y_cropped(pred, target, crop)
    mse_rgb, mse_y = _mse(pred, target), _mse(y_pred, y_target)
    return {"mse": mse_rgb, "psnr": _psnr(mse_rgb), "ssim": _ssim(pred, target),
            "psnr_y": _psnr(mse_y), "ssim_y": _ssim(y_pred, y_target)}


def psnr_from_mse(value: float) -> float:
    return math.inf if value <= 0 else 10.0 * math.log10(1.0 / value)
