"""The comparison crops of a study: a few val patches, chosen once, that every trial is shown on.

Super-resolution is judged by eye as much as by PSNR, and by eye only side by side: the same pixels
through every trial. So a study picks its crops once, when it opens, from its own val set, and each
trial's prediction of exactly those crops is logged when it closes (search.tracking.log_trial_crops);
the report lines them up (reports.comparison).

The rule (`choose_crops`), deterministic (no randomness; ties go to the name that sorts first):

- Each val patch is scored by its bicubic error, the MSE of bicubic x4 against the HR. It is large on
  textures and edges and near zero on flat regions: exactly where SR has something to do, and so
  where trials differ. Gradient energy of the HR ranks the embedded val set almost alike; the bicubic
  error is the one that says what SR is measured against.
- Flat patches are never chosen: only the harder half of the val set (bicubic MSE at least its
  median) is a candidate. A photo with no patch in that half (the embedded retina scan, all smooth
  vessels at 40+ dB bicubic) shows nothing a trial could change, and is left out.
- Across photos: one crop per scene first (its hardest), scenes in order of that score; then a second
  per scene, and so on up to `per_photo`. The two views of the stereo motorcycle are one scene, and
  two crops of one scene never overlap (val patches overlap each other along their band).
- `count` crops at most (default 10). The embedded val set has six scenes with textured patches, so
  10 is every scene once and the hardest four twice. The report embeds per crop its HR (about 42 KB
  as base64 PNG) and, for bicubic and each trial shown, the prediction and its error map (about 45 KB
  together): 10 crops across six trials are about 3.6 MB, less than plotly.js (4.8 MB).

The crops are whole 128x128 val patches with their 32x32 LR, so a trial's prediction of a crop is its
val prediction, with the context it was measured with.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sr_core import metrics
from sr_core.data import SRPairs, load_cached
from sr_core.infer import load_model, model_of, upscale
from sr_core.patches import PATCH, parse_patch_name
from sr_core.pixels import to_float, to_uint8
from sr_core.resize import bicubic_upscale

CROP_COUNT = 10
PER_PHOTO = 2
_STEREO_VIEW = re.compile(r"_(left|right)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: The rule in one line, recorded with the crops (crops.json) and shown by the report.
RULE = ("val patches in the harder half by bicubic error (MSE of bicubic x4 against HR); the hardest of "
        "each scene first, then the next per scene, never overlapping one already chosen")

Weights = nn.Module | str | os.PathLike | Mapping


@dataclass(frozen=True, eq=False)
class ComparisonCrops:
    """The chosen crops, in the order chosen: uint8 lr [K,3,32,32] and hr [K,3,128,128]; per crop its
    val patch name, its photo, a `key` safe in MLflow metric and artifact names, and its bicubic error
    (the score it was chosen by)."""

    lr: torch.Tensor
    hr: torch.Tensor
    names: tuple[str, ...]
    photos: tuple[str, ...]
    keys: tuple[str, ...]
    bicubic_mse: tuple[float, ...]
    per_photo: int = PER_PHOTO

    def __len__(self) -> int:
        return len(self.names)


def scene_of(photo: str) -> str:
    """The scene a photo shows: the stereo views `motorcycle_left` and `motorcycle_right` are one."""
    return _STEREO_VIEW.sub("", photo)


def _position(name: str) -> tuple[str, int | None, int | None]:
    """(photo, row, col) of a patch name; a name that is not a patch name (a paired folder's file) is
    its own photo, with no position."""
    try:
        return parse_patch_name(name)
    except ValueError:
        return name, None, None


def _overlaps(a: tuple[str, int | None, int | None], b: tuple[str, int | None, int | None]) -> bool:
    if a[1] is None or b[1] is None:
        return a[0] == b[0]
    return abs(a[1] - b[1]) < PATCH and abs(a[2] - b[2]) < PATCH


def crop_key(name: str, taken: set[str]) -> str:
    """`name` with every character MLflow keys do not allow replaced by `_`, made unique against `taken`."""
    key, n = _UNSAFE.sub("_", name), 1
    while key in taken:
        n += 1
        key = f"{_UNSAFE.sub('_', name)}-{n}"
    return key


def bicubic_errors(val: SRPairs) -> np.ndarray:
    """Per val patch: the MSE of bicubic x4 of its LR against its HR (RGB in [0,1])."""
    return metrics.mse(bicubic_upscale(to_float(val.lr)), to_float(val.hr)).numpy()


def _pick(val: SRPairs, errors: np.ndarray, count: int, per_photo: int) -> list[int]:
    """Indices of the chosen patches, in the order of the module docstring's rule: rounds of one
    crop per scene, each round in score order."""
    threshold = float(np.median(errors))
    candidates = sorted((i for i in range(len(val)) if errors[i] >= threshold),
                        key=lambda i: (-errors[i], val.names[i]))
    positions = {i: _position(val.names[i]) for i in candidates}
    chosen: list[int] = []
    for _ in range(per_photo):
        served: set[str] = set()  # scenes that got their crop this round
        for i in candidates:
            scene = scene_of(positions[i][0])
            if i in chosen or scene in served:
                continue
            if any(_overlaps(positions[i], positions[j]) for j in chosen if scene_of(positions[j][0]) == scene):
                continue
            chosen.append(i)
            served.add(scene)
    return chosen[:count]


def choose_crops(val: SRPairs, count: int = CROP_COUNT, per_photo: int = PER_PHOTO) -> ComparisonCrops:
    """The study's comparison crops from its val set (the rule is the module docstring's)."""
    if count < 1 or per_photo < 1:
        raise ValueError(f"count and per_photo must be >= 1, got {count=} {per_photo=}")
    if len(val) == 0:
        raise ValueError("choose_crops needs a val set with at least one pair")
    errors = bicubic_errors(val)
    chosen = _pick(val, errors, count, per_photo)
    names = tuple(val.names[i] for i in chosen)
    keys: list[str] = []
    for name in names:
        keys.append(crop_key(name, set(keys)))
    return ComparisonCrops(lr=val.lr[chosen].clone(), hr=val.hr[chosen].clone(), names=names,
                           photos=tuple(_position(n)[0] for n in names), keys=tuple(keys),
                           bicubic_mse=tuple(float(errors[i]) for i in chosen), per_photo=per_photo)


@functools.lru_cache(maxsize=4)
def study_crops(data_path: str, count: int = CROP_COUNT) -> ComparisonCrops:
    """The crops of a study's data cache, chosen once per process: the engine logs them when the study
    opens (search.tracking.log_study_crops) and the callback renders each closing trial on them
    (log_trial_crops); the rule is deterministic, so both get the same crops."""
    return choose_crops(load_cached(data_path).val, count)


def _as_model(model_or_weights: Weights) -> nn.Module:
    """A model, a weights file (save_weights, a trial's best.pt), or such a file's content
    ({"config": {arch, blocks, channels}, "state_dict": ...})."""
    if isinstance(model_or_weights, nn.Module):
        return model_or_weights
    if isinstance(model_or_weights, Mapping):
        model = model_of(model_or_weights["config"])
        model.load_state_dict(model_or_weights["state_dict"])
        return model.eval()
    return load_model(model_or_weights)


def _images(batch: torch.Tensor) -> list[np.ndarray]:
    """float [K,3,H,W] in [0,1] -> K uint8 HxWx3 arrays, rounded as a PNG of them stores them."""
    return [img.permute(1, 2, 0).numpy() for img in to_uint8(batch)]


def render_crops(model_or_weights: Weights, crops: ComparisonCrops) -> list[np.ndarray]:
    """The model's SR prediction of each crop, as uint8 HxWx3 arrays (the pixels that get logged)."""
    return _images(upscale(_as_model(model_or_weights), crops.lr))


def bicubic_crops(crops: ComparisonCrops) -> list[np.ndarray]:
    """Bicubic x4 of each crop's LR, as uint8 HxWx3 arrays: the baseline every trial is shown beside."""
    return _images(bicubic_upscale(to_float(crops.lr)))


def hr_crops(crops: ComparisonCrops) -> list[np.ndarray]:
    return [img.permute(1, 2, 0).numpy() for img in crops.hr]


def crop_metrics(images: Sequence[np.ndarray], crops: ComparisonCrops) -> list[dict[str, float]]:
    """{"psnr", "psnr_y"} of each uint8 image against its crop's HR: the numbers of the pixels shown,
    by sr_core.metrics (RGB, no border crop; Y with `scale` pixels cropped, as val/psnr_y)."""
    if len(images) != len(crops):
        raise ValueError(f"{len(images)} images for {len(crops)} crops")
    pred = to_float(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous())
    target = to_float(crops.hr)
    rgb, y = metrics.psnr(pred, target), metrics.psnr_y(pred, target)
    return [{"psnr": float(a), "psnr_y": float(b)} for a, b in zip(rgb, y)]


def manifest(crops: ComparisonCrops) -> dict:
    """What the study run records of its crops (crops.json): each one's identity and its bicubic
    PSNRs, so the report can show and label them without sr_core."""
    bicubic = crop_metrics(bicubic_crops(crops), crops)
    entries = [{"name": name, "key": key, "photo": photo, "bicubic_psnr": b["psnr"],
                "bicubic_psnr_y": b["psnr_y"], "hr_sha256": hashlib.sha256(hr.numpy().tobytes()).hexdigest()}
               for name, key, photo, b, hr in zip(crops.names, crops.keys, crops.photos, bicubic, crops.hr)]
    return {"version": 1, "rule": f"{RULE}; at most {crops.per_photo} per scene", "crops": entries}
