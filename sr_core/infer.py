"""Upscaling with a trained model: batches of patches, whole images of any size (tiled), optional x8
self-ensemble, loading saved weights.

Whole images (`upscale_image`) are cut into square tiles of `tile` LR pixels, each run with `overlap`
LR pixels of real context around it, and only its core kept. The overlap defaults to the net's
receptive radius (`model.receptive_radius()`: 2B + 4 LR pixels for the residual net), so no zero
padding at a tile's edge reaches a kept pixel and the tiled output equals the untiled one up to float
rounding (tested). The tile defaults to the largest whose activations fit `activation_bytes`: a
forward's largest tensor is the residual net's 4C channels at 2x, or the refiner's C channels at 4x,
both 16C floats per LR pixel (`model.widest_activation()`). A block keeps about 3 of that size alive
(its input, its branch, their sum), and the CPU convolution adds reordered copies: the peak RSS of one
float32 forward measured here was 2.4x the widest tensor for the residual net and 4-5x for the refiner
(whose blocks all run at 4x), so a tile of side s, overlap included, is budgeted 6 x 16C x s^2 x 4
bytes. The default bound, 8 GiB, takes a whole 353x353 LR image (the 1411x1411 retina photo) in one
piece for C <= 64 and tiles it for the study's wide nets: C = 612, B = 24 gets s = 191, a core of 87
after 52 pixels of overlap on each side, so each output pixel is computed (191/87)^2 = 4.8 times; at
16 GiB s = 270 (2.6 times); at 4 GiB s = 135 (19 times). Exactness costs compute, never quality.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from sr_core.files import atomic_path
from sr_core.dihedral import dihedral, undo_dihedral
from sr_core.models import build_model
from sr_core.sizes import SCALE

ACTIVATION_BYTES = 8 * 2 ** 30  # upscale_image's default bound on a tile's activations
_LIVE_ACTIVATIONS = 6  # widest-size tensors a forward's peak is budgeted at (module docstring)
_FLOAT_BYTES = 4
WHOLE_IMAGE = 2 ** 30  # a tile no image reaches: one forward of the whole image


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _ensemble(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              self_ensemble: bool) -> torch.Tensor:
    """forward(x), or its mean over the 8 rot90/flip variants of x, each mapped back first (rot90 of a
    non-square image swaps its sides; mapping back swaps them again); clamped to [0,1]."""
    ops = range(8) if self_ensemble else [0]
    acc = None
    for op in ops:
        y = undo_dihedral(forward(dihedral(x, op)), op)
        acc = y if acc is None else acc + y
    return (acc / len(ops)).clamp(0, 1)


@torch.no_grad()
def upscale(model: nn.Module, lr_batch: torch.Tensor, self_ensemble: bool = False,
            batch_size: int = 64) -> torch.Tensor:
    """LR images [N,3,h,w] (uint8, or float in [0,1]) -> float [N,3,4h,4w] in [0,1], on CPU.

    Runs on the model's device. Self-ensemble averages the model's output over the 8 rot90/flip
    variants of each input (each mapped back first), a free ~0.1-0.3 dB at 8x the compute.
    """
    if lr_batch.dim() != 4 or lr_batch.shape[1] != 3:
        raise ValueError(f"expected LR images [N,3,h,w], got {tuple(lr_batch.shape)}")
    device = next(model.parameters()).device
    outputs = []
    with _eval_mode(model):
        for start in range(0, lr_batch.shape[0], batch_size):
            x = _as_float(lr_batch[start:start + batch_size].to(device))
            outputs.append(_ensemble(lambda t: model(t).float(), x, self_ensemble).cpu())
    return torch.cat(outputs)


def tile_for(model: nn.Module, overlap: int, activation_bytes: int = ACTIVATION_BYTES) -> int:
    """The largest tile side (LR pixels, without the overlap) whose forward, overlap included, keeps
    the activations under `activation_bytes` (see the module docstring)."""
    per_pixel = _LIVE_ACTIVATIONS * model.widest_activation() * _FLOAT_BYTES
    tile = math.isqrt(activation_bytes // per_pixel) - 2 * overlap
    if tile < 1:
        raise ValueError(f"{activation_bytes=} cannot hold even a 1-pixel tile with {overlap=} pixels "
                         f"of overlap for this net ({per_pixel} bytes per LR pixel); raise it")
    return tile


def tiling_for(model: nn.Module, tile: int | None = None,
               activation_bytes: int = ACTIVATION_BYTES) -> tuple[int, int]:
    """(tile, overlap) for `upscale_image`: the net's receptive radius and `tile` or `tile_for`'s. A
    net that does not declare `receptive_radius()` and `widest_activation()` (a user's arch may not,
    sr_core.archs) runs each image whole: a tile of any size would need its radius to be exact."""
    if not (hasattr(model, "receptive_radius") and hasattr(model, "widest_activation")):
        return WHOLE_IMAGE, 0
    overlap = model.receptive_radius()
    return tile or tile_for(model, overlap, activation_bytes), overlap


def _tiled_forward(model: nn.Module, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """model(x) for one image [1,3,h,w], a tile at a time; the output is assembled on the CPU."""
    h, w = x.shape[-2:]
    out = torch.empty(1, 3, SCALE * h, SCALE * w)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            y = model(x[..., t0:min(bottom + overlap, h), l0:min(right + overlap, w)]).float()
            core = y[..., SCALE * (top - t0):SCALE * (bottom - t0), SCALE * (left - l0):SCALE * (right - l0)]
            out[..., SCALE * top:SCALE * bottom, SCALE * left:SCALE * right] = core.cpu()
    return out


def _check_tiling(model: nn.Module, tile: int | None, overlap: int | None) -> int:
    if overlap is None:
        if not hasattr(model, "receptive_radius"):
            raise ValueError(f"{type(model).__name__} does not declare its receptive_radius(): pass overlap")
        overlap = model.receptive_radius()
    if not (isinstance(overlap, int) and overlap >= 0):
        raise ValueError(f"overlap must be an int >= 0 (LR pixels), got {overlap=}")
    if tile is not None and not (isinstance(tile, int) and tile >= 1):
        raise ValueError(f"tile must be an int >= 1 (LR pixels) or None, got {tile=}")
    return overlap


@torch.no_grad()
def upscale_image(model: nn.Module, lr: torch.Tensor, *, tile: int | None = None,
                  overlap: int | None = None, self_ensemble: bool = False,
                  activation_bytes: int = ACTIVATION_BYTES) -> torch.Tensor:
    """One LR image [3,h,w] of any size (uint8, or float in [0,1]; gray replicated to RGB by the
    caller) -> float [3,4h,4w] in [0,1], on CPU, run on the model's device.

    `tile` (LR pixels) defaults to `tile_for(model, overlap, activation_bytes)`; `overlap` to the net's
    receptive radius, which makes tiling exact (module docstring). Self-ensemble as in `upscale`.
    """
    if lr.dim() != 3 or lr.shape[0] != 3:
        raise ValueError(f"upscale_image expects one RGB image [3,h,w] (replicate gray to 3 channels), "
                         f"got {tuple(lr.shape)}")
    overlap = _check_tiling(model, tile, overlap)
    tile = tile_for(model, overlap, activation_bytes) if tile is None else tile
    x = _as_float(lr.to(next(model.parameters()).device))[None]
    with _eval_mode(model):
        return _ensemble(lambda t: _tiled_forward(model, t, tile, overlap), x, self_ensemble)[0]


def save_weights(path: str | os.PathLike, arch: str, blocks: int, channels: int,
                 state_dict: dict[str, torch.Tensor], arch_params: dict | None = None) -> None:
    """A weights file that says which network it belongs to, so `load_model` needs nothing else."""
    with atomic_path(path) as tmp:
        torch.save({"config": {"arch": arch, "blocks": blocks, "channels": channels,
                               **({"arch_params": dict(arch_params)} if arch_params else {})},
                    "state_dict": state_dict}, tmp)


def model_of(cfg: dict) -> nn.Module:
    """The network a saved config names ({arch, blocks, channels} and a user arch's arch_params)."""
    return build_model(cfg["arch"], int(cfg["blocks"]), int(cfg["channels"]), cfg.get("arch_params") or {})


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network from a file written by `save_weights` or a trial's `best.pt`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = model_of(saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
