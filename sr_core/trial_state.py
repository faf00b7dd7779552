"""A training trial's state while it runs, and what of it goes to disk: its checkpoint folder (through
sr_core.checkpoint), the resume from it, the record of how it ended, and the release of its device
memory. The loop that drives it is sr_core/train.py."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from sr_core import checkpoint, compilation
from sr_core.checkpoint import BEST_FILE, CHECKPOINT_FILE, CheckpointPolicy, CheckpointWriter
from sr_core.contract import OBJECTIVE, OBJECTIVE_MODE
from sr_core.data import SRPairs
from sr_core.fastpaths import FastPaths
from sr_core.faults import Fault
from sr_core.full_val import FullVal
from sr_core.photos import Photos
from sr_core.trial_config import TrialConfig, TrialResult


@dataclass
class RunningTrial:
    """Everything one trial holds while it trains (sr_core.train.train_trial is the only way in)."""
    config: TrialConfig
    device: torch.device
    fast: FastPaths
    fault: Fault | None
    started: float  # perf_counter at the start of this session
    writer: CheckpointWriter | None = None  # None: no checkpoint folder
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    checkpoint_at: frozenset[int] = frozenset()  # epochs always checkpointed (a search's rungs)
    # (metric, mode) the best epoch and early stopping follow: the study's objective
    objective: tuple[str, str] = (OBJECTIVE, OBJECTIVE_MODE)
    full_val: FullVal | None = None  # full-size images scored every few epochs (sr_core.full_val)
    amp_dtype: torch.dtype | None = None  # autocast dtype; None = fp32
    model: torch.nn.Module | None = None
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None  # the model, or its torch.compile
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # the config's (sr_core.losses)
    clock: compilation.CompileClock = field(default_factory=compilation.CompileClock)  # compile time
    optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    gen: torch.Generator | None = None
    train_lr: torch.Tensor | None = None
    train_hr: torch.Tensor | None = None
    photos: Photos | None = None  # random crops' train photos on the device (sr_core.photos), or None
    photo_views: list[torch.Tensor] = field(default_factory=list)  # each photo's [3, H, W] view
    val: SRPairs | None = None
    per_epoch: int = 0
    steps_per_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] | None = None  # on the device until the trial returns
    best_images: dict[str, list[float]] = field(default_factory=dict)  # each val image at the best epoch
    epoch_images: list[dict[str, list[float]]] = field(default_factory=list)  # each epoch of this session
    best_unsaved: bool = False  # best_weights changed since best.pt was last written
    bad_epochs: int = 0
    prior_seconds: float = 0.0  # wall time of earlier sessions of this trial (before a resume)
    next_epoch: int = 1
    status: str | None = None  # set when the trial ends
    reason: str = ""

    @property
    def rng(self) -> str:
        """Where the trial's random numbers are drawn: part of what a resume must match."""
        return f"device:{self.device.type}" if self.fast.device_rng else "host"

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def seconds(self) -> float:
        return self.prior_seconds + time.perf_counter() - self.started

    def end(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason

    def result(self) -> TrialResult:
        weights = None if self.best_weights is None else cpu_state(self.best_weights)
        return TrialResult(self.status or "completed", self.best, self.history, len(self.history),
                           self.seconds, weights, self.reason, self.best_images, self.epoch_images)




def resume(trial: RunningTrial, ckpt_dir: Path) -> None:
    """Continue from the folder's checkpoint; an ended trial is restored as ended (nothing to run)."""
    if (ckpt_dir / BEST_FILE).exists():
        best = checkpoint.load(ckpt_dir / BEST_FILE)
        trial.best_weights, trial.best_images = best["state_dict"], best.get(checkpoint.BEST_IMAGES, {})
    ended = checkpoint.read_ended(ckpt_dir)
    if ended is not None:
        _check_config(ended["config"], trial.config, ckpt_dir)
        trial.history, trial.best, trial.prior_seconds = ended["history"], ended["best"], ended["seconds"]
        trial.end(ended["status"], ended["reason"])
        trial.started = time.perf_counter()
        return
    if not (ckpt_dir / CHECKPOINT_FILE).exists():
        return
    state = checkpoint.load(ckpt_dir / CHECKPOINT_FILE)
    _check_config(state["config"], trial.config, ckpt_dir)
    if state.get("rng", "host") != trial.rng:
        raise ValueError(f"checkpoint in {ckpt_dir} drew its random numbers on {state.get('rng', 'host')}, "
                         f"this trial draws them on {trial.rng}: resume it with the same FastPaths.device_rng "
                         "on the same kind of device")
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    trial.scaler.load_state_dict(state["scaler"])
    trial.gen.set_state(state["generator"])
    trial.next_epoch, trial.history, trial.best = state["epoch"] + 1, state["history"], state["best"]
    trial.bad_epochs, trial.prior_seconds = state["bad_epochs"], state["seconds"]
    if trial.writer is not None:
        trial.writer.done_epoch = trial.policy.announced_epoch = state["epoch"]
    trial.started = time.perf_counter()


def _check_config(saved: dict, config: TrialConfig, ckpt_dir: Path) -> None:
    # a checkpoint from before arch_params existed is a built-in's, whose arch_params are empty
    if {"arch_params": {}, **saved} != dataclasses.asdict(config):
        raise ValueError(f"checkpoint in {ckpt_dir} belongs to another config: {saved}")


def cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def checkpoint_due(trial: RunningTrial) -> bool:
    """A checkpoint of the epoch just trained is due: the trial ended, the epoch is one that must be
    checkpointed, or the policy's budget allows one."""
    return trial.writer is not None and (trial.status is not None or trial.next_epoch - 1 in trial.checkpoint_at
                                         or trial.policy.due())


def save_checkpoint(trial: RunningTrial) -> None:
    """Hand this epoch's state to the writer (which writes now, or in the background)."""
    t0 = time.perf_counter()
    config = dataclasses.asdict(trial.config)
    state = {"config": config, "epoch": trial.next_epoch - 1, "rng": trial.rng,
             "model": trial.model.state_dict(), "optimizer": trial.optimizer.state_dict(),
             "scaler": trial.scaler.state_dict(), "generator": trial.gen.get_state(),
             "history": list(trial.history), "best": trial.best, "bad_epochs": trial.bad_epochs,
             "seconds": trial.seconds}
    trial.writer.save(trial.next_epoch - 1, state, best=_unsaved_best(trial),
                      ended=_ended_record(trial) if trial.status is not None else None)
    # Synchronous: the write itself. Background: the write overlaps training but slows it (it competes
    # for the host), so it is charged as if it blocked (the previous write's time; this one is running).
    trial.policy.wrote(max(time.perf_counter() - t0, trial.writer.write_seconds))


def _unsaved_best(trial: RunningTrial) -> dict | None:
    """best.pt's content when the best weights changed since it was last written, else None."""
    if not trial.best_unsaved:
        return None
    trial.best_unsaved = False
    return {"config": dataclasses.asdict(trial.config), "state_dict": trial.best_weights,
            checkpoint.BEST_IMAGES: trial.best_images}


def _ended_record(trial: RunningTrial) -> dict[str, Any]:
    return {"config": dataclasses.asdict(trial.config), "status": trial.status, "reason": trial.reason,
            "history": list(trial.history), "best": trial.best, "seconds": trial.seconds}


def save_ended(trial: RunningTrial) -> None:
    """Record how the trial ended, so a resume (or a retry) does not run it again."""
    if trial.writer is None:
        return
    trial.writer.wait()  # after any checkpoint still being written
    best = _unsaved_best(trial)  # a best epoch after the last checkpoint: its weights are not lost
    if best is not None:
        checkpoint.write_best(trial.writer.folder, best)
    checkpoint.write_ended(trial.writer.folder, _ended_record(trial))


def release(trial: RunningTrial) -> None:
    """Drop everything the trial holds on the device and give the memory back (after an OOM)."""
    if trial.best_weights is not None:
        trial.best_weights = cpu_state(trial.best_weights)  # a copy out needs no device memory
    trial.model = trial.forward = trial.optimizer = trial.scaler = None
    trial.train_lr = trial.train_hr = trial.val = trial.photos = None
    trial.photo_views = []
    if trial.device.type == "cuda":
        torch.cuda.empty_cache()
