"""The sample grid logged with each finished trial: columns LR / bicubic / SR / HR, one row per image."""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
from PIL import Image, ImageDraw

from sr_core.data import load_cached
from sr_core.infer import load_model, upscale
from sr_core.pixels import to_float, to_uint8
from sr_core.resize import bicubic_upscale

ROWS = 4
_LABELS = ("LR (nearest)", "bicubic", "SR", "HR")


def _to_image(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x).permute(1, 2, 0).numpy()


@functools.lru_cache(maxsize=4)
def _first_val(data_path: str, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first val images of a data cache, read once per process (every trial's grid uses them)."""
    val = load_cached(data_path).val
    return val.lr[:rows].clone(), val.hr[:rows].clone()


def sample_grid(weights: str | os.PathLike, data_path: str | os.PathLike, out: str | os.PathLike,
                rows: int = ROWS) -> None:
    """Upscale the first `rows` val images with the weights and write the comparison PNG."""
    model = load_model(weights)
    lr_u8, hr_u8 = _first_val(str(data_path), rows)
    hr = to_float(hr_u8)
    sr = upscale(model, lr_u8)
    bicubic = bicubic_upscale(to_float(lr_u8))
    nearest = torch.nn.functional.interpolate(to_float(lr_u8), scale_factor=4, mode="nearest")
    size, pad, head = hr.shape[-1], 4, 16
    n = lr_u8.shape[0]
    canvas = Image.new("RGB", (4 * size + 5 * pad, head + n * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for col, label in enumerate(_LABELS):
        draw.text((pad + col * (size + pad) + 2, 2), label, fill="black")
    for row in range(n):
        for col, img in enumerate((nearest[row], bicubic[row], sr[row], hr[row])):
            tile = Image.fromarray(_to_image(img))
            canvas.paste(tile, (pad + col * (size + pad), head + row * (size + pad)))
    canvas.save(out)
