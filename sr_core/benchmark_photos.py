"""A benchmark folder that ships: scikit-image's photos written at full size, for `sr-search evaluate`,
and the lr/ subfolder papers would make for any such folder (MATLAB's bicubic, after a mod-crop).

The photos are chosen for what a paper-style evaluation must get right, not for coverage:

- chelsea, 300x451: a width that is not a multiple of 4 (mod-crop to 448);
- coffee_crop, 397x597 (the top-left of coffee): an odd height and width;
- camera, 512x512: a grayscale photo, written as an 8-bit gray PNG (evaluated replicated to RGB);
- retina, 1411x1411: large enough that wide nets upscale it in tiles (see sr_core.infer).

They are not a held-out test of quality: chelsea, coffee and retina are also in the "embedded"
training data (sr_core.data), so figures on them measure fit, and are not comparable to Set5/Set14.
Only camera is outside it. Use them to check the pipeline offline; report Set5 and friends.

    python -m sr_core.benchmark_photos DIR [--lr]    # writes DIR/*.png (and DIR/lr/*.png)
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr_core.files import atomic_path
from sr_core.images import list_images, read_rgb
from sr_core.matlab_resize import matlab_downscale, mod_crop
from sr_core.sizes import SCALE

LR_FOLDER = "lr"  # DIR/lr/NAME.png: the inputs of the `--lr-kernel given` layout, named as paired folders' lr/
#: Where `--lr-kernel given` looks, in this order: lr/ as sr-search writes it, LR/ as many benchmark packs ship.
LR_FOLDERS = (LR_FOLDER, "LR")


def benchmark_photos() -> dict[str, np.ndarray]:
    """name -> uint8 HxWx3 (RGB) or HxW (the gray camera), in a fixed order."""
    from skimage import data as sk  # imported here: slow-ish, and only this needs it

    return {"chelsea": sk.chelsea(), "coffee_crop": sk.coffee()[:397, :597], "camera": sk.camera(),
            "retina": sk.retina()}


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")  # mode from the array: L for HxW, RGB for HxWx3


def write_benchmark(folder: str | os.PathLike) -> list[Path]:
    """Write the photos as FOLDER/NAME.png (made if missing; these names overwritten); return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in benchmark_photos().items():
        paths.append(folder / f"{name}.png")
        _write_png(paths[-1], image)
    return paths


def write_lr(folder: str | os.PathLike, scale: int = SCALE) -> list[Path]:
    """FOLDER/lr/NAME.png for every image FOLDER/NAME.*: MATLAB's bicubic 1/scale of the image
    mod-cropped to a multiple of `scale` (so HR = scale x LR once the evaluation mod-crops too).
    An image whose three channels are equal (a gray photo) gets a gray LR."""
    folder = Path(folder)
    images = list_images(folder)
    if not images:
        raise ValueError(f"no .png/.jpg/.jpeg images directly in folder={str(folder)!r}: write_lr makes the "
                         "LR of each image there")
    (folder / LR_FOLDER).mkdir(exist_ok=True)
    paths = []
    for name, path in images.items():
        hr = torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1)  # a writable copy
        lr = matlab_downscale(mod_crop(hr, scale).contiguous(), scale).permute(1, 2, 0).numpy()
        gray = bool((lr == lr[..., :1]).all())  # MATLAB resizes each channel alike: equal in, equal out
        paths.append(folder / LR_FOLDER / f"{name}.png")
        _write_png(paths[-1], lr[..., 0] if gray else lr)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr_core.benchmark_photos",
                                     description="Write the shipped benchmark folder (scikit-image's chelsea, "
                                                 "coffee_crop, camera, retina at full size) for sr-search evaluate.")
    parser.add_argument("folder", help="where to write NAME.png (made if missing)")
    parser.add_argument("--lr", action="store_true",
                        help="also write FOLDER/lr/NAME.png, MATLAB's bicubic x1/4 (for --lr-kernel given)")
    args = parser.parse_args(argv)
    paths = write_benchmark(args.folder) + (write_lr(args.folder) if args.lr else [])
    print(f"wrote {len(paths)} images to {Path(args.folder).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
