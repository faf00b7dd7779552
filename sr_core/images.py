"""Reading image files: the only place that decodes, and the folder rules of a dataset (image files
by stem, LR/HR pairing). Every failure is a DataError naming the file or folder and the fix."""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # BMP: some copies of Set14 and B100 ship as .bmp


class DataError(ValueError):
    """User-caused bad input: the message names the file or folder, the rule broken and the fix."""


def read_rgb(path: pathlib.Path) -> np.ndarray:
    """Decode an image file fully into HxWx3 uint8 RGB, or raise DataError naming it."""
    try:
        with Image.open(path) as opened:
            opened.load()  # decode everything now: a truncated file fails here, not mid-training
            img = ImageOps.exif_transpose(opened)  # a copy, upright the way viewers show it
    # OSError covers UnidentifiedImageError and truncation; some decoders raise SyntaxError/ValueError.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} is unreadable or corrupt ({exc}); re-export it as PNG or JPEG, or "
                        "remove it.") from exc
    if "A" in img.getbands() or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"))
        if rgba[..., 3].min() < 255:
            raise DataError(f"{path} has transparent pixels; SR of transparency is undefined; flatten "
                            "it onto a background first.")
        return np.ascontiguousarray(rgba[..., :3])
    if img.mode.startswith("I"):  # 16-bit gray: Pillow's convert("RGB") would clip it, not scale it
        gray = np.clip(np.rint(np.asarray(img, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def list_images(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Image files directly in folder, keyed by stem (the pairing key); other and hidden files ignored."""
    found: dict[str, pathlib.Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_symlink() and not path.exists():  # a loop or a dangling link: is_file() hides both
            raise DataError(f"{path} is a symbolic link that leads nowhere (a loop or a missing target); "
                            "remove it or point it at an image.")
        if not path.is_file():
            continue
        if path.stem in found:
            raise DataError(f"{path} and {found[path.stem]} share the name {path.stem!r}; images are "
                            "matched by name, so keep only one of them.")
        found[path.stem] = path
    return found


def paired_split(root: pathlib.Path, split: str) -> list[tuple]:
    sides = {}
    for side in ("lr",) if split == "test" else ("lr", "hr"):
        folder = root / split / side
        if not folder.is_dir():
            raise DataError(f"missing folder {folder}; a paired dataset needs {root}/train/lr, train/hr, "
                            "val/lr and val/hr (test/lr is optional).")
        sides[side] = list_images(folder)
        if not sides[side]:
            raise DataError(f"{folder} has no .png/.jpg/.jpeg images; the {split} split must not be empty.")
    lr, hr = sides["lr"], sides.get("hr")
    if hr is None:
        return [(name, path, None) for name, path in lr.items()]
    for have, other, what in ((lr, hr, "hr"), (hr, lr, "lr")):
        for name, path in have.items():
            if name not in other:
                raise DataError(f"{path} has no matching {what.upper()} image {root / split / what / name}"
                                ".png (or .jpg/.jpeg); LR and HR images are paired by file name, so add "
                                "it or remove this file.")
    return [(name, lr[name], hr[name]) for name in lr]
