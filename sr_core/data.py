"""Data for 4x super-resolution: 32x32 RGB LR -> 128x128 RGB HR, held as uint8 tensors.

Sources accepted by ``load_dataset(source)``:

- ``"embedded"``: real photos that ship inside scikit-image (no network needed), split *within* each
  photo so train and val hold the same kind of content (see ``sr_core.patches``): val = horizontal
  bands (about one per 448 rows), train = overlapping patches (stride 64) from outside the bands, so
  no train patch overlaps a val patch; the stereo motorcycle views share their bands. Patches whose
  gray-level standard deviation is below 4 (of 255) are dropped as flat, then each photo is balanced
  to 1 val patch per 4 train patches (the side with more is thinned, evenly spaced) and capped at
  ``patches.PHOTO_CAP`` train patches, so no big photo dominates. Every photo is on both sides, and
  bicubic scores within a few tenths of a dB on both (``sr_core.baselines.bicubic_psnr``). test is None.
- Paired folder ``ROOT/{train,val}/{lr,hr}/NAME.png|jpg|jpeg`` plus optional ``ROOT/test/lr/``. LR and
  HR are paired by file stem; every LR must be exactly 32x32 and every HR exactly 128x128.
- HR-only folder: photos of any size (at least 128x128) directly in ROOT. Each is cut into
  non-overlapping 128x128 patches (stride 128 from the top-left corner; leftover edge strips are
  dropped). Split by source image: in sorted file-name order every 5th image goes to val (the last
  image when there are fewer than 5), the rest to train.

LR kernels (a deliberate change from "one resize for every LR"): where sr-search makes the LR itself
(embedded and HR-only sources), val LR is always ``downscale`` (bicubic with antialias), so val metrics
and bicubic baselines stay comparable across studies; each *train* patch's LR is made with one of
``TRAIN_LR_KERNELS`` (sr-search's, Pillow's bicubic, OpenCV-style non-antialiased cubic; see
``sr_core.resize``), chosen by a hash of the patch name: deterministic, and independent of which other
patches exist. Users' LR images come from many pipelines; a model trained on one kernel only loses
quality on the others. Paired folders keep the LR they ship.

Colour modes: grayscale (1, L, I;16) and palette images are converted to RGB (gray replicated, 16-bit
scaled to 8-bit). Images with alpha (RGBA, LA, or a PNG transparency key) are accepted when every pixel
is opaque (alpha is dropped) and rejected when any pixel is transparent: super-resolving transparency is
undefined, so flatten such images onto a background first.

Bad input raises ``DataError`` naming the file and the rule before anything is written. Prepared
tensors are cached once per source by ``prepare_dataset`` (keyed by a fingerprint of paths, sizes and
mtimes), so trials only ever ``load_cached`` and never decode images.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pathlib
import sys
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np
import torch

from sr_core import patches
from sr_core.files import atomic_path
from sr_core.images import DataError, list_images, paired_split, read_rgb
from sr_core.photos import TRAIN_LR_KERNELS, Photos, from_images
from sr_core.resize import downscale_with
from sr_core.sizes import HR_SIZE, LR_SIZE, SCALE

#: How an HR-only folder's train photos become training images: a new random crop of a photo at every
#: step (the default), or the photos cut once into fixed non-overlapping patches, as before.
CROPS = ("random", "fixed")
_FORMAT_VERSION = 2  # part of the cache key: bump it when the cache layout or the preparation changes
HR_ONLY_STRIDE = 128  # non-overlapping: user folders are usually big enough, and the cache stays small
_VAL_EVERY = 5  # HR-only folders: every 5th image in name order goes to val
_PROGRESS_MIN_FILES = 200  # below this, preparing is quick and counting lines are noise

Progress = Callable[[str], None]


# eq=False: a generated __eq__ would compare tensors, which raises; identity equality is enough.
@dataclass(frozen=True, eq=False)
class SRPairs:
    """Aligned pairs: lr uint8 [N,3,32,32], hr uint8 [N,3,128,128], one name per pair."""

    lr: torch.Tensor
    hr: torch.Tensor
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, eq=False)
class SRTest:
    """Test inputs without targets: lr uint8 [N,3,32,32]."""

    lr: torch.Tensor
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, eq=False)
class SRData:
    train: SRPairs | Photos  # Photos: an HR-only folder's train photos, cut into random crops as it trains
    val: SRPairs
    test: SRTest | None
    source: str  # "embedded" or the resolved folder path


class _Counter:
    """Reports about every 5% of the files, for jobs big enough to be worth reporting."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self.every = max(1, total // 20) if total >= _PROGRESS_MIN_FILES else 0

    def tick(self) -> None:
        self.done += 1
        if self.every and (self.done % self.every == 0 or self.done == self.total):
            self.progress(f"preparing data: {self.done}/{self.total} images")


# --- planning: find the files and check the layout, without decoding ---------------------------


class _Plan(NamedTuple):
    kind: str  # "embedded", "paired" or "hr-only"
    root: pathlib.Path | None  # None for "embedded"
    splits: dict[str, list[tuple]]  # split -> [(name, lr_path | None, hr_path | None)]
    crops: str = "fixed"  # "random": an HR-only folder's train photos are kept whole (sr_core.photos)

    def files(self) -> list[pathlib.Path]:
        return [p for items in self.splits.values() for _, *paths in items for p in paths if p]


def _source_root(source: str | os.PathLike) -> pathlib.Path | None:
    """The folder a source names, or None for "embedded"."""
    if isinstance(source, str) and source == "embedded":
        return None
    try:
        return pathlib.Path(source).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # Python raises RuntimeError for a symlink loop
        raise DataError(f"data folder {source} cannot be resolved ({exc}); is it a symbolic link loop?") from None


def _plan(source: str | os.PathLike, val_source: str | os.PathLike | None = None, crops: str | None = None) -> _Plan:
    root = _source_root(source)
    if crops not in (None, *CROPS):
        raise DataError(f"crops must be one of {list(CROPS)}, got {crops!r}")
    if root is None or (root.is_dir() and (root / "train").is_dir()):  # embedded or paired: fixed val patches
        kind = "embedded" if root is None else "paired"
        for given, what in ((val_source is not None, "a val folder"), (crops == "random", "random crops")):
            if given:
                raise DataError(f"{what} needs an HR-only data folder (a folder of full-size photos); the data "
                                f"{'embedded' if root is None else root} is {kind}, with its own fixed val patches")
    if root is None:
        return _Plan("embedded", None, {})
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder; pass 'embedded', a folder "
                        "with train/{lr,hr}/ and val/{lr,hr}/, or a folder of photos.")
    if (root / "train").is_dir():
        splits = ["train", "val", "test"] if (root / "test").is_dir() else ["train", "val"]
        return _Plan("paired", root, {split: paired_split(root, split) for split in splits})
    photos = _photos_in(root, 1 if val_source is not None else 2)
    items = [(p.stem, None, p) for p in photos]
    crops = crops or "random"
    if val_source is not None:  # every photo of the folder trains; val is the other folder's
        val_root = _source_root(val_source)
        if val_root is None or not val_root.is_dir():
            raise DataError(f"val folder {val_source} does not exist or is not a folder of photos")
        return _Plan("hr-only", root, {"train": items, "val": [(p.stem, None, p) for p in _photos_in(val_root, 1)]},
                     crops)
    # Split by source image so no photo is on both sides.
    val = {i for i in range(len(photos)) if i % _VAL_EVERY == _VAL_EVERY - 1} or {len(photos) - 1}
    return _Plan("hr-only", root, {"train": [it for i, it in enumerate(items) if i not in val],
                                   "val": [it for i, it in enumerate(items) if i in val]}, crops)


def _photos_in(root: pathlib.Path, least: int) -> list[pathlib.Path]:
    photos = list(list_images(root).values())
    if not photos:
        raise DataError(f"no images found in {root}; expected {root}/train/{{lr,hr}}/ (paired) or a "
                        "folder of .png/.jpg/.jpeg photos (HR-only).")
    if len(photos) < least:
        raise DataError(f"{root} holds only one photo ({photos[0]}); an HR-only folder needs at least 2 "
                        "so that train and val get different photos. Add more photos, or give a val folder.")
    return photos


def _fingerprint(plan: _Plan) -> str:
    """sha256 of the source kind, the preparation settings and every input file's path, size, mtime."""
    if plan.kind == "embedded":
        skimage = importlib.metadata.version("scikit-image")
        settings: tuple = (skimage, patches.TRAIN_STRIDE, patches.VAL_STRIDE, patches.VAL_BAND_EVERY,
                           patches.VAL_SHARE, patches.FLAT_STD, patches.PHOTO_CAP, TRAIN_LR_KERNELS)
    elif plan.kind == "hr-only":
        settings = (HR_ONLY_STRIDE, _VAL_EVERY, TRAIN_LR_KERNELS, plan.crops)
    else:
        settings = ()
    digest = hashlib.sha256(f"sr-data v{_FORMAT_VERSION} {plan.kind} {settings!r}\n".encode())
    for path in sorted(plan.files()):
        stat = path.stat()
        rel = path.relative_to(plan.root).as_posix() if path.is_relative_to(plan.root) else path.as_posix()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


# --- building: decode, validate, cut, downscale -> a dict of tensors ---------------------------


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 arrays -> uint8 [N,3,H,W]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def train_kernel(name: str, kernels: tuple[str, ...] = TRAIN_LR_KERNELS) -> str:
    """The LR kernel of one train patch: a hash of its name picks it (stable across runs and sets)."""
    return kernels[int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % len(kernels)]


def make_lr(hr: torch.Tensor, kernels: list[str]) -> torch.Tensor:
    """uint8 [N,3,32,32]: hr[i] downscaled with kernels[i], in chunks (a float copy of every HR patch
    at once would be 4x the uint8 data)."""
    lr = torch.empty(len(hr), 3, HR_SIZE // SCALE, HR_SIZE // SCALE, dtype=torch.uint8)
    for kernel in sorted(set(kernels)):
        idx = torch.tensor([i for i, k in enumerate(kernels) if k == kernel], dtype=torch.long)
        for chunk in idx.split(256):
            lr[chunk] = downscale_with(hr[chunk], kernel)
    return lr


def _patch_pairs(split: str, cuts: list[np.ndarray], names: list[str]) -> dict:
    """Tensors of one split: val LR by ``downscale``, train LR by each patch's ``train_kernel``."""
    hr = torch.from_numpy(np.concatenate(cuts)).permute(0, 3, 1, 2).contiguous()
    kernels = [train_kernel(n) if split == "train" else "sr-search" for n in names]
    return {f"{split}_lr": make_lr(hr, kernels), f"{split}_hr": hr, f"{split}_names": names}


def embedded_photos() -> list[tuple[str, str, np.ndarray]]:
    """(name, scene, HxWx3 uint8) per photo; the two stereo views are one scene for the split."""
    from skimage import data as sk  # imported here: only this source needs it, and it is slow-ish

    left, right, _disparity = sk.stereo_motorcycle()
    names = ["astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field",
             "immunohistochemistry"]
    return [(name, name, getattr(sk, name)()) for name in names] + [
        ("motorcycle_left", "motorcycle", left), ("motorcycle_right", "motorcycle", right)]


def _build_embedded(plan: _Plan, progress: Progress) -> dict:
    photos = embedded_photos()
    counter = _Counter(progress, len(photos))
    heights = {scene: img.shape[0] for _, scene, img in photos}  # the stereo views share theirs
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
    for photo, scene, img in photos:
        # Bands are a function of the scene, so both stereo views put the same rows in val.
        for side, (cut, names) in patches.split_photo(photo, img, patches.val_bands(heights[scene])).items():
            out[side][0].append(cut)
            out[side][1].extend(names)
        counter.tick()
    return {**_patch_pairs("train", *out["train"]), **_patch_pairs("val", *out["val"])}


def _build_paired(plan: _Plan, progress: Progress) -> dict:
    counter = _Counter(progress, len(plan.files()))

    def read(path: pathlib.Path, size: int, role: str) -> np.ndarray:
        img = read_rgb(path)
        counter.tick()
        if img.shape[:2] != (size, size):
            raise DataError(
                f"{path} is a {img.shape[1]}x{img.shape[0]} {role} image; every {role} image must be "
                f"exactly {size}x{size} pixels (LR is exactly HR/{SCALE}: {LR_SIZE}x{LR_SIZE} -> "
                f"{HR_SIZE}x{HR_SIZE}). Resize or crop it, or put full-size photos in an HR-only folder "
                "and let sr-search cut and downscale them.")
        return img

    out: dict = {}
    for split, items in plan.splits.items():
        out[f"{split}_names"] = [name for name, _, _ in items]
        out[f"{split}_lr"] = _to_tensor([read(lr, LR_SIZE, "LR") for _, lr, _ in items])
        if split != "test":
            out[f"{split}_hr"] = _to_tensor([read(hr, HR_SIZE, "HR") for _, _, hr in items])
    return out


def _build_hr_only(plan: _Plan, progress: Progress) -> dict:
    counter = _Counter(progress, len(plan.files()))
    out: dict = {}
    for split, items in plan.splits.items():
        cuts, names, whole = [], [], []
        for stem, _, path in items:
            img = read_rgb(path)
            counter.tick()
            if min(img.shape[:2]) < HR_SIZE:
                raise DataError(f"{path} is {img.shape[1]}x{img.shape[0]}; every photo in an HR-only "
                                f"folder must be at least {HR_SIZE}x{HR_SIZE} pixels. Remove it or use a "
                                "larger one.")
            if split == "train" and plan.crops == "random":
                whole.append(img)
                names.append(stem)
                continue
            coords = patches.grid(*img.shape[:2], HR_ONLY_STRIDE)
            cuts.append(patches.cut(img, coords))
            names += [patches.patch_name(stem, y, x) for y, x in coords]
        if whole:
            photos = from_images(whole, names)
            out.update(train_pixels=photos.pixels, train_offsets=photos.offsets, train_sizes=photos.sizes,
                       train_names=names)
        else:
            out.update(_patch_pairs(split, cuts, names))
    return out


def _build(plan: _Plan, progress: Progress) -> dict:
    """Decode and validate every input in memory; raises DataError before anything is written."""
    builder = {"embedded": _build_embedded, "paired": _build_paired, "hr-only": _build_hr_only}[plan.kind]
    source = "embedded" if plan.root is None else str(plan.root)
    tensors = builder(plan, progress)
    tensors.update(format=_FORMAT_VERSION, source=source)
    test = f", {len(tensors['test_names'])} test" if "test_names" in tensors else ""
    train = (f"{len(tensors['train_names'])} train photos (random crops)" if "train_pixels" in tensors
             else f"{len(tensors['train_names'])} train")
    progress(f"prepared data: {train} / {len(tensors['val_names'])} val{test} from {source}")
    return tensors


def _to_srdata(d: dict) -> SRData:
    return SRData(
        train=(Photos(d["train_pixels"], d["train_offsets"], d["train_sizes"], tuple(d["train_names"]))
               if "train_pixels" in d else SRPairs(d["train_lr"], d["train_hr"], tuple(d["train_names"]))),
        val=SRPairs(d["val_lr"], d["val_hr"], tuple(d["val_names"])),
        test=SRTest(d["test_lr"], tuple(d["test_names"])) if "test_lr" in d else None,
        source=d["source"],
    )


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- public entry points -----------------------------------------------------------------------


def prepare_dataset(
    source: str | os.PathLike, cache_dir: str | os.PathLike, *, progress: Progress | None = None,
    val_source: str | os.PathLike | None = None, crops: str | None = None
) -> pathlib.Path:
    """Validate and prepare a source once; return its cache file, reused while the inputs are unchanged.
    An HR-only folder takes a separate `val_source` folder of photos (else every 5th photo is val) and
    `crops` ("random", its default, or "fixed": CROPS)."""
    plan = _plan(source, val_source, crops)
    path = pathlib.Path(cache_dir) / f"sr-data-{plan.kind}-{_fingerprint(plan)}.pt"
    if path.exists():
        return path
    tensors = _build(plan, progress or _print_progress)  # every check happens here, before any write
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a reader (another trial) sees the whole file or none, and a crash leaves no half file.
    with atomic_path(path) as tmp:
        torch.save(tensors, tmp)
    return path


def load_cached(path: str | os.PathLike) -> SRData:
    """Load a cache file written by prepare_dataset (tensors, strings and lists of strings only)."""
    path = pathlib.Path(path)
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise DataError(f"cache file {path} does not exist; prepare its source first.") from exc
    except Exception as exc:  # torch raises several types for a damaged file
        raise DataError(f"cache file {path} is unreadable ({exc}); delete it and prepare again.") from exc
    if not isinstance(d, dict) or d.get("format") != _FORMAT_VERSION:
        raise DataError(f"cache file {path} is not an sr-search data cache of format {_FORMAT_VERSION}; "
                        "delete it and prepare again.")
    return _to_srdata(d)


def load_dataset(
    source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, progress: Progress | None = None,
    val_source: str | os.PathLike | None = None, crops: str | None = None
) -> SRData:
    """Load a source: through the cache with cache_dir; without it, build in memory and write nothing."""
    if cache_dir is None:
        return _to_srdata(_build(_plan(source, val_source, crops), progress or _print_progress))
    data = load_cached(prepare_dataset(source, cache_dir, progress=progress, val_source=val_source, crops=crops))
    # The cache key ignores where a folder lives, so report the source as given this time.
    root = _source_root(source)
    return replace(data, source="embedded" if root is None else str(root))
