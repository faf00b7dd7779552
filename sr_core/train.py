"""One training trial: the loop every search trial runs.

Reads top to bottom: set up, (resume), then per epoch: train, evaluate, keep the best, checkpoint,
report. MSE loss, Adam, a per-step cosine schedule from `lr` to `eta_min`, gradient-norm clipping,
early stopping on val MSE. bf16 autocast on CUDA where supported (else fp16 with a GradScaler), fp32
on CPU.

The trial never raises for what training itself does: NaN/inf ends it as `diverged`, CUDA OOM as
`oom`, a falsy return of `on_epoch` as `pruned`. It never mutates its inputs, and the same config and
seed give the same result, in one process or across a checkpoint/resume.
"""
from __future__ import annotations

import dataclasses
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
from sr_core.models import ARCHS, build_model

STATUSES = ("completed", "early_stopped", "pruned", "diverged", "oom")
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
EVAL_BATCH = 64
_NAN_CHECK_EVERY = 8  # steps between loss checks: each check is a CPU-GPU sync point


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


def lr_at(step: int, total_steps: int, config: TrialConfig) -> float:
    """Cosine from config.lr at step 0 to config.eta_min at the last step (a pure function)."""
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return config.eta_min + 0.5 * (config.lr - config.eta_min) * (1 + math.cos(math.pi * progress))


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # fp32 on CPU: bf16 autocast there is slower and less accurate
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def evaluate(model: torch.nn.Module, pairs: SRPairs, device: torch.device,
             amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """val/mse (pixel mean), val/psnr and val/ssim (means of per-image values)."""
    was_training = model.training
    model.eval()
    sums = {"val/mse": 0.0, "val/psnr": 0.0, "val/ssim": 0.0}
    with torch.no_grad():
        for start in range(0, len(pairs), EVAL_BATCH):
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


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash leaves the previous file, never half of one


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_trial(config: TrialConfig, data: SRData, *, device: str | torch.device | None = None,
                on_epoch: Callable[[dict[str, float]], Any] | None = None,
                checkpoint_dir: str | os.PathLike | None = None) -> TrialResult:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp_dtype = _amp_dtype(device)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    t_start = time.perf_counter()

    # Seed only what this trial owns: init under a forked global RNG (callers' RNG untouched), and a
    # private generator for shuffling and augmentation whose state goes into every checkpoint.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.arch, config.blocks, config.channels)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    gen = torch.Generator().manual_seed(config.seed)

    # The whole train set sits on the device as uint8 (7000 images = 350 MB): no loader, no decoding.
    train_lr, train_hr = data.train.lr.to(device), data.train.hr.to(device)
    n_train = len(data.train)
    per_epoch = min(config.epoch_samples or n_train, n_train)
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    start_epoch, history, best, best_weights, bad_epochs, prior_seconds = 1, [], {}, None, 0, 0.0
    if ckpt_dir is not None and (ckpt_dir / CHECKPOINT_FILE).exists():
        state = torch.load(ckpt_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
        if state["config"] != dataclasses.asdict(config):
            raise ValueError(f"checkpoint in {ckpt_dir} belongs to another config: {state['config']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        bad_epochs, prior_seconds = state["bad_epochs"], state["seconds"]
        if (ckpt_dir / BEST_FILE).exists():
            best_weights = torch.load(ckpt_dir / BEST_FILE, map_location="cpu", weights_only=True)["state_dict"]
        if state["status"] is not None:  # the trial had already ended: nothing left to run
            return TrialResult(state["status"], best, history, len(history), prior_seconds, best_weights)

    status = "completed"
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=gen)[:per_epoch]
        loss_sum = torch.zeros((), device=device)
        try:
            for i in range(steps_per_epoch):
                step = (epoch - 1) * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, config)
                idx = order[i * config.batch_size:(i + 1) * config.batch_size].to(device)
                lr_img, hr_img = to_float(train_lr[idx]), to_float(train_hr[idx])
                if config.augment:
                    lr_img, hr_img = augment_batch(lr_img, hr_img, generator=gen)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = F.mse_loss(model(lr_img).float(), hr_img)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach() * len(idx)
                if (i + 1) % _NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                    break
        except torch.OutOfMemoryError:
            status = "oom"
        if status == "oom":
            del loss_sum
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            break
        train_mse = loss_sum.item() / per_epoch  # sync point, once per epoch
        if not math.isfinite(train_mse):
            status = "diverged"
            break
        train_seconds = time.perf_counter() - t0

        val = evaluate(model, data.val, device, amp_dtype)
        if not all(math.isfinite(v) for v in val.values()):
            status = "diverged"
            break
        report = {"epoch": epoch, "train/mse": train_mse, **val,
                  "lr": lr_at((epoch - 1) * steps_per_epoch, total_steps, config),
                  "epoch_seconds": time.perf_counter() - t0,
                  "images_per_s": per_epoch / train_seconds}
        history.append(report)

        if not best or val["val/mse"] < best["val/mse"]:
            best = {**val, "train/mse": train_mse, "epoch": epoch}
            best_weights, bad_epochs = _cpu_state(model), 0
            if ckpt_dir is not None:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                _atomic_save({"config": dataclasses.asdict(config), "state_dict": best_weights},
                             ckpt_dir / BEST_FILE)
        else:
            bad_epochs += 1

        if bad_epochs >= config.patience and epoch < config.epochs:
            status = "early_stopped"
        # Checkpoint before reporting, so whoever receives the report can persist this epoch.
        if ckpt_dir is not None:
            _atomic_save({
                "config": dataclasses.asdict(config), "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "generator": gen.get_state(), "history": history, "best": best,
                "bad_epochs": bad_epochs, "seconds": prior_seconds + time.perf_counter() - t_start,
                "status": status if status != "completed" or epoch == config.epochs else None,
            }, ckpt_dir / CHECKPOINT_FILE)
        # The callback also sees the best epoch so far (best/val_mse, best/epoch, ...): a search
        # that stops this trial from outside still knows what it achieved.
        if on_epoch is not None and not on_epoch({**report, **best_metrics(best)}):
            status = "pruned" if status == "completed" and epoch < config.epochs else status
            break
        if status == "early_stopped":
            break

    seconds = prior_seconds + time.perf_counter() - t_start  # wall time over every resumed session
    return TrialResult(status, best, history, len(history), seconds, best_weights)


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
