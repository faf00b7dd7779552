"""One training trial: the loop every search trial runs (its config and result: sr_core.trial_config;
validation: sr_core.evaluate).

`train_trial` reads as the story: set up, resume if a checkpoint is there, then one epoch at a time
(train, evaluate, keep the best, checkpoint, report) until the trial ends. The config's loss (MSE by
default, sr_core.losses; `train/mse` is reported whatever the loss), Adam, a per-step
cosine schedule from `lr` to `eta_min`, gradient-norm clipping, early stopping on the objective
(val MSE unless the study names another; sr_core.full_val scores full-size images every few epochs). bf16
autocast on CUDA where the GPU has it natively (else fp16 with a GradScaler), fp32 on CPU.

Speed. The fast paths (channels_last, TF32, cudnn.benchmark, fused Adam, batches drawn on the device,
a lagged divergence check, big eval batches, torch.compile, background checkpoints) are switches of
`FastPaths` (sr_core.fastpaths), each measured on and off by `sr-search bench train`. Compiling
(sr_core.compilation) defaults to "auto": CUDA graphs for launch-bound trials on CUDA, else eager; a
compiled session reports its compile time once, as `compile_seconds` in its first epoch's report.
Inside an epoch's step loop nothing waits for the GPU: the host only queues work. The epoch's one
sync point is reading its mean loss; evaluation has one more.

The trial never raises for what training itself does: NaN/inf ends it as `diverged`, running out of
memory anywhere (moving data to the device, training, evaluating) as `oom`, a falsy return of
`on_epoch` as `pruned`; each with a one-line `reason`. It never mutates its inputs, and the same
config and seed give the same result, in one process or across a checkpoint/resume.

Checkpoint folder (sr_core.checkpoint): checkpoint.pt (everything an exact resume needs), best.pt
(the best weights, what `predict` loads), ended.json (how the trial ended; a resume of an ended trial
runs nothing and returns it). By default epoch N's files are written before epoch N's report; with
`FastPaths(async_checkpoint=True)` they are written during epoch N+1 and announced by its report.
Cheap checkpoints are written every epoch, costly ones (big nets) as often as `FastPaths.
checkpoint_budget` allows (sr_core.checkpoint.CheckpointPolicy); the epoch a trial ends on always.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from collections.abc import Collection
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sr_core import compilation, fastpaths
from sr_core.augment import augment_batch, augment_batch_host, epoch_draws, epoch_order, make_generator
from sr_core.checkpoint import BEST_FILE, CHECKPOINT_FILE, ENDED_FILE, CheckpointPolicy, CheckpointWriter
from sr_core.contract import FULL_METRICS, OBJECTIVE, OBJECTIVE_METRICS, OBJECTIVE_MODE
from sr_core.data import SRData, SRPairs
from sr_core.evaluate import METRICS as VAL_METRICS
from sr_core.evaluate import evaluate, evaluate_images
from sr_core.fastpaths import FastPaths, FiniteWatch, backend_flags
from sr_core.losses import loss_fn
from sr_core.faults import inject, parse_fault
from sr_core.full_val import FullVal, score
from sr_core.models import build_model
from sr_core.photos import Photos, crop_draws, crop_lr, cut_crops, photo_views
from sr_core.pixels import to_float
from sr_core.trial_config import (STATUSES, TrialConfig, TrialResult, best_metrics, config_from_dict,
                                  lr_at)
from sr_core.trial_state import (RunningTrial, checkpoint_due, release, resume, save_checkpoint,
                                 save_ended)

__all__ = ["BEST_FILE", "CHECKPOINT_FILE", "ENDED_FILE", "FastPaths", "STATUSES", "TrialConfig",
           "TrialResult", "best_metrics", "config_from_dict", "evaluate", "lr_at", "train_trial"]

_NAN_CHECK_EVERY = 8  # steps between divergence checks

OnEpoch = Callable[[dict[str, float]], Any]


def default_device() -> torch.device:
    """CUDA when this process sees a GPU (Ray hides the GPUs a trial was not given), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_trial(config: TrialConfig, data: SRData, *, device: str | torch.device | None = None,
                on_epoch: OnEpoch | None = None, checkpoint_dir: str | os.PathLike | None = None,
                fast_paths: FastPaths | None = None, checkpoint_at: Collection[int] = (),
                checkpoint_policy: CheckpointPolicy | None = None, full_val: FullVal | None = None,
                objective: tuple[str, str] = (OBJECTIVE, OBJECTIVE_MODE)) -> TrialResult:
    """Train one config; return how it ended, its history, its best epoch and the best weights.

    `on_epoch(report)` is called after every epoch with the epoch's metrics plus the best so far
    (`best/val_mse`, ...) and, with a checkpoint folder, `checkpoint/epoch` (the newest epoch whose
    files are complete in it) and `checkpoint/write_seconds` (how long writing them took); a falsy
    return stops the trial as `pruned`. With `checkpoint_dir` the trial checkpoints every epoch and
    resumes from the folder's checkpoint when there is one. `fast_paths` switches the fast paths
    (default: `FastPaths()`, every one that measured faster, checkpoints written synchronously).
    `checkpoint_at` names epochs whose checkpoint is written whatever the policy says (a search that
    pauses trials at these epochs resumes them from there); `checkpoint_policy` replaces the one
    built from `FastPaths.checkpoint_budget`. `full_val` is scored every `full_val.every` epochs and at
    the last (full/psnr_y, ...: sr_core.full_val). `objective` (metric, "min" | "max") is what the best
    epoch and early stopping follow; a full/ metric changes them only at the epochs it is scored.
    """
    _check_objective(objective, full_val)
    device = torch.device(device) if device is not None else default_device()
    fast = fastpaths.for_trial(fast_paths if fast_paths is not None else FastPaths(), device, config.channels)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    trial = RunningTrial(config, device, fast, parse_fault(config.fault), time.perf_counter(),
                         writer=CheckpointWriter(ckpt_dir, fast.async_checkpoint) if ckpt_dir else None,
                         policy=checkpoint_policy or CheckpointPolicy(fast.checkpoint_budget),
                         checkpoint_at=frozenset(checkpoint_at), objective=tuple(objective), full_val=full_val)
    out_of_memory = None
    with backend_flags(fast, device):
        try:
            _set_up(trial, data)
            if ckpt_dir is not None:
                resume(trial, ckpt_dir)
            while trial.status is None:
                _run_epoch(trial, on_epoch)
        except torch.OutOfMemoryError as exc:
            out_of_memory = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        finally:
            if trial.writer is not None:
                trial.writer.wait()  # every checkpoint started is on disk before we return (or raise)
            if trial.fast.compile:  # a reused process (Ray's actor reuse) keeps no graphs of this trial
                compilation.release()
    if out_of_memory is not None:
        # Outside the except block: the traceback (and the activations its frames hold) is gone.
        release(trial)
        trial.end("oom", f"out of memory at epoch {trial.next_epoch}: {out_of_memory}"[:500])
        save_ended(trial)
    return trial.result()


def _check_objective(objective: tuple[str, str], full_val: FullVal | None) -> None:
    metric, mode = objective
    if metric not in OBJECTIVE_METRICS or mode not in ("min", "max"):
        raise ValueError(f"objective must be (one of {OBJECTIVE_METRICS}, 'min' or 'max'), got {objective=}")
    if metric in FULL_METRICS and full_val is None:
        raise ValueError(f"objective {metric} is scored on full-size images: pass full_val")


def _set_up(trial: RunningTrial, data: SRData) -> None:
    """Model, optimizer and the data on the device (each of which can run out of memory)."""
    config, device = trial.config, trial.device
    # epoch_samples 0: the whole train set (random crops: as many as the fixed patches the photos hold);
    # above it, an epoch goes round the set more than once
    trial.per_epoch = config.epoch_samples or len(data.train)
    trial.steps_per_epoch = math.ceil(trial.per_epoch / config.batch_size)
    fast = trial.fast = compilation.resolve(trial.fast, device, config, trial.per_epoch)
    # Seed only what this trial owns: init under a forked global RNG (callers' RNG untouched), and a
    # private generator for shuffling and augmentation whose state goes into every checkpoint.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(*config.net)
    inject(trial.fault, "to_device", 0)
    layout = torch.channels_last if fast.channels_last else torch.preserve_format
    trial.model = model.to(device, memory_format=layout)
    trial.forward = compilation.compile_model(trial.model, fast.compile)
    trial.loss = loss_fn(config.loss)
    trial.clock = compilation.CompileClock(device if fast.compile else None)  # None: nothing to time
    adam_options = {"fused": True} if fast.fused_adam else {}
    trial.optimizer = torch.optim.Adam(trial.model.parameters(), lr=config.lr, **adam_options)
    trial.amp_dtype = fastpaths.amp_dtype(device, fast.amp)  # asked once: the step loop reads it often
    trial.scaler = torch.amp.GradScaler(device.type, enabled=trial.amp_dtype == torch.float16)
    trial.gen = make_generator(device if fast.device_rng else torch.device("cpu"), config.seed)
    # The whole train set sits on the device as uint8 (7000 images = 350 MB), and the val set too:
    # no loader, no decoding, no copy per batch.
    if isinstance(data.train, Photos):  # random crops: the full-size photos, cut each step (sr_core.photos)
        trial.photos = data.train.to(device)
        trial.photo_views = photo_views(trial.photos)
    else:
        trial.train_lr, trial.train_hr = data.train.lr.to(device), data.train.hr.to(device)
    trial.val = SRPairs(data.val.lr.to(device), data.val.hr.to(device), data.val.names)


def _run_epoch(trial: RunningTrial, on_epoch: OnEpoch | None) -> None:
    """Train and evaluate one epoch, keep the best, checkpoint, report; end the trial when it must."""
    epoch, config, fast = trial.next_epoch, trial.config, trial.fast
    t0 = time.perf_counter()
    train_mse = _train_epoch(trial, epoch)
    train_seconds = time.perf_counter() - t0
    with compilation.eager():  # compiled blocks too: one graph per training shape, none for eval
        val_metrics, images = evaluate_images(trial.model, trial.val, trial.device, trial.amp_dtype, trial.fault,
                                              epoch, batch_size=fast.eval_batch, channels_last=fast.channels_last)
    # A perfect image has PSNR inf: that is not a divergence. A non-finite MSE is.
    if not (math.isfinite(train_mse) and math.isfinite(val_metrics["val/mse"])):
        which = "train" if not math.isfinite(train_mse) else "val"
        trial.end("diverged", f"non-finite {which} MSE at epoch {epoch}")
        save_ended(trial)
        return
    full_metrics, full_images = _full_val_epoch(trial, epoch)
    report = {"epoch": epoch, "train/mse": train_mse, **val_metrics, **full_metrics,
              "lr": lr_at((epoch - 1) * trial.steps_per_epoch, trial.total_steps, config),
              "epoch_seconds": time.perf_counter() - t0, "images_per_s": trial.per_epoch / train_seconds}
    trial.history.append(report)
    trial.epoch_images.append({"val/mse": images["val/mse"]})  # every epoch's: bench curves keeps the MSE only
    trial.next_epoch = epoch + 1
    if _keep_best(trial, report):
        trial.best_images = {**images, **full_images}
    if epoch == config.epochs:
        trial.end("completed")
    elif trial.bad_epochs >= config.patience and trial.objective[0] in report:
        trial.end("early_stopped", f"{trial.objective[0]} did not improve for {config.patience} epochs")
    trial.policy.trained_for(report["epoch_seconds"])
    if not fast.async_checkpoint and checkpoint_due(trial):
        save_checkpoint(trial)  # before the report that announces it
    # The callback also sees the best epoch so far (best/val_mse, best/epoch, ...): a search that
    # stops this trial from outside still knows what it achieved.
    announced = trial.clock.report()  # {"compile_seconds": ...} once per compiled session
    if trial.writer is not None:
        trial.writer.wait()  # async: epoch-1's write, which had a whole epoch to finish
        announced["checkpoint/epoch"] = trial.writer.done_epoch
        announced["checkpoint/write_seconds"] = trial.writer.write_seconds
    t0 = time.perf_counter()
    if on_epoch is not None and not on_epoch({**report, **best_metrics(trial.best), **announced}) \
            and trial.status is None:
        trial.end("pruned", f"stopped by the search after epoch {epoch}")
    if announced.get("checkpoint/epoch", 0) > trial.policy.announced_epoch:  # the caller got a new one
        trial.policy.announced(announced["checkpoint/epoch"], time.perf_counter() - t0)
    if fast.async_checkpoint and checkpoint_due(trial):  # (after the report: its cost is known now)
        save_checkpoint(trial)  # written during the next epoch, announced by its report
    elif trial.status == "pruned":
        save_ended(trial)


def _full_val_epoch(trial: RunningTrial, epoch: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The full-size images' metrics and per-image values when this epoch scores them, else nothing.
    Whole images in exact tiles, in fp32 as `sr-search evaluate` runs them (sr_core.full_val)."""
    if trial.full_val is None or not trial.full_val.due(epoch, trial.config.epochs):
        return {}, {}
    with compilation.eager():
        return score(trial.model, trial.full_val)


def _train_epoch(trial: RunningTrial, epoch: int) -> float:
    """One pass over `per_epoch` shuffled, augmented samples; the mean train MSE (inf/nan if it blew up)."""
    trial.model.train()
    first_step = (epoch - 1) * trial.steps_per_epoch
    loss_sum = torch.zeros((), device=trial.device)  # of MSE, whatever the loss trained on
    watch = FiniteWatch(trial.device, _NAN_CHECK_EVERY, lagged=trial.fast.lagged_nan_check)
    poison = 1.0
    trial.clock.start()
    for i, (lr_img, hr_img) in enumerate(_batches(trial)):
        if i == 0 and inject(trial.fault, "train", epoch):
            poison = math.nan  # the injected NaN flows through the real divergence check
        lr = lr_at(first_step + i, trial.total_steps, trial.config)
        loss = _train_step(trial, lr_img, hr_img, lr, poison)
        trial.clock.step_done()
        loss_sum += loss * len(lr_img)
        if watch.diverged(loss_sum, i):
            break  # diverged: no point finishing the epoch
    return loss_sum.item() / trial.per_epoch  # sync point, once per epoch


def _batches(trial: RunningTrial):
    """The epoch's (lr, hr) float batches on the device: shuffled, and augmented when configured."""
    config, fast, b = trial.config, trial.fast, trial.config.batch_size
    if trial.photos is not None:
        yield from _crop_batches(trial)
        return
    n_train = len(trial.train_lr)
    if fast.device_rng:  # order and ops for the whole epoch, drawn on the device: no host round trip
        order, ops = epoch_draws(trial.gen, n_train, trial.per_epoch, config.augment, config.rgb_permute)
    else:  # the reference: drawn on the host, then a blocking host->device copy per batch
        order, ops = epoch_order(trial.gen, n_train, trial.per_epoch), None
    for i in range(trial.steps_per_epoch):
        idx = order[i * b:(i + 1) * b].to(trial.device)
        lr_u8, hr_u8 = trial.train_lr[idx], trial.train_hr[idx]
        if ops is not None:  # turn the uint8 pixels (4x fewer bytes than float), then convert
            lr_u8, hr_u8 = augment_batch(lr_u8, hr_u8, ops[i * b:(i + 1) * b], config.rgb_permute)
        lr_img, hr_img = to_float(lr_u8), to_float(hr_u8)
        if config.augment and not fast.device_rng:
            lr_img, hr_img = augment_batch_host(lr_img, hr_img, generator=trial.gen, rgb_permute=config.rgb_permute)
        if fast.channels_last:
            lr_img = lr_img.contiguous(memory_format=torch.channels_last)
        yield lr_img, hr_img


def _crop_batches(trial: RunningTrial):
    """Random crops: the epoch's positions and ops drawn at once from the trial's generator (read to the
    host once, an epoch's one wait), then per batch the HR crops cut and their LR made on the device."""
    config, b = trial.config, trial.config.batch_size
    photo, top, left, ops = crop_draws(trial.gen, trial.photos, trial.per_epoch, config.augment, config.rgb_permute)
    photo, top, left = photo.tolist(), top.tolist(), left.tolist()
    if ops is not None:
        ops = ops.to(trial.device)
    for i in range(trial.steps_per_epoch):
        part = slice(i * b, (i + 1) * b)
        hr_u8 = cut_crops(trial.photo_views, photo[part], top[part], left[part],
                          None if ops is None else ops[part], config.rgb_permute)
        lr_img, hr_img = to_float(crop_lr(hr_u8)), to_float(hr_u8)
        if trial.fast.channels_last:
            lr_img = lr_img.contiguous(memory_format=torch.channels_last)
        yield lr_img, hr_img


def _train_step(trial: RunningTrial, lr_img: torch.Tensor, hr_img: torch.Tensor, lr: float,
                poison: float) -> torch.Tensor:
    """Forward, backward, clip, Adam; the batch's MSE as a device scalar. Nothing here waits for the GPU
    unless a fast path is off (plain Adam under a GradScaler reads its inf check on the host)."""
    optimizer, scaler = trial.optimizer, trial.scaler
    for group in optimizer.param_groups:
        group["lr"] = lr  # a Python float: reaches the kernels as an argument, no copy
    if trial.fast.compile:
        torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs may reuse last step's outputs now
    with torch.autocast(trial.device.type, dtype=trial.amp_dtype, enabled=trial.amp_dtype is not None):
        pred = trial.forward(lr_img).float()
        loss = trial.loss(pred, hr_img) * poison
    mse = loss if trial.config.loss == "mse" else F.mse_loss(pred.detach(), hr_img) * poison
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(trial.model.parameters(), trial.config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return mse.detach()


def _keep_best(trial: RunningTrial, report: dict[str, float]) -> bool:
    """Track the best epoch by the objective; True when this epoch is the new best. An epoch that
    did not score the objective (a full/ metric between its epochs) changes nothing; `bad_epochs`
    counts the epochs since the best one, as of the last epoch that scored it."""
    metric, mode = trial.objective
    if metric not in report:
        return False
    value = report[metric]
    if trial.best and not (value < trial.best[metric] if mode == "min" else value > trial.best[metric]):
        trial.bad_epochs = report["epoch"] - trial.best["epoch"]
        return False
    trial.best = {k: report[k] for k in (*VAL_METRICS, *FULL_METRICS, "train/mse", "epoch") if k in report}
    # A copy on the device (no sync, no host round trip); the host copy is made once, at the end.
    trial.best_weights = {k: v.detach().clone() for k, v in trial.model.state_dict().items()}
    trial.best_unsaved = True
    trial.bad_epochs = 0
    return True


