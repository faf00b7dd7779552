"""A real sqlite MLflow store, written by search.tracking (the one writer) in sr_core.contract's names,
as a search writes it (docs/tracking-schema.md): so the reports are tested against what is really written.

Known numbers, chosen so tests can assert exact figure data:

study `residual` (grace_period 2, rf 2)      study `refiner` (grace_period 2, rf 2)
  R1 residual b2 c16  completed   0.0100       F1 refiner b4 c16 completed   0.0095
  R2 residual b4 c16  completed   0.0090       F2 refiner b4 c32 completed   0.0080
  R3 residual b8 c16  early_stop  0.0092       F5 refiner b2 c32 completed   0.0088
  R4 residual b4 c32  completed   0.0070 best  F3 refiner b2 c16 pruned      0.0150
  R5 residual b4 c8   pruned      0.0200       F4 refiner b8 c16 diverged    (NaN at epoch 3)
  R6 residual b4 c32  pruned (lr 1e-4) 0.0160
  R7 residual b8 c64  oom, no metrics       F6 refiner b2 c8  running     (no summary metrics yet)
An older parent run of `residual` (one child R0) must be ignored; study `empty` has no trials.

Each study run is opened from a real `Study` (search.study.parse_study of a small TOML, `study_toml`).
Two things differ from a search's own runs, as the tests expect them: a trial's run name is the short
`Trial.name` (no `_eta`), and its n_params and flops_per_image are the round numbers below, not
sr_core.models' counts; so trials are opened with tracking.open_trial_run and their params logged with
tracking.log_params (TrialConfig's logged fields, from the study, plus those two).

Comparison crops (docs/tracking-schema.md): every study logs the same three crops (CROPS, in that order)
with tracking.log_study_crops; every trial with weights (completed, early_stopped, pruned) logged its
prediction of each: the HR plus uniform noise of CROP_NOISE[crop] * (1 + CROP_SPREAD[crop] * i) gray
levels for the i-th such trial logged (in the order above, studies R0, residual, refiner), so the trials
disagree most on `edges`, least on `calm`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from search import tracking
from search.study import Study, parse_study
from sr_core.contract import (
    EPOCHS_RUN,
    SAMPLES_IMAGE,
    TRIAL_SHAPE_PARAMS,
    WALL_SECONDS,
    WITH_WEIGHTS,
    crop_image,
    crop_metric,
    summary_key,
)
from sr_core.crops import ComparisonCrops
from sr_core.resize import downscale
from sr_core.trial_config import LOGGED_FIELDS

# tests/conftest.py sets MLFLOW_DISABLE_TELEMETRY=true before anything here imports mlflow.


@dataclass(frozen=True)
class Trial:
    key: str
    arch: str
    blocks: int
    channels: int
    lr: float
    status: str
    epochs_run: int
    rung: float  # val/mse at epoch 2 (the first rung)
    best: float  # best val/mse
    wall: float  # seconds
    n_params: int
    best_epoch: int | None = None  # defaults to the last epoch
    eta_min: float = 1e-7
    summary: bool = True  # log the end-of-trial summary metrics

    @property
    def name(self) -> str:
        return f"{self.arch}_b{self.blocks}_c{self.channels}_lr{self.lr:g}"


RESIDUAL = [
    Trial("R1", "residual", 2, 16, 1e-3, "completed", 6, 0.0150, 0.0100, 60, 10_000),
    Trial("R2", "residual", 4, 16, 1e-3, "completed", 6, 0.0140, 0.0090, 90, 20_000),
    Trial("R3", "residual", 8, 16, 1e-3, "early_stopped", 5, 0.0130, 0.0092, 150, 40_000, best_epoch=4),
    Trial("R4", "residual", 4, 32, 1e-3, "completed", 6, 0.0120, 0.0070, 200, 75_000),
    Trial("R5", "residual", 4, 8, 1e-3, "pruned", 2, 0.0200, 0.0200, 20, 6_000),
    Trial("R6", "residual", 4, 32, 1e-4, "pruned", 2, 0.0160, 0.0160, 60, 75_000),
    Trial("R7", "residual", 8, 64, 1e-3, "oom", 0, math.nan, math.nan, 5, 600_000),
]
REFINER = [
    Trial("F1", "refiner", 4, 16, 1e-3, "completed", 6, 0.0135, 0.0095, 300, 18_000),
    Trial("F2", "refiner", 4, 32, 1e-3, "completed", 6, 0.0125, 0.0080, 500, 70_000),
    Trial("F5", "refiner", 2, 32, 1e-3, "completed", 6, 0.0110, 0.0088, 400, 35_000),
    Trial("F3", "refiner", 2, 16, 1e-3, "pruned", 2, 0.0150, 0.0150, 50, 9_000),
    Trial("F4", "refiner", 8, 16, 1e-3, "diverged", 3, 0.0300, 0.0300, 40, 36_000),
    Trial("F6", "refiner", 2, 8, 1e-3, "running", 3, 0.0200, 0.0180, math.nan, 4_000, summary=False),
]
OLD = [Trial("R0", "residual", 2, 8, 1e-2, "completed", 6, 0.05, 0.04, 10, 3_000)]
CROPS = ("calm", "texture", "edges")  # the order the studies chose them in
CROP_NOISE = {"calm": 14, "texture": 12, "edges": 10}  # gray levels
CROP_SPREAD = {"calm": 0.02, "texture": 0.3, "edges": 1.0}


def crop_hr(crop: str) -> np.ndarray:
    """A 128x128 RGB HR crop: a smooth ramp with stripes whose period depends on the crop."""
    y, x = np.mgrid[0:128, 0:128]
    period = {"calm": 64, "texture": 8, "edges": 16}[crop]
    base = 60 + x + 40 * ((y // period) % 2)
    return np.stack([base, base[::-1], base.T], axis=-1).clip(0, 255).astype(np.uint8)


def noisy(hr: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-round(amplitude), round(amplitude) + 1, hr.shape)
    return (hr.astype(int) + noise).clip(0, 255).astype(np.uint8)


def psnr_u8(pred: np.ndarray, target: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((pred.astype(float) - target) ** 2))


def val_curve(t: Trial) -> list[float]:
    """Per-epoch val/mse: 1.25*rung, rung, then geometric down to best, then slowly worse."""
    if t.epochs_run == 0:
        return []
    if t.status == "diverged":
        return [t.rung * 1.25, t.rung] + [math.nan] * (t.epochs_run - 2)
    best_epoch = t.best_epoch or t.epochs_run
    vals = [t.rung * 1.25, t.rung][: t.epochs_run]
    for e in range(3, t.epochs_run + 1):
        if e <= best_epoch:
            frac = (e - 2) / (best_epoch - 2)
            vals.append(t.rung * (t.best / t.rung) ** frac)
        else:
            vals.append(t.best * (1 + 0.02 * (e - best_epoch)))
    return vals


def psnr_of(mse: float) -> float:
    return 10 * math.log10(1 / mse) + 0.5


def ssim_of(mse: float) -> float:
    return 1 - 20 * mse


@dataclass
class Store:
    uri: str
    root: str
    parents: dict[str, str] = field(default_factory=dict)  # study -> parent run id
    runs: dict[str, str] = field(default_factory=dict)  # trial key -> run id
    trials: dict[str, Trial] = field(default_factory=dict)
    bicubic_psnr: dict[str, float] = field(default_factory=dict)
    samples_png: bytes = b""  # the best trial's samples.png
    crop_psnr: dict[tuple[str, str], float] = field(default_factory=dict)  # (trial key, crop) -> PSNR
    crops: tuple[str, ...] = CROPS  # the comparison crops, in the order the studies chose them


def study_toml(name: str, trials: list[Trial]) -> str:
    """A study file whose [space] holds its trials' values: a TPE search over them with ASHA at grace
    period 2, reduction factor 2, 6 epochs."""
    def values(key: str, default: object) -> list:
        return sorted({getattr(t, key) for t in trials}) or [default]

    space = {"arch": values("arch", "residual"), "blocks": values("blocks", 2), "channels": values("channels", 8),
             "lr": values("lr", 1e-3), "eta_min": values("eta_min", 1e-7)}
    lines = [f"[study]\nname = {json.dumps(name)}\n", f"[search]\nsampler = \"tpe\"\ntrials = {max(len(trials), 1)}\n",
             "[space]", *(f"{k} = {json.dumps(v)}" for k, v in space.items()),
             "\n[train]\nepochs = 6\nbatch_size = 16\ngrad_clip = 1.0\npatience = 2\n",
             "[pruner]\nkind = \"asha\"\ngrace_period = 2\nreduction_factor = 2\n"]
    return "\n".join(lines)


def comparison_crops() -> ComparisonCrops:
    """The studies' comparison crops: CROPS' HR images and their LR by sr-search's own x4 resize."""
    hr = torch.from_numpy(np.stack([crop_hr(c) for c in CROPS])).permute(0, 3, 1, 2).contiguous()
    lr = downscale(hr)
    return ComparisonCrops(lr=lr, hr=hr, names=CROPS, photos=tuple(f"photo_{c}" for c in CROPS), keys=CROPS,
                           bicubic_mse=(0.0,) * len(CROPS))


def _log_trial(client: MlflowClient, exp: str, parent: str, study: Study, t: Trial, store: Store) -> str:
    """One trial as the driver's Tune callback writes it: opened `running`, each epoch's metrics (step =
    epoch), then at its end the summary, its crops and its status."""
    rid = tracking.open_trial_run(client, exp, parent, study.name, f"trial_{t.key}", t.name, t.arch)
    config = dataclasses.asdict(study.trial_config(
        {"arch": t.arch, "blocks": t.blocks, "channels": t.channels, "lr": t.lr, "eta_min": t.eta_min}))
    shape = dict(zip(TRIAL_SHAPE_PARAMS, (t.n_params, t.n_params * 2 * 128 * 128)))
    tracking.log_params(client, rid, {**{k: config[k] for k in LOGGED_FIELDS}, **shape})
    vals = val_curve(t)
    for epoch, v in enumerate(vals, start=1):
        result = {"train/mse": v * 0.9, "val/mse": v, "val/psnr": psnr_of(v), "val/ssim": ssim_of(v),
                  "lr": t.lr, "epoch_seconds": 10.0, "images_per_s": 100.0}  # fmt: skip
        # The running summary is epochs run only: a search's running best/* would tie on timestamps here,
        # and MLflow breaks a tie by the larger value, which is not the latest best.
        tracking.log_epoch(client, rid, epoch, result, {EPOCHS_RUN: epoch} if t.summary else {})
    if vals and t.summary:
        finite = [v for v in vals if math.isfinite(v)]
        best = min(finite)
        best_epoch = vals.index(best) + 1
        tracking.log_values(client, rid, {
            summary_key("val/mse"): best, summary_key("val/psnr"): psnr_of(best),
            summary_key("val/ssim"): ssim_of(best), summary_key("train/mse"): best * 0.9,
            summary_key("epoch"): best_epoch, EPOCHS_RUN: len(vals), WALL_SECONDS: t.wall})  # fmt: skip
        if t.status in WITH_WEIGHTS:
            _log_trial_crops(client, rid, t, best_epoch, store)
    if t.status != "running":
        tracking.set_status(client, rid, t.status)
    return rid


def _log_trial_crops(client: MlflowClient, run_id: str, t: Trial, best_epoch: int, store: Store) -> None:
    """The trial's made-up prediction of each crop (noise on the HR) and its PSNRs, at its best epoch."""
    i = len(store.crop_psnr) // len(CROPS)  # counts across studies: no two trials alike
    values = {}
    for crop in CROPS:
        sr = noisy(crop_hr(crop), CROP_NOISE[crop] * (1 + CROP_SPREAD[crop] * i), seed=i + 1)
        # tracking.log_trial_crops renders a model; these predictions are made up, so the image is logged raw.
        client.log_image(run_id, sr, artifact_file=crop_image(crop))
        store.crop_psnr[(t.key, crop)] = psnr_u8(sr, crop_hr(crop))
        values |= {crop_metric(crop, "psnr"): store.crop_psnr[(t.key, crop)],
                   crop_metric(crop, "psnr_y"): store.crop_psnr[(t.key, crop)] + 1.0}
    tracking.log_values(client, run_id, values, step=best_epoch)


def _log_study(client, exp, name, trials, store, crops, *, bicubic_psnr=20.0, actual=True) -> None:
    """One study as `sr-search run` writes it: the study run opened with its spec, estimate and bicubic
    figures and its crops, its trials, then its actual cost and outside gains, `completed`."""
    study = parse_study(study_toml(name, trials), f"{name}.toml", name)
    values = {"estimate/grid_size": 24, "estimate/trials": len(trials) + 1,
              "estimate/flops_total": 1e15, "estimate/device_hours": 0.5, "estimate/wall_hours": 0.25,
              "bicubic/val_mse": 0.012, "bicubic/val_psnr": bicubic_psnr, "bicubic/val_ssim": 0.7,
              "bicubic/train_psnr": bicubic_psnr + 0.25}  # fmt: skip
    pid = tracking.start_study_run(client, exp, study, values,
                                   {"device": "cpu", "data.train_images": 700, "data.val_images": 140})
    tracking.log_study_crops(client, pid, crops)
    for t in trials:
        store.runs[t.key] = _log_trial(client, exp, pid, study, t, store)
        store.trials[t.key] = t
    closing = {"actual/device_hours": 0.4, "actual/wall_hours": 0.2} if actual else {}
    if name == "residual":
        closing |= {"outside/sr-search/gain_db": 0.91, "outside/pil/gain_db": 0.88, "outside/opencv/gain_db": 0.12}
    tracking.log_values(client, pid, closing)
    tracking.set_status(client, pid, "completed")
    store.parents[name] = pid
    store.bicubic_psnr[name] = bicubic_psnr


def samples_png() -> bytes:
    """A 4-column grid (LR / bicubic / SR / HR), 2 rows of 16 px tiles."""
    img = Image.new("RGB", (64, 32))
    for col, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]):
        img.paste(colour, (col * 16, 0, col * 16 + 16, 32))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = tracking.ensure_experiment(client, root / "artifacts")
    store = Store(uri=uri, root=str(root))
    crops = comparison_crops()
    _log_study(client, exp, "residual", OLD, store, crops)  # older: must be ignored
    _log_study(client, exp, "residual", RESIDUAL, store, crops, bicubic_psnr=20.5)
    _log_study(client, exp, "refiner", REFINER, store, crops, actual=False)
    _log_study(client, exp, "empty", [], store, crops)
    png = root / SAMPLES_IMAGE
    store.samples_png = samples_png()
    png.write_bytes(store.samples_png)
    tracking.log_file(client, store.runs["R4"], png)
    return store


@pytest.fixture(scope="session")
def two_study_report(store, tmp_path_factory):
    """The report of both studies, built once: (path, html text)."""
    from reports import build_report

    path = build_report(store.uri, ["residual", "refiner"], tmp_path_factory.mktemp("report") / "both.html")
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def residual_report(store, tmp_path_factory):
    """The report of the residual study alone (one arch): (path, html text)."""
    from reports import build_report

    path = build_report(store.uri, ["residual"], tmp_path_factory.mktemp("report") / "residual.html")
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def data(store):
    """RunData of both studies."""
    from reports import load_runs

    return load_runs(store.uri, ["residual", "refiner"])
