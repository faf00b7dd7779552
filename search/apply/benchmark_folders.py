"""Benchmark folders for `sr-search evaluate`, read the way SR papers prepare Set5, Set14 and B100.

Each folder holds full-size HR images of any size (PNG, JPEG, BMP). Each image is decoded to RGB (a
gray one replicated to three equal channels, so its Y is the gray level's), mod-cropped at the bottom
and right to a multiple of the scale, and paired with its LR, made by one of `LR_KERNELS`:

- ``matlab`` (default): MATLAB's ``imresize(hr, 1/4, 'bicubic')`` (sr_core.matlab_resize), the LR of
  the papers' tables;
- ``pil``: Pillow's bicubic ``Image.resize`` (a few gray levels from MATLAB's, see sr_core.matlab_resize);
- ``given``: DIR/lr/NAME.* (or DIR/LR/, as many benchmark packs ship) under the same names, exactly a
  quarter of the mod-cropped HR.

Everything is decoded and checked here, before a model is loaded or anything is logged: an unreadable
file, an empty folder, an LR without its HR (or the reverse), a wrong LR size or an image too small
to score is a DataError naming the file, and the command writes nothing.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_core.benchmark_photos import LR_FOLDER, LR_FOLDERS
from sr_core.contract import EVAL_FOLDER_PATTERN
from sr_core.full_val import CROP as FULL_VAL_CROP
from sr_core.images import IMAGE_SUFFIXES, DataError, list_images, read_rgb
from sr_core.matlab_resize import matlab_downscale, mod_crop
from sr_core.resize import downscale_with
from sr_core.sizes import SCALE

LR_KERNELS = ("matlab", "pil", "given")
#: How tables and progress lines say where an LR came from.
LR_KERNEL_WORDS = {"matlab": "MATLAB's bicubic imresize", "pil": "Pillow's bicubic", "given": "the folder's lr/"}
CROP = FULL_VAL_CROP  # pixels cut from each border before PSNR-Y and SSIM-Y, as papers do
_SSIM_WINDOW = 11
#: The smallest mod-cropped side that leaves an SSIM window after the border crop (a multiple of SCALE).
MIN_SIDE = -(-(2 * CROP + _SSIM_WINDOW) // SCALE) * SCALE
_SUFFIXES = "/".join(IMAGE_SUFFIXES)


@dataclass(frozen=True)
class BenchmarkImage:
    name: str  # the file's stem
    hr: torch.Tensor  # uint8 [3,H,W], mod-cropped
    lr: torch.Tensor  # uint8 [3,H/4,W/4]


@dataclass(frozen=True)
class BenchmarkFolder:
    name: str  # the folder's own name: <folder> in eval/<folder>/psnr_y
    path: Path
    lr_kernel: str
    images: tuple[BenchmarkImage, ...]


def _as_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1).contiguous()


def _folder_name(path: Path) -> str:
    name = path.resolve().name
    if not re.fullmatch(EVAL_FOLDER_PATTERN, name):
        raise DataError(f"{path}: the folder's name {name!r} becomes part of MLflow metric names "
                        "(eval/<folder>/psnr_y), which allow only letters, digits, '_', '.' and '-'; "
                        "rename the folder or link it under such a name.")
    return name


def _given_lr(path: Path, hr_files: dict[str, Path]) -> dict[str, Path]:
    """DIR/lr/'s (or DIR/LR/'s) images, paired with DIR's by name both ways."""
    folder = next((path / name for name in LR_FOLDERS if (path / name).is_dir()), path / LR_FOLDER)
    if not folder.is_dir():
        raise DataError(f"no LR folder in {path}: --lr-kernel given reads each image's LR from DIR/{LR_FOLDER}/ "
                        f"(or DIR/LR/) under the same name; add it, or let sr-search make the LR (--lr-kernel "
                        "matlab).")
    lr_files = list_images(folder)
    for name, lr_path in lr_files.items():
        if name not in hr_files:
            raise DataError(f"{lr_path} has no HR image {path / name}.* ({_SUFFIXES}); LR and HR are "
                            "paired by name, so add the HR or remove this LR.")
    for name, hr_path in hr_files.items():
        if name not in lr_files:
            raise DataError(f"{hr_path} has no LR image {folder / name}.* ({_SUFFIXES}); with "
                            "--lr-kernel given every HR needs its LR under the same name.")
    return lr_files


def _make_lr(hr: torch.Tensor, kernel: str, lr_path: Path | None) -> torch.Tensor:
    if kernel == "matlab":
        return matlab_downscale(hr)
    if kernel == "pil":
        return downscale_with(hr, "pil")
    lr = _as_tensor(lr_path)
    want = (hr.shape[-2] // SCALE, hr.shape[-1] // SCALE)
    if tuple(lr.shape[-2:]) != want:
        raise DataError(f"{lr_path} is {lr.shape[-2]}x{lr.shape[-1]} (HxW); its HR mod-cropped to "
                        f"{hr.shape[-2]}x{hr.shape[-1]} needs exactly {want[0]}x{want[1]} (1/{SCALE}); "
                        "make the LR from the mod-cropped HR.")
    return lr


def _image(name: str, hr_path: Path, kernel: str, lr_path: Path | None) -> BenchmarkImage:
    full = _as_tensor(hr_path)
    if min(side - side % SCALE for side in full.shape[-2:]) < MIN_SIDE:
        raise DataError(f"{hr_path} is {full.shape[-2]}x{full.shape[-1]} (HxW); scoring needs at least "
                        f"{MIN_SIDE}x{MIN_SIDE} after the mod-crop (an {_SSIM_WINDOW}x{_SSIM_WINDOW} SSIM "
                        f"window once {CROP} pixels are cut from each border).")
    hr = mod_crop(full).contiguous()
    return BenchmarkImage(name, hr, _make_lr(hr, kernel, lr_path))


def load_benchmark_folder(path: str | Path, lr_kernel: str = "matlab") -> BenchmarkFolder:
    """Every image of one folder, decoded, mod-cropped and paired with its LR (module docstring)."""
    if lr_kernel not in LR_KERNELS:
        raise ValueError(f"lr_kernel must be one of {LR_KERNELS}, got {lr_kernel=}")
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: benchmark folder not found (--data takes folders of HR images)")
    name = _folder_name(path)
    return BenchmarkFolder(name, path, lr_kernel, benchmark_images(path, lr_kernel))


def benchmark_images(path: Path, lr_kernel: str = "matlab") -> tuple[BenchmarkImage, ...]:
    """An existing folder's images, each decoded, checked, mod-cropped and paired with its LR: what
    `evaluate` scores, and what a study's [study].full_val scores in the loop (sr_core.full_val)."""
    hr_files = list_images(path)
    if not hr_files:
        raise DataError(f"{path} has no {_SUFFIXES} images directly in it; a benchmark folder holds the "
                        f"full-size HR images (their LR in {LR_FOLDER}/ with --lr-kernel given).")
    lr_files = _given_lr(path, hr_files) if lr_kernel == "given" else {}
    return tuple(_image(n, p, lr_kernel, lr_files.get(n)) for n, p in hr_files.items())


def load_benchmark_folders(paths: Sequence[str | Path], lr_kernel: str = "matlab") -> list[BenchmarkFolder]:
    """Each folder by `load_benchmark_folder`; two folders of one name would share their metric keys."""
    folders: list[BenchmarkFolder] = []
    for path in paths:
        folder = load_benchmark_folder(path, lr_kernel)
        for other in folders:
            if other.name == folder.name:
                raise DataError(f"{folder.path} and {other.path} are both called {folder.name!r}, and "
                                "a folder's figures are logged under its name; rename one of them.")
        folders.append(folder)
    return folders
