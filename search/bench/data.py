"""`sr-search bench data`: one epoch of augmented training batches, two ways, over the same images.

- ours: the images decoded once into a cache of uint8 tensors (`sr_core.data`), the train set on the
  device, each epoch's order and ops drawn there, each batch one gather plus a uint8->float convert
  (what `train_trial` does). The one-time load of the cache is reported beside the epoch.
- PIL + DataLoader: a Dataset that decodes each PNG pair with PIL every epoch, turns both by the same
  random rot90/flip, converts to float tensors; torch's DataLoader with shuffling, default collate and
  worker processes; each batch then moved to the device.

- random crops: the full-size photos the patches came from on the device, a new 128x128 crop of them
  per sample, its LR made on the fly (sr_core.photos: what `train_trial` does on an HR-only folder).

All produce float [B,3,32,32] and [B,3,128,128] batches on the training device.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr_core.augment import augment_batch, epoch_draws, make_generator
from sr_core.data import embedded_photos, load_cached, load_dataset, prepare_dataset
from sr_core.photos import Photos, crop_draws, crop_lr, cut_crops, from_images, photo_views
from sr_core.pixels import to_float


def write_pngs(root: Path, images: int) -> Path:
    """A paired folder (train/{lr,hr}, one val pair) of `images` real photo patches, as PNGs."""
    photos = load_dataset("embedded", progress=lambda line: None).train
    for split, count in (("train", images), ("val", 1)):
        for kind in ("lr", "hr"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            j = i % len(photos)  # repeat the patches when asked for more than the photos hold
            for kind, tensor in (("lr", photos.lr[j]), ("hr", photos.hr[j])):
                Image.fromarray(tensor.permute(1, 2, 0).numpy()).save(root / split / kind / f"p{i:05d}.png")
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_epoch(cache: Path, device: torch.device, batch_size: int) -> dict:
    """Load the cache onto the device (once per trial), then one epoch of batches (every epoch)."""
    t0 = time.perf_counter()
    train = load_cached(cache).train
    train_lr, train_hr = train.lr.to(device), train.hr.to(device)
    _sync(device)
    setup_s = time.perf_counter() - t0
    gen = make_generator(device, 0)
    t0 = time.perf_counter()
    n = len(train_lr)
    order, ops = epoch_draws(gen, n, n, augment=True)
    checksum = torch.zeros((), device=device)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        lr_u8, hr_u8 = augment_batch(train_lr[idx], train_hr[idx], ops[start:start + batch_size])
        lr, hr = to_float(lr_u8), to_float(hr_u8)
        checksum += lr[:, 0, 0, 0].sum() + hr[:, 0, 0, 0].sum()  # consume the batch, as a step would
    _sync(device)
    return {"setup_s": setup_s, "epoch_s": time.perf_counter() - t0, "images": n}


def crops_epoch(photos: Photos, device: torch.device, batch_size: int, images: int) -> dict:
    """Random crops: the full-size photos onto the device once, then one epoch of `images` crops drawn
    there, each batch cut from the photos and its LR made on the fly (what `train_trial` does on an
    HR-only folder); the images are those the fixed row's patches were cut from."""
    t0 = time.perf_counter()
    on_device = photos.to(device)
    views = photo_views(on_device)
    _sync(device)
    setup_s = time.perf_counter() - t0
    gen = make_generator(device, 0)
    t0 = time.perf_counter()
    photo, top, left, ops = crop_draws(gen, on_device, images, augment=True)
    photo, top, left = photo.tolist(), top.tolist(), left.tolist()
    checksum = torch.zeros((), device=device)
    for start in range(0, images, batch_size):
        part = slice(start, start + batch_size)
        hr_u8 = cut_crops(views, photo[part], top[part], left[part], ops[part])
        lr, hr = to_float(crop_lr(hr_u8)), to_float(hr_u8)
        checksum += lr[:, 0, 0, 0].sum() + hr[:, 0, 0, 0].sum()
    _sync(device)
    return {"setup_s": setup_s, "epoch_s": time.perf_counter() - t0, "images": images}


class PngPairs(torch.utils.data.Dataset):
    """The common way: decode both PNGs every time, random rot90/flip, to float tensors."""

    def __init__(self, root: Path):
        self.lr = sorted((root / "train" / "lr").glob("*.png"))
        self.hr = [root / "train" / "hr" / p.name for p in self.lr]

    def __len__(self) -> int:
        return len(self.lr)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr = np.asarray(Image.open(self.lr[i]).convert("RGB"))
        hr = np.asarray(Image.open(self.hr[i]).convert("RGB"))
        op = random.randrange(8)
        if op >= 4:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        lr, hr = np.rot90(lr, op % 4), np.rot90(hr, op % 4)
        return _to_tensor(lr), _to_tensor(hr)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)  # np.array: a writable copy


def pil_epoch(root: Path, device: torch.device, batch_size: int, workers: int) -> dict:
    loader = torch.utils.data.DataLoader(PngPairs(root), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    checksum, n = torch.zeros((), device=device), 0
    for lr, hr in loader:  # worker start-up included: it is part of every epoch without persistent workers
        lr, hr = lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
        checksum += lr[:, 0, 0, 0].sum() + hr[:, 0, 0, 0].sum()
        n += len(lr)
    _sync(device)
    return {"epoch_s": time.perf_counter() - t0, "images": n, "workers": workers}


def bench_data(images: int, batch_size: int, device: str, workers: int, rounds: int = 3,
               folder: Path | None = None) -> dict:
    """Ours against PIL + DataLoader, alternating `rounds` times; the speedup is the median ratio. And
    random crops of the full-size photos against ours (fixed patches), `crops_vs_fixed` their median
    ratio of images/s."""
    dev = torch.device(device)
    full = [img for _, _, img in embedded_photos()]
    photos = from_images(full, [f"photo{i}" for i in range(len(full))])
    with tempfile.TemporaryDirectory(prefix="sr-bench-data-") as tmp:
        root = write_pngs(Path(folder or tmp) / "pngs", images)
        t0 = time.perf_counter()
        cache = prepare_dataset(root, Path(tmp) / "cache", progress=lambda line: None)
        prepare_s = time.perf_counter() - t0
        ours, pil, crops = [], [], []
        for _ in range(rounds):
            ours.append(ours_epoch(cache, dev, batch_size))
            crops.append(crops_epoch(photos, dev, batch_size, images))
            pil.append(pil_epoch(root, dev, batch_size, workers))
    ratios = [p["epoch_s"] / o["epoch_s"] for o, p in zip(ours, pil)]
    ours_s = statistics.median(o["epoch_s"] for o in ours)
    setup_s = statistics.median(o["setup_s"] for o in ours)
    pil_s = statistics.median(p["epoch_s"] for p in pil)
    return {"images": images, "batch_size": batch_size, "device": str(dev), "loader_workers": workers,
            "rounds": rounds, "prepare_cache_once_s": prepare_s,
            "ours_epoch_s": ours_s, "ours_images_per_s": images / ours_s, "ours_setup_s": setup_s,
            "pil_epoch_s": pil_s, "pil_images_per_s": images / pil_s,
            "speedup": statistics.median(ratios), "speedup_each": ratios,
            "speedup_with_setup": pil_s / (ours_s + setup_s),
            "crops_epoch_s": statistics.median(c["epoch_s"] for c in crops),
            "crops_images_per_s": images / statistics.median(c["epoch_s"] for c in crops),
            "crops_setup_s": statistics.median(c["setup_s"] for c in crops),
            "crops_vs_fixed": statistics.median(o["epoch_s"] / c["epoch_s"] for o, c in zip(ours, crops))}
