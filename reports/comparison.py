"""The same crops across trials: which trials are shown, which crops come first, and the error maps.

Reads what docs/tracking-schema.md promises and nothing else: each study run's crops.json with its
crops' HR and bicubic images (crops/hr/KEY.png, crops/bicubic/KEY.png), and each trial's prediction
of them (crops/KEY.png) with its PSNRs on them (crops/KEY/psnr, crops/KEY/psnr_y). The rules are pure
functions (`shown_trials`, `disagreement`, `error_map`); `load_comparison` fetches what they pick.
reports.comparison_html draws it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sr_core.contract import CROPS_MANIFEST, FINISHED, crop_image

from . import analysis as an
from .figure_base import FigureUnavailable
from .load import RunData, load_artifact, load_artifact_folder

TOP = 3  # the best trials always shown
#: |SR - HR| (gray levels of 255, mean over R, G, B) at the top of an error map's colour scale: one
#: scale for every crop and trial of a report, so a darker map is a smaller error wherever it stands.
#: 64 levels (x4): at 32 (x8) bicubic's error on the embedded wood and fur crops saturated, and the
#: maps of different trials looked alike; at 64 bicubic's edges reach the top and textures stay inside.
ERROR_FULL_SCALE = 64
TRIAL_RULE = (f"the {TOP} best finished trials (lowest val/mse); the best of each architecture; the best "
              "at the fewest and at the most blocks, and at the fewest and at the most channels; each "
              "trial once, with every reason it is shown. Only trials that ran to their end and logged "
              "the crops count: a pruned trial's pictures are those of a shorter training.")
ORDER_RULE = ("crops where the trials shown disagree most come first: disagreement is the spread (highest "
              "minus lowest) of their RGB PSNRs on the crop")


@dataclass(frozen=True)
class ShownTrial:
    run_id: str
    name: str
    study: str
    arch: str
    val_psnr: float
    why: tuple[str, ...]  # every reason the rule shows it: "#1", "best residual", "deepest (24 blocks)"


@dataclass
class CropRow:
    """One crop with its HR and bicubic images and every shown trial's prediction (PNG bytes as
    logged, embedded as they are) and PSNRs, by run id."""

    name: str
    photo: str
    hr_png: bytes
    bicubic_png: bytes
    bicubic_psnr: float
    bicubic_psnr_y: float
    sr_png: dict[str, bytes] = field(default_factory=dict)
    psnr: dict[str, float] = field(default_factory=dict)
    psnr_y: dict[str, float] = field(default_factory=dict)

    @property
    def spread(self) -> float:
        return disagreement(self.psnr.values())


@dataclass(frozen=True)
class Comparison:
    trials: list[ShownTrial]
    crops: list[CropRow]  # most disagreement first
    crop_rule: str  # as the study's crops.json states it


def shown_trials(trials: pd.DataFrame, crop_scores: pd.DataFrame, top: int = TOP) -> list[ShownTrial]:
    """The trials of the comparison (TRIAL_RULE), best val/mse first; ties go to the earlier start."""
    pool = an.finished(trials)
    pool = pool[pool["run_id"].isin(crop_scores["run_id"])]
    pool = pool.sort_values(["val/mse", "start_time"], kind="stable")
    reasons: dict[str, list[str]] = {}
    for rank, run_id in enumerate(pool["run_id"].head(top), start=1):
        reasons.setdefault(run_id, []).append(f"#{rank}")
    for arch, rows in pool.groupby("arch", sort=True):
        reasons.setdefault(rows["run_id"].iloc[0], []).append(f"best {arch}")
    for col, low, high in (("blocks", "shallowest", "deepest"), ("channels", "narrowest", "widest")):
        values = pool[col]
        if values.nunique() < 2:
            continue  # one depth (or width) only: it has no extremes
        for word, value in ((low, values.min()), (high, values.max())):
            reasons.setdefault(pool.loc[values == value, "run_id"].iloc[0], []).append(f"{word} ({value:g} {col})")
    shown = pool[pool["run_id"].isin(reasons)]
    return [ShownTrial(r["run_id"], r["name"], r["study"], r["arch"], float(r["val/psnr"]), tuple(reasons[r["run_id"]]))
            for _, r in shown.iterrows()]


def final_models(data) -> list[ShownTrial]:
    """Each study's final model (its [final] step, when it finished and logged the crops): shown
    first, labelled, beside the search's trials."""
    shown = []
    for _, s in data.studies.iterrows():
        run_id = s.get("final/run_id")
        if isinstance(run_id, str) and s.get("final/status") in FINISHED and run_id in set(data.crop_scores["run_id"]):
            arch = str(s["final/name"]).split("_", 1)[0]
            shown.append(ShownTrial(run_id, str(s["final/name"]), str(s["study"]), arch, float(s["final/val_psnr"]),
                                    (f"final model ({s['final/epochs']:.0f} epochs)",)))
    return shown


def disagreement(psnrs: Iterable[float]) -> float:
    """How much the trials disagree on a crop: highest minus lowest finite PSNR (0 with fewer than two)."""
    values = [v for v in psnrs if math.isfinite(v)]
    return max(values) - min(values) if len(values) >= 2 else 0.0


def by_disagreement(rows: list[CropRow]) -> list[CropRow]:
    """Most disagreement first; equal spreads keep the order the study chose its crops in."""
    return sorted(rows, key=lambda row: -row.spread)


def error_map(sr: np.ndarray, hr: np.ndarray, full_scale: float = ERROR_FULL_SCALE) -> np.ndarray:
    """uint8 HxW: |SR - HR| per pixel, mean over the channels, amplified so that `full_scale` gray
    levels or more is 255 (the top of the colour scale): the same scale for every map it draws."""
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in shape")
    error = np.abs(sr.astype(np.int16) - hr.astype(np.int16)).mean(axis=-1)
    return np.clip(np.round(error * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def decode_png(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def _study_rows(data: RunData, shown: list[ShownTrial]) -> tuple[list[CropRow], list[str]]:
    """The crops of every study that logged them, one row per crop (a crop two studies share, by
    name and HR pixels, is one row), with each shown trial's prediction; and the studies' rules."""
    rows: dict[tuple[str, str], CropRow] = {}
    rules: list[str] = []
    scores = data.crop_scores.set_index(["run_id", "crop"])
    for _, study in data.studies.iterrows():
        raw = load_artifact(data.tracking_uri, study["run_id"], CROPS_MANIFEST)
        if raw is None:
            continue
        manifest = json.loads(raw)
        rules.append(str(manifest.get("rule", "")))
        images = load_artifact_folder(data.tracking_uri, study["run_id"], "crops")
        trials = [t for t in shown if t.study == study["study"]]
        predictions = {t.run_id: load_artifact_folder(data.tracking_uri, t.run_id, "crops") for t in trials}
        for entry in manifest["crops"]:
            key = entry["key"]
            row = rows.setdefault((entry["name"], entry["hr_sha256"]), CropRow(
                entry["name"], entry["photo"], images[_relative(crop_image(key, "hr"))],
                images[_relative(crop_image(key, "bicubic"))], entry["bicubic_psnr"], entry["bicubic_psnr_y"]))
            for t in trials:
                png = predictions[t.run_id].get(_relative(crop_image(key)))
                if png is not None and (t.run_id, key) in scores.index:
                    row.sr_png[t.run_id] = png
                    row.psnr[t.run_id] = float(scores.loc[(t.run_id, key), "psnr"])
                    row.psnr_y[t.run_id] = float(scores.loc[(t.run_id, key), "psnr_y"])
    return list(rows.values()), rules


def _relative(path: str) -> str:
    """An artifact path under crops/ as load_artifact_folder names it."""
    return path.split("/", 1)[1]


def load_comparison(data: RunData) -> Comparison:
    """The comparison section's content; FigureUnavailable says why when there is none."""
    shown = shown_trials(data.trials, data.crop_scores)
    if shown:
        shown = final_models(data) + shown
    if not shown:
        raise FigureUnavailable("no trial that ran to its end logged predictions of the study's comparison crops "
                                "(crops/KEY.png with crops/KEY/psnr)")
    rows, rules = _study_rows(data, shown)
    if not rows:
        raise FigureUnavailable(f"no study run holds {CROPS_MANIFEST}: the comparison crops were never chosen")
    return Comparison(shown, by_disagreement(rows), "; ".join(dict.fromkeys(rules)))
