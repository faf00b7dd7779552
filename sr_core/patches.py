"""Cutting photos into 128x128 patches, and the spatial train/val split of the embedded photos.

Pure functions on shapes, names and numpy arrays; no file I/O.

The embedded photos are few and unlike each other (a retina scan, a star field, a cat...), so a
split by photo puts different kinds of content on each side. Instead every photo gives to both sides:
val takes horizontal bands of 128 rows, spread evenly down the photo (about one band per
``VAL_BAND_EVERY`` rows, at least one), cut into 128x128 patches at stride 64 along the band; train
takes the usual overlapping patches (stride 64) from outside the bands only. Band tops sit on the
64-pixel train grid, so a train patch either clears a band or is dropped: no train pixel is a val
pixel (val patches may overlap each other). After flat patches are dropped, ``balance`` thins
whichever side of a photo is over ``VAL_SHARE``, so every photo weighs the same on both sides and
train and val hold the same mix of content, and caps every photo at ``PHOTO_CAP`` train patches
(evenly spaced), so that no one or two big photos dominate either side: uncapped, the retina scan and
the Hubble field (1411 and 872 rows of mostly smooth or starry content) were 64% of both train and val,
and the val figures spoke mostly of them.

Bands span the whole width, which keeps a rectified stereo pair (the motorcycle's left and right
views, whose matching points share a row) consistent: the band rows are a function of the scene's
height, so both views get the same bands and no val scene content can reach train through the other
view.
"""

from __future__ import annotations

import re

import numpy as np

from sr_core.sizes import HR_SIZE

PATCH = HR_SIZE  # the patches are the HR training images
TRAIN_STRIDE = 64  # overlapping train patches: the embedded photos are few, so take what they have
VAL_STRIDE = 64  # val patches may overlap each other, never a train patch
VAL_BAND_EVERY = 448  # rows of photo per val band: 1 band up to ~670 rows, 2 for hubble, 3 for the retina
VAL_SHARE = 0.2  # of each photo's (textured) patches: 1 val patch per 4 train patches
FLAT_STD = 4.0  # gray levels of 255; flatter patches teach an SR model nothing
# Train patches one photo may give at most (its val share follows from VAL_SHARE): as many as the
# motorcycle's views give uncapped, so no photo holds more than about a seventh of either side.
PHOTO_CAP = 30
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_NAME = re.compile(r"(?P<photo>.+)_r(?P<row>\d{4,})_c(?P<col>\d{4,})")

Coords = list[tuple[int, int]]


def patch_name(photo: str, row: int, col: int) -> str:
    """``astronaut_r0192_c0064``: the photo and the patch's top-left corner."""
    return f"{photo}_r{row:04d}_c{col:04d}"


def parse_patch_name(name: str) -> tuple[str, int, int]:
    """The inverse of ``patch_name``: (photo, row, col)."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a patch name like 'photo_r0064_c0128'")
    return match["photo"], int(match["row"]), int(match["col"])


def grid(h: int, w: int, stride: int, rows: range | None = None) -> Coords:
    """Top-left corners of every PATCH x PATCH patch on a stride lattice from (0, 0) inside h x w."""
    ys = range(0, h - PATCH + 1, stride) if rows is None else rows
    return [(y, x) for y in ys for x in range(0, w - PATCH + 1, stride)]


def val_bands(h: int, every: int = VAL_BAND_EVERY) -> tuple[int, ...]:
    """Top rows of the val bands of a photo h rows high: evenly spread, on the train grid."""
    if h < 2 * PATCH:
        raise ValueError(f"a photo needs at least {2 * PATCH} rows to give both train and val, got {h}")
    n = max(1, round(h / every))
    last = (h - PATCH) // TRAIN_STRIDE * TRAIN_STRIDE
    tops = []
    for k in range(n):
        centre = (k + 0.5) * h / n
        top = int(round((centre - PATCH / 2) / TRAIN_STRIDE)) * TRAIN_STRIDE
        tops.append(min(max(top, 0), last))
    bands = tuple(sorted(set(tops)))
    if not any(not _overlaps_band(y, bands) for y in range(0, last + 1, TRAIN_STRIDE)):
        return (0,)  # a short photo: a centred band would leave train nothing, so take the top rows
    return bands


def _overlaps_band(y: int, bands: tuple[int, ...]) -> bool:
    return any(y < top + PATCH and top < y + PATCH for top in bands)


def band_split(h: int, w: int, bands: tuple[int, ...]) -> tuple[Coords, Coords]:
    """(train, val) corners: val tiles the bands without overlap; train is the stride-64 grid minus
    every patch that shares a row with a band."""
    train = [(y, x) for y, x in grid(h, w, TRAIN_STRIDE) if not _overlaps_band(y, bands)]
    val = [(top, x) for top in bands for x in range(0, w - PATCH + 1, VAL_STRIDE)]
    return train, val


def evenly(n: int, k: int) -> np.ndarray:
    """k of range(n), evenly spaced (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def balance(n_train: int, n_val: int, share: float = VAL_SHARE,
            cap: int | None = PHOTO_CAP) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices to keep so that val is ``share`` of the photo's patches and train holds
    at most ``cap`` (None: no cap): the side with more than its share is thinned, evenly spaced, then
    both sides are thinned alike down to the cap. Every photo then weighs the same on both sides, so
    train and val hold the same mix of content. Keeps at least one patch on each side."""
    if n_train < 1 or n_val < 1:
        raise ValueError(f"a photo needs patches on both sides, got {n_train=} {n_val=}")
    if cap is not None and cap < 1:
        raise ValueError(f"cap must be >= 1 or None, got {cap=}")
    ratio = share / (1 - share)
    keep_train = min(n_train, max(1, round(n_val / ratio)), cap or n_train)
    keep_val = min(n_val, max(1, round(keep_train * ratio)))
    return evenly(n_train, keep_train), evenly(n_val, keep_val)


def cut(img: np.ndarray, coords: Coords) -> np.ndarray:
    """[n,PATCH,PATCH,3] patches (a copy, so the whole photo can be freed)."""
    if not coords:
        return np.zeros((0, PATCH, PATCH, img.shape[2]), dtype=img.dtype)
    return np.stack([img[y : y + PATCH, x : x + PATCH] for y, x in coords])


def textured(patches: np.ndarray, threshold: float = FLAT_STD) -> np.ndarray:
    """Boolean mask of the patches whose gray-level standard deviation reaches the threshold."""
    if len(patches) == 0:
        return np.zeros(0, dtype=bool)
    return (patches.astype(np.float32) @ _LUMA).std(axis=(1, 2)) >= threshold


def split_photo(photo: str, img: np.ndarray, bands: tuple[int, ...]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """{"train"|"val": (patches [n,128,128,3], names)} of one photo: the band split, flat patches
    dropped, then balanced to VAL_SHARE and capped at PHOTO_CAP train patches."""
    h, w = img.shape[:2]
    sides = {}
    for side, coords in zip(("train", "val"), band_split(h, w, bands)):
        cuts = cut(img, coords)
        keep = textured(cuts)
        sides[side] = (cuts[keep], [patch_name(photo, y, x) for (y, x), k in zip(coords, keep) if k])
    keep_train, keep_val = balance(len(sides["train"][1]), len(sides["val"][1]))
    return {side: (sides[side][0][keep], [sides[side][1][i] for i in keep])
            for side, keep in (("train", keep_train), ("val", keep_val))}
