"""Random crops from full-size photos, the field's way of training SR (BasicSR's `gt_size`,
traiNNer's `lq_size`): every step sees new 128x128 crops, drawn on the training device, their LR made
on the fly.

The photos are decoded once into the data cache (sr_core.data) as one flat uint8 tensor: each photo's
R, G, B planes end to end (`pixels`), with where each photo starts (`offsets`) and its size (`sizes`).
Three arrays, so they reach Ray's trials zero-copy through the object store, and a trial moves them to
its device once. A DIV2K-sized folder (800 photos of about 2040x1400) is about 6.6 GB of uint8: on the
node once (the object store, shared by every trial there), and once per trial on its device.

An epoch's draws (`crop_draws`), from the trial's own generator (its state is in every checkpoint, so
a resumed trial draws exactly the crops it would have drawn):

- a crop position, uniform over every position at which a 128x128 crop fits in any train photo, so a
  photo is drawn in proportion to its positions (as fixed patches are in proportion to the patches it
  holds) and every position is reachable;
- with augment, one of the 8 dihedral ops (and with rgb_permute, one of the 6 channel orders), as the
  fixed patches get (sr_core.augment).

`cut_crops` turns the draws of a batch into HR crops: a slice of each photo (a view, no copy) stacked,
then turned by the ops as the fixed patches are (measured on the CPU: 2.1 ms for 16 crops with ops and
channel orders, where folding the ops into one gather's int64 index took 4.5). `crop_lr` makes their
LR: sample j of a batch with `TRAIN_LR_KERNELS[j % 3]` (the crops are independent draws, so this is
the kernel mix of the fixed patches, each kernel a third of every batch), on the device, Pillow's by
its on-device twin (sr_core.resize.downscale_pil_like).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sr_core.augment import apply_ops, num_ops
from sr_core.resize import LR_KERNELS
from sr_core.sizes import HR_SIZE, SCALE

TRAIN_LR_KERNELS = LR_KERNELS  # the kernels the train LR is drawn from, where sr-search makes it (fixed or crops)


@dataclass(frozen=True, eq=False)
class Photos:
    """Full-size train photos: pixels uint8 [sum of 3*H*W], offsets int64 [N], sizes int64 [N, 2] (H, W)."""

    pixels: torch.Tensor
    offsets: torch.Tensor
    sizes: torch.Tensor
    names: tuple[str, ...]

    def __len__(self) -> int:
        """The images of a default epoch: the non-overlapping 128x128 patches the photos hold, so an
        epoch of crops is as long as an epoch of the fixed patches cut from the same photos."""
        return int(((self.sizes // HR_SIZE).prod(dim=1)).sum())

    @property
    def positions(self) -> torch.Tensor:
        """int64 [N]: the crop positions of each photo, (H - 127) x (W - 127)."""
        return (self.sizes - HR_SIZE + 1).prod(dim=1)

    def to(self, device: torch.device | str) -> Photos:
        return Photos(self.pixels.to(device), self.offsets.to(device), self.sizes.to(device), self.names)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pixels": self.pixels.numpy(), "offsets": self.offsets.numpy(), "sizes": self.sizes.numpy()}


def from_images(images: list[np.ndarray], names: list[str]) -> Photos:
    """HxWx3 uint8 arrays (each at least 128x128) -> Photos, planes end to end."""
    if len(images) != len(names) or not images:
        raise ValueError(f"from_images needs one name per image and at least one, got {len(images)}, {len(names)}")
    small = [n for img, n in zip(images, names) if min(img.shape[:2]) < HR_SIZE]
    if small:
        raise ValueError(f"photos smaller than {HR_SIZE}x{HR_SIZE}: {small}")
    sizes = torch.tensor([img.shape[:2] for img in images], dtype=torch.int64)
    lengths = 3 * sizes.prod(dim=1)
    offsets = torch.cumsum(lengths, 0) - lengths
    pixels = torch.from_numpy(np.concatenate([np.ascontiguousarray(img.transpose(2, 0, 1)).reshape(-1)
                                              for img in images]))
    return Photos(pixels, offsets, sizes, tuple(names))


def crop_draws(generator: torch.Generator, photos: Photos, count: int, augment: bool, rgb_permute: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`count` crops: (photo int64 [count], top, left, op int64 [count] or None), on the generator's
    device, each position equally likely among all positions of all photos."""
    device = generator.device
    positions = photos.positions.to(device)
    ends = torch.cumsum(positions, 0)
    flat = torch.randint(0, int(ends[-1]), (count,), generator=generator, device=device)
    photo = torch.searchsorted(ends, flat, right=True)
    within = flat - (ends[photo] - positions[photo])
    room = photos.sizes.to(device)[photo, 1] - HR_SIZE + 1  # positions per row of that photo
    ops = (torch.randint(0, num_ops(rgb_permute), (count,), generator=generator, device=device)
           if augment else None)
    return photo, within // room, within % room, ops


def photo_views(photos: Photos) -> list[torch.Tensor]:
    """Each photo as a uint8 [3, H, W] view of the pixels (no copy), on their device."""
    bounds = zip(photos.offsets.tolist(), photos.sizes.tolist())
    return [photos.pixels[start:start + 3 * h * w].view(3, h, w) for start, (h, w) in bounds]


def cut_crops(views: list[torch.Tensor], photo: list[int], top: list[int], left: list[int],
              ops: torch.Tensor | None, rgb_permute: bool = False) -> torch.Tensor:
    """uint8 [B, 3, 128, 128]: the crop at (top, left) of each photo (host ints: an epoch's draws are
    read to the host once), turned by its op as sr_core.augment.apply_ops turns a fixed patch."""
    crops = torch.stack([views[p][:, y:y + HR_SIZE, x:x + HR_SIZE] for p, y, x in zip(photo, top, left)])
    return crops if ops is None else apply_ops(crops, ops, rgb_permute)


@functools.lru_cache(maxsize=8)
def _kernel_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[3, 128, 32]: per TRAIN_LR_KERNELS, the 1-D x4 resize of a 128-pixel line as a matrix (the
    resize of an identity: sr-search's and Pillow's bicubic antialiased, OpenCV's not)."""
    eye = torch.eye(HR_SIZE, dtype=torch.float64).view(1, 1, HR_SIZE, HR_SIZE)
    line = {aa: F.interpolate(eye, size=(HR_SIZE, HR_SIZE // SCALE), mode="bicubic", antialias=aa,
                              align_corners=False)[0, 0] for aa in (True, False)}
    antialiased = {"sr-search": True, "pil": True, "opencv": False}
    with torch.inference_mode(False):
        return torch.stack([line[antialiased[k]] for k in TRAIN_LR_KERNELS]).to(device, dtype)


def crop_lr(hr: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, 32, 32]: sample j's LR by TRAIN_LR_KERNELS[j % 3], on hr's device, as two matrix
    products (the resize's horizontal pass, then its vertical one; Pillow's rounded to uint8 between
    them, as Pillow rounds). Equal to sr_core.resize.downscale_with(on_device=True) on every value of
    480 embedded patches for sr-search's and OpenCV's kernels, and within 1 gray level (on 8 in a
    million values) for Pillow's. Float64 on CUDA: TF32 matmuls would move values across a rounding."""
    dtype = torch.float64 if hr.device.type == "cuda" else torch.float32
    weights = _kernel_weights(hr.device, dtype)
    lr = torch.empty(len(hr), 3, HR_SIZE // SCALE, HR_SIZE // SCALE, dtype=torch.uint8, device=hr.device)
    step = len(TRAIN_LR_KERNELS)
    for k, kernel in enumerate(TRAIN_LR_KERNELS[:len(hr)]):
        wide = hr[k::step].to(dtype) @ weights[k]  # [n, 3, 128, 32]: one GEMM
        if kernel == "pil":
            wide = wide.round().clamp(0, 255)
        small = (wide.transpose(-1, -2) @ weights[k]).transpose(-1, -2)  # [n, 3, 32, 32]
        lr[k::step] = small.round().clamp(0, 255).to(torch.uint8)
    return lr
