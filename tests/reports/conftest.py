"""A real sqlite MLflow store, written through mlflow itself as docs/tracking-schema.md says.

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

Comparison crops (docs/tracking-schema.md): both studies chose the same three crops (CROPS, in that
order); every trial with weights (completed, early_stopped, pruned) logged its prediction of each: the
HR plus uniform noise of CROP_NOISE[crop] * (1 + CROP_SPREAD[crop] * i) gray levels for the i-th such
trial logged (in the order above, studies R0, residual, refiner), so the trials disagree most on `edges`, least on `calm`.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image

from sr_core.contract import CROPS_MANIFEST, WITH_WEIGHTS, crop_image, crop_metric

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


def _log_trial(client: MlflowClient, exp: str, parent: str, study: str, t: Trial, now: int) -> str:
    run = client.create_run(exp, run_name=t.name, start_time=now, tags={
        "mlflow.parentRunId": parent, "sr.role": "trial", "study": study, "arch": t.arch,
        "status": t.status, "trial_id": f"trial_{t.key}"})  # fmt: skip
    rid = run.info.run_id
    params = {"arch": t.arch, "blocks": t.blocks, "channels": t.channels, "lr": t.lr,
              "eta_min": t.eta_min, "epochs": 6, "batch_size": 16, "grad_clip": 1.0, "patience": 2,
              "seed": 0, "n_params": t.n_params, "flops_per_image": t.n_params * 2 * 128 * 128}  # fmt: skip
    metrics, vals = [], val_curve(t)
    for epoch, v in enumerate(vals, start=1):
        per_epoch = {"train/mse": v * 0.9, "val/mse": v, "val/psnr": psnr_of(v), "val/ssim": ssim_of(v),
                     "lr": t.lr, "epoch_seconds": 10.0, "images_per_s": 100.0}  # fmt: skip
        metrics += [Metric(k, x, now + epoch, epoch) for k, x in per_epoch.items()]
    if vals and t.summary:
        finite = [v for v in vals if math.isfinite(v)]
        best = min(finite)
        summary = {"best/val_mse": best, "best/val_psnr": psnr_of(best), "best/val_ssim": ssim_of(best),
                   "best/train_mse": best * 0.9, "best/epoch": vals.index(best) + 1,
                   "epochs_run": len(vals), "wall_seconds": t.wall}  # fmt: skip
        metrics += [Metric(k, float(x), now + 100, 0) for k, x in summary.items()]
    client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if t.status != "running":
        # As docs/tracking-schema.md (and search.tracking.set_status): only `failed` is MLflow's FAILED.
        client.set_terminated(rid, "FAILED" if t.status == "failed" else "FINISHED")
    return rid


def _log_study(client, exp, name, trials, start, store, *, bicubic_psnr=20.0, actual=True) -> None:
    parent = client.create_run(exp, run_name=name, start_time=start, tags={
        "sr.role": "study", "study": name, "status": "completed"})  # fmt: skip
    pid = parent.info.run_id
    params = {"search.sampler": "tpe", "pruner.kind": "asha", "pruner.grace_period": 2,
              "pruner.reduction_factor": 2, "train.max_epochs": 6, "device": "cpu",
              "data.train_images": 700, "data.val_images": 140}  # fmt: skip
    metrics = {"estimate/grid_size": 24, "estimate/trials": len(trials) + 1,
               "estimate/flops_total": 1e15, "estimate/device_hours": 0.5, "estimate/wall_hours": 0.25,
               "bicubic/val_mse": 0.012, "bicubic/val_psnr": bicubic_psnr, "bicubic/val_ssim": 0.7,
               "bicubic/train_psnr": bicubic_psnr + 0.25}  # fmt: skip
    if actual:
        metrics |= {"actual/device_hours": 0.4, "actual/wall_hours": 0.2}
    if name == "residual":
        metrics |= {"outside/sr-search/gain_db": 0.91, "outside/pil/gain_db": 0.88, "outside/opencv/gain_db": 0.12}
    client.log_batch(pid, metrics=[Metric(k, float(v), start, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag("mlflow.runName", name)])  # fmt: skip
    for i, t in enumerate(trials):
        store.runs[t.key] = _log_trial(client, exp, pid, name, t, start + 1000 * (i + 1))
        store.trials[t.key] = t
    _log_crops(client, pid, [t for t in trials if t.status in WITH_WEIGHTS], store)
    client.set_terminated(pid, "FINISHED")
    store.parents[name] = pid
    store.bicubic_psnr[name] = bicubic_psnr


def _log_crops(client: MlflowClient, study_run: str, trials: list[Trial], store: Store) -> None:
    """The study's crops.json with HR and bicubic images, and each trial's predictions and PSNRs."""
    if not trials:
        return
    entries = []
    for crop in CROPS:
        hr = crop_hr(crop)
        bicubic = noisy(hr, 20, seed=0)
        client.log_image(study_run, hr, artifact_file=crop_image(crop, "hr"))
        client.log_image(study_run, bicubic, artifact_file=crop_image(crop, "bicubic"))
        entries.append({"name": crop, "key": crop, "photo": f"photo_{crop}", "bicubic_psnr": psnr_u8(bicubic, hr),
                        "bicubic_psnr_y": psnr_u8(bicubic, hr) + 1.0, "hr_sha256": hashlib.sha256(hr.tobytes()).hexdigest()})
    client.log_dict(study_run, {"version": 1, "rule": "three test crops", "crops": entries}, CROPS_MANIFEST)
    for t in trials:
        i = len(store.crop_psnr) // len(CROPS)  # counts across studies: no two trials alike
        metrics = []
        for crop in CROPS:
            sr = noisy(crop_hr(crop), CROP_NOISE[crop] * (1 + CROP_SPREAD[crop] * i), seed=i + 1)
            client.log_image(store.runs[t.key], sr, artifact_file=crop_image(crop))
            store.crop_psnr[(t.key, crop)] = psnr_u8(sr, crop_hr(crop))
            metrics += [Metric(crop_metric(crop, "psnr"), store.crop_psnr[(t.key, crop)], 0, 6),
                        Metric(crop_metric(crop, "psnr_y"), store.crop_psnr[(t.key, crop)] + 1.0, 0, 6)]
        client.log_batch(store.runs[t.key], metrics=metrics)


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
    exp = client.create_experiment("sr-search", artifact_location=(root / "artifacts").as_uri())
    store = Store(uri=uri, root=str(root))
    now = int(time.time() * 1000) - 3_600_000  # every run starts in the past
    _log_study(client, exp, "residual", OLD, now - 86_400_000, store)  # older: must be ignored
    _log_study(client, exp, "residual", RESIDUAL, now, store, bicubic_psnr=20.5)
    _log_study(client, exp, "refiner", REFINER, now + 60_000, store, actual=False)
    _log_study(client, exp, "empty", [], now + 120_000, store)
    png = root / "samples.png"
    store.samples_png = samples_png()
    png.write_bytes(store.samples_png)
    client.log_artifact(store.runs["R4"], str(png))
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
