"""The tracking vocabulary, in one place: what `search` writes to MLflow and `reports` reads back
(docs/tracking-schema.md is the prose of it). `search.tracking` imports these names, so the writer and
the reader cannot drift apart. Plain Python only: importing it costs nothing.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

EXPERIMENT = "sr-search"
# MLflow 3 opens an experiment on its GenAI overview unless it is marked as model training.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

#: The val metrics of every epoch: the study's own (RGB, no border crop) and the papers' (Y of BT.601
#: YCbCr, `scale` pixels cropped from each border); see docs/tracking-schema.md.
VAL_METRICS = ("val/mse", "val/psnr", "val/ssim", "val/psnr_y", "val/ssim_y")
#: Logged every epoch of a trial, with step = epoch (1-based).
EPOCH_METRICS = ("train/mse", *VAL_METRICS, "lr", "epoch_seconds", "images_per_s")
#: The study run's own metrics (no step).
STUDY_METRICS = (
    "estimate/grid_size", "estimate/trials", "estimate/flops_total", "estimate/device_hours",
    "estimate/wall_hours", "bicubic/val_mse", "bicubic/val_psnr", "bicubic/val_ssim", "bicubic/train_psnr",
    "actual/device_hours", "actual/wall_hours",
    "outside/sr-search/gain_db", "outside/pil/gain_db", "outside/opencv/gain_db",
)  # fmt: skip
#: A trial's params besides its hyperparameters (which are TrialConfig's logged fields).
TRIAL_SHAPE_PARAMS = ("n_params", "flops_per_image")

# -- comparison crops (search.crops chooses them, reports.comparison lines them up) ----------------
#: On the study run: the crops' identity (name, key, photo, bicubic PSNRs) and the rule that chose them.
CROPS_MANIFEST = "crops.json"
#: Per crop of a trial, logged at its best epoch's weights (step = that epoch).
CROP_METRICS = ("psnr", "psnr_y")


def crop_image(key: str, kind: str = "sr") -> str:
    """Artifact path of a crop's image: a trial's prediction ("sr", crops/KEY.png, one path in every
    trial so MLflow's run comparison lines them up), or the study run's "hr" and "bicubic" ones."""
    if kind not in ("sr", "hr", "bicubic"):
        raise ValueError(f"kind must be 'sr', 'hr' or 'bicubic', got {kind=}")
    return f"crops/{key}.png" if kind == "sr" else f"crops/{kind}/{key}.png"


def crop_metric(key: str, metric: str) -> str:
    """A trial's metric on one crop: crops/KEY/psnr, crops/KEY/psnr_y."""
    return f"crops/{key}/{metric}"


# -- statuses: one story in every store ----------------------------------------------------------
#: Ran to their end: their best value is a final value. Only these can be "the best trial".
FINISHED = ("completed", "early_stopped")
#: Ended with weights worth keeping (best.pt and samples.png are logged for these).
WITH_WEIGHTS = FINISHED + ("pruned",)
#: Ended for good: a resume never runs them again.
ENDED = WITH_WEIGHTS + ("diverged", "oom", "failed")
#: Not ended: `running` while a driver runs it, `interrupted` when the driver stopped (resumable).
UNFINISHED = ("running", "interrupted")
STATUSES = UNFINISHED + ENDED

# -- the best trial ------------------------------------------------------------------------------
#: The search objective unless a study names another logged metric ([search] metric, mode).
OBJECTIVE, OBJECTIVE_MODE = "val/mse", "min"


#: Summary metric of a trial (its best epoch's value) -> the report's column for it.
BEST_COLUMNS = {**{f"best/{m.replace('/', '_')}": m for m in ("train/mse", *VAL_METRICS)}, "best/epoch": "best_epoch"}


def summary_key(metric: str) -> str:
    """The summary metric holding a trial's value of `metric` at its best epoch: val/mse -> best/val_mse."""
    return "best/" + metric.replace("/", "_")


def best_position(statuses: Sequence[str], values: Sequence[float], mode: str = OBJECTIVE_MODE) -> int | None:
    """The rule for the best trial, over trials listed in start order: among those that ran to their
    end (FINISHED) with a finite value, the lowest value ("min") or the highest ("max"); ties go to
    the trial listed first. None when no trial finished. Pruned trials are never best: their value
    is that of a shorter training."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode=}")
    sign = 1.0 if mode == "min" else -1.0
    best, best_value = None, math.inf
    for i, (status, value) in enumerate(zip(statuses, values)):
        if status not in FINISHED or value is None or not math.isfinite(float(value)):
            continue
        if sign * float(value) < best_value:
            best, best_value = i, sign * float(value)
    return best
