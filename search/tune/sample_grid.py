"""The sample grid logged with each finished trial: columns LR / bicubic / SR / HR, one row per image.

Its rows are the study's first comparison crops (sr_core.crops): one per scene, the hardest of each,
so the grid spans several photos instead of the first val patches of one.
"""
from __future__ import annotations

import os

from PIL import Image, ImageDraw

from sr_core.crops import bicubic_crops, hr_crops, render_crops, study_crops
from sr_core.sizes import SCALE

ROWS = 4
_LABELS = ("LR (nearest)", "bicubic", "SR", "HR")


def sample_grid(weights: str | os.PathLike, data_path: str | os.PathLike, out: str | os.PathLike,
                rows: int = ROWS) -> None:
    """Upscale `rows` comparison crops of the study's val set with the weights; write the grid PNG."""
    crops = study_crops(str(data_path), rows)
    nearest = crops.lr.repeat_interleave(SCALE, -1).repeat_interleave(SCALE, -2).permute(0, 2, 3, 1).numpy()
    columns = (nearest, bicubic_crops(crops), render_crops(weights, crops), hr_crops(crops))
    size, pad, head = crops.hr.shape[-1], 4, 16
    n = len(crops)
    canvas = Image.new("RGB", (4 * size + 5 * pad, head + n * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for col, label in enumerate(_LABELS):
        draw.text((pad + col * (size + pad) + 2, 2), label, fill="black")
    for row in range(n):
        for col, img in enumerate(c[row] for c in columns):
            canvas.paste(Image.fromarray(img), (pad + col * (size + pad), head + row * (size + pad)))
    canvas.save(out)
