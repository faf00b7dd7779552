"""One training trial: the loop every search trial runs.

`train_trial` reads as the story: set up, resume if a checkpoint is there, then one epoch at a time
(train, evaluate, keep the best, checkpoint, report) until the trial ends. MSE loss, Adam, a per-step
cosine schedule from `lr` to `eta_min`, gradient-norm clipping, early stopping on val MSE. bf16
autocast on CUDA where supported (else fp16 with a GradScaler), fp32 on CPU.

The trial never raises for what training itself does: NaN/inf ends it as `diverged`, running out of
memory anywhere (moving data to the device, training, evaluating) as `oom`, a falsy return of
`on_epoch` as `pruned`; each with a one-line `reason`. It never mutates its inputs, and the same
config and seed give the same result, in one process or across a checkpoint/resume.

Checkpoint folder (all files written atomically, each before the report that announces it):
    checkpoint.pt   everything needed to continue: model, optimizer, scaler, RNG, history, best
    best.pt         the best epoch's weights and the network's shape (what `predict` loads)
    ended.json      written when the trial ends: status, reason, history, best. A resume of an
                    ended trial runs nothing and returns this.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sr_core import metrics
from sr_core.data import SRData, SRPairs, augment_batch, to_float
from sr_core.faults import Fault, inject, parse_fault
from sr_core.files import atomic_path, write_text_atomic
from sr_core.models import ARCHS, build_model

STATUSES = ("completed", "early_stopped", "pruned", "diverged", "oom")
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
ENDED_FILE = "ended.json"
EVAL_BATCH = 64
_NAN_CHECK_EVERY = 8  # steps between loss checks: each check is a CPU-GPU sync point

OnEpoch = Callable[[dict[str, float]], Any]


@dataclass(frozen=True)
class TrialConfig:
    arch: str = "residual"
    blocks: int = 4
    channels: int = 32
    lr: float = 1e-4
    eta_min: float = 1e-7
    epochs: int = 10
    batch_size: int = 16
    grad_clip: float = 1.0
    patience: int = 10
    seed: int = 0
    augment: bool = True
    # Images per epoch, drawn afresh each epoch; None = the whole train set. Lets CPU demos report
    # (and be pruned) often without shrinking the data they see over a trial.
    epoch_samples: int | None = None
    # Test-only hook: inject a fault ("raise@2", "nan@2", "oom@1", "oom:eval@1", "oom:to_device")
    # so the fault suite exercises the real handling paths. Empty for every real trial.
    fault: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch=}")
        for name in ("blocks", "channels", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "blocks" else 1):
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr=}")
        if not (0 <= self.eta_min <= self.lr):
            raise ValueError(f"eta_min must be in [0, lr], got {self.eta_min=} with {self.lr=}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip=}")
        if self.epoch_samples is not None and self.epoch_samples < 1:
            raise ValueError(f"epoch_samples must be >= 1 or None, got {self.epoch_samples=}")
        parse_fault(self.fault)  # raises ValueError naming `fault` when malformed

    @property
    def run_name(self) -> str:
        return f"{self.arch}_b{self.blocks}_c{self.channels}_lr{self.lr:g}"


@dataclass
class TrialResult:
    status: str
    best: dict[str, float]
    history: list[dict[str, float]]
    epochs: int
    seconds: float
    weights: dict[str, torch.Tensor] | None = field(repr=False, default=None)
    reason: str = ""  # one line saying why a trial that did not complete ended


def lr_at(step: int, total_steps: int, config: TrialConfig) -> float:
    """Cosine from config.lr at step 0 to config.eta_min at the last step (a pure function)."""
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return config.eta_min + 0.5 * (config.lr - config.eta_min) * (1 + math.cos(math.pi * progress))


def default_device() -> torch.device:
    """CUDA when this process sees a GPU (Ray hides the GPUs a trial was not given), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # fp32 on CPU: bf16 autocast there is slower and less accurate
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@torch.inference_mode()
def evaluate(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
             amp_dtype: torch.dtype | None = None, fault: Fault | None = None,
             epoch: int = 0) -> dict[str, float]:
    """val/mse (pixel mean), val/psnr and val/ssim (means of per-image values)."""
    was_training = model.training
    model.eval()
    sums = {"val/mse": 0.0, "val/psnr": 0.0, "val/ssim": 0.0}
    for start in range(0, len(pairs), EVAL_BATCH):
        inject(fault, "eval", epoch)
        lr = to_float(pairs.lr[start:start + EVAL_BATCH].to(device))
        hr = to_float(pairs.hr[start:start + EVAL_BATCH].to(device))
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = model(lr)
        pred = pred.float()
        sums["val/mse"] += metrics.mse(pred, hr).sum().item()
        sums["val/psnr"] += metrics.psnr(pred, hr).sum().item()
        sums["val/ssim"] += metrics.ssim(pred, hr).sum().item()
    model.train(was_training)
    return {k: v / len(pairs) for k, v in sums.items()}


def best_metrics(best: dict[str, float]) -> dict[str, float]:
    """{"val/mse": x, "epoch": 3} -> {"best/val_mse": x, "best/epoch": 3} (the MLflow summary keys)."""
    return {"best/" + k.replace("/", "_"): v for k, v in best.items()}


def config_from_dict(values: dict[str, Any]) -> TrialConfig:
    """A TrialConfig from a mapping, naming any unknown key (for configs coming from a search)."""
    known = {f.name for f in dataclasses.fields(TrialConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown TrialConfig field(s) {unknown}; known: {sorted(known)}")
    return TrialConfig(**values)


# -- the trial's state while it runs ---------------------------------------------------------------
@dataclass
class _Trial:
    """Everything one trial holds while it trains. Private: train_trial is the only way in."""
    config: TrialConfig
    device: torch.device
    fault: Fault | None
    started: float  # perf_counter at the start of this session
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    gen: torch.Generator | None = None
    train_lr: torch.Tensor | None = None
    train_hr: torch.Tensor | None = None
    per_epoch: int = 0
    steps_per_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    prior_seconds: float = 0.0  # wall time of earlier sessions of this trial (before a resume)
    next_epoch: int = 1
    status: str | None = None  # set when the trial ends
    reason: str = ""

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return _amp_dtype(self.device)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def seconds(self) -> float:
        return self.prior_seconds + time.perf_counter() - self.started

    def end(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason

    def result(self) -> TrialResult:
        return TrialResult(self.status or "completed", self.best, self.history, len(self.history),
                           self.seconds, self.best_weights, self.reason)


def train_trial(config: TrialConfig, data: SRData, *, device: str | torch.device | None = None,
                on_epoch: OnEpoch | None = None,
                checkpoint_dir: str | os.PathLike | None = None) -> TrialResult:
    """Train one config; return how it ended, its history, its best epoch and the best weights.

    `on_epoch(report)` is called after every epoch with the epoch's metrics plus the best so far
    (`best/val_mse`, ...); a falsy return stops the trial as `pruned`. With `checkpoint_dir` the
    trial checkpoints every epoch and resumes from the folder's checkpoint when there is one.
    """
    device = torch.device(device) if device is not None else default_device()
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    trial = _Trial(config, device, parse_fault(config.fault), time.perf_counter())
    out_of_memory = None
    try:
        _set_up(trial, data)
        if ckpt_dir is not None:
            _resume(trial, ckpt_dir)
        while trial.status is None:
            _run_epoch(trial, data.val, ckpt_dir, on_epoch)
    except torch.OutOfMemoryError as exc:
        out_of_memory = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
    if out_of_memory is not None:
        # Outside the except block: the traceback (and the activations its frames hold) is gone.
        _release(trial)
        trial.end("oom", f"out of memory at epoch {trial.next_epoch}: {out_of_memory}"[:500])
        _save_ended(trial, ckpt_dir)
    return trial.result()


def _set_up(trial: _Trial, data: SRData) -> None:
    """Model, optimizer and the train set on the device (each of which can run out of memory)."""
    config, device = trial.config, trial.device
    # Seed only what this trial owns: init under a forked global RNG (callers' RNG untouched), and a
    # private generator for shuffling and augmentation whose state goes into every checkpoint.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.arch, config.blocks, config.channels)
    inject(trial.fault, "to_device", 0)
    trial.model = model.to(device)
    trial.optimizer = torch.optim.Adam(trial.model.parameters(), lr=config.lr)
    trial.scaler = torch.amp.GradScaler(device.type, enabled=trial.amp_dtype == torch.float16)
    trial.gen = torch.Generator().manual_seed(config.seed)
    # The whole train set sits on the device as uint8 (7000 images = 350 MB): no loader, no decoding.
    trial.train_lr, trial.train_hr = data.train.lr.to(device), data.train.hr.to(device)
    n_train = len(data.train)
    trial.per_epoch = min(config.epoch_samples or n_train, n_train)
    trial.steps_per_epoch = math.ceil(trial.per_epoch / config.batch_size)


def _resume(trial: _Trial, ckpt_dir: Path) -> None:
    """Continue from the folder's checkpoint; an ended trial is restored as ended (nothing to run)."""
    if (ckpt_dir / BEST_FILE).exists():
        trial.best_weights = torch.load(ckpt_dir / BEST_FILE, map_location="cpu",
                                        weights_only=True)["state_dict"]
    if (ckpt_dir / ENDED_FILE).exists():
        ended = json.loads((ckpt_dir / ENDED_FILE).read_text())
        _check_config(ended["config"], trial.config, ckpt_dir)
        trial.history, trial.best, trial.prior_seconds = ended["history"], ended["best"], ended["seconds"]
        trial.end(ended["status"], ended["reason"])
        trial.started = time.perf_counter()
        return
    if not (ckpt_dir / CHECKPOINT_FILE).exists():
        return
    state = torch.load(ckpt_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    _check_config(state["config"], trial.config, ckpt_dir)
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    trial.scaler.load_state_dict(state["scaler"])
    trial.gen.set_state(state["generator"])
    trial.next_epoch, trial.history, trial.best = state["epoch"] + 1, state["history"], state["best"]
    trial.bad_epochs, trial.prior_seconds = state["bad_epochs"], state["seconds"]
    trial.started = time.perf_counter()


def _check_config(saved: dict, config: TrialConfig, ckpt_dir: Path) -> None:
    if saved != dataclasses.asdict(config):
        raise ValueError(f"checkpoint in {ckpt_dir} belongs to another config: {saved}")


def _run_epoch(trial: _Trial, val: SRPairs, ckpt_dir: Path | None, on_epoch: OnEpoch | None) -> None:
    """Train and evaluate one epoch, keep the best, checkpoint, report; end the trial when it must."""
    epoch, config = trial.next_epoch, trial.config
    t0 = time.perf_counter()
    train_mse = _train_epoch(trial, epoch)
    train_seconds = time.perf_counter() - t0
    val_metrics = evaluate(trial.model, val, trial.device, trial.amp_dtype, trial.fault, epoch)
    # A perfect image has PSNR inf: that is not a divergence. A non-finite MSE is.
    if not (math.isfinite(train_mse) and math.isfinite(val_metrics["val/mse"])):
        which = "train" if not math.isfinite(train_mse) else "val"
        trial.end("diverged", f"non-finite {which} MSE at epoch {epoch}")
        _save_ended(trial, ckpt_dir)
        return
    report = {"epoch": epoch, "train/mse": train_mse, **val_metrics,
              "lr": lr_at((epoch - 1) * trial.steps_per_epoch, trial.total_steps, config),
              "epoch_seconds": time.perf_counter() - t0, "images_per_s": trial.per_epoch / train_seconds}
    trial.history.append(report)
    trial.next_epoch = epoch + 1
    _keep_best(trial, report, ckpt_dir)
    if epoch == config.epochs:
        trial.end("completed")
    elif trial.bad_epochs >= config.patience:
        trial.end("early_stopped", f"val/mse did not improve for {config.patience} epochs")
    _save_checkpoint(trial, ckpt_dir)  # before the report that announces it
    # The callback also sees the best epoch so far (best/val_mse, best/epoch, ...): a search that
    # stops this trial from outside still knows what it achieved.
    if on_epoch is not None and not on_epoch({**report, **best_metrics(trial.best)}) and trial.status is None:
        trial.end("pruned", f"stopped by the search after epoch {epoch}")
        _save_ended(trial, ckpt_dir)


def _train_epoch(trial: _Trial, epoch: int) -> float:
    """One pass over `per_epoch` shuffled, augmented samples; the mean train MSE (inf/nan if it blew up)."""
    config, device, model, optimizer, scaler = (trial.config, trial.device, trial.model, trial.optimizer,
                                                trial.scaler)
    model.train()
    order = torch.randperm(len(trial.train_lr), generator=trial.gen)[:trial.per_epoch]
    loss_sum = torch.zeros((), device=device)
    poison = 1.0
    for i in range(trial.steps_per_epoch):
        if i == 0 and inject(trial.fault, "train", epoch):
            poison = math.nan  # the injected NaN flows through the real divergence check
        for group in optimizer.param_groups:
            group["lr"] = lr_at((epoch - 1) * trial.steps_per_epoch + i, trial.total_steps, config)
        idx = order[i * config.batch_size:(i + 1) * config.batch_size].to(device)
        lr_img, hr_img = to_float(trial.train_lr[idx]), to_float(trial.train_hr[idx])
        if config.augment:
            lr_img, hr_img = augment_batch(lr_img, hr_img, generator=trial.gen)
        with torch.autocast(device.type, dtype=trial.amp_dtype, enabled=trial.amp_dtype is not None):
            loss = F.mse_loss(model(lr_img).float(), hr_img) * poison
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach() * len(idx)
        if (i + 1) % _NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
            break  # diverged: no point finishing the epoch
    return loss_sum.item() / trial.per_epoch  # sync point, once per epoch


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _keep_best(trial: _Trial, report: dict[str, float], ckpt_dir: Path | None) -> None:
    if trial.best and report["val/mse"] >= trial.best["val/mse"]:
        trial.bad_epochs += 1
        return
    trial.best = {k: report[k] for k in ("val/mse", "val/psnr", "val/ssim", "train/mse", "epoch")}
    trial.best_weights, trial.bad_epochs = _cpu_state(trial.model), 0
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(ckpt_dir / BEST_FILE) as tmp:
            torch.save({"config": dataclasses.asdict(trial.config), "state_dict": trial.best_weights}, tmp)


def _save_checkpoint(trial: _Trial, ckpt_dir: Path | None) -> None:
    if ckpt_dir is None:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"config": dataclasses.asdict(trial.config), "epoch": trial.next_epoch - 1,
             "model": trial.model.state_dict(), "optimizer": trial.optimizer.state_dict(),
             "scaler": trial.scaler.state_dict(), "generator": trial.gen.get_state(),
             "history": trial.history, "best": trial.best, "bad_epochs": trial.bad_epochs,
             "seconds": trial.seconds}
    with atomic_path(ckpt_dir / CHECKPOINT_FILE) as tmp:
        torch.save(state, tmp)
    if trial.status is not None:
        _save_ended(trial, ckpt_dir)


def _save_ended(trial: _Trial, ckpt_dir: Path | None) -> None:
    """Record how the trial ended, so a resume (or a retry) does not run it again."""
    if ckpt_dir is None:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(ckpt_dir / ENDED_FILE, json.dumps({
        "config": dataclasses.asdict(trial.config), "status": trial.status, "reason": trial.reason,
        "history": trial.history, "best": trial.best, "seconds": trial.seconds}))


def _release(trial: _Trial) -> None:
    """Drop everything the trial holds on the device and give the memory back (after an OOM)."""
    trial.model = trial.optimizer = trial.scaler = trial.train_lr = trial.train_hr = None
    if trial.device.type == "cuda":
        torch.cuda.empty_cache()
