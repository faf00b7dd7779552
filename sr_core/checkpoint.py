"""A trial's checkpoint files, and how they get written without stalling training.

Folder (each file written atomically):
    checkpoint.pt   everything an exact resume needs: model, Adam's state (step and both moments),
                    the GradScaler, the generator's state, history, best metrics, early-stopping count
    best.pt         the best epoch's weights and the network's shape (what `predict` loads), and
                    each val image's metrics at that epoch (`BEST_IMAGES`)
    ended.json      written when the trial ends; a resume of an ended trial runs nothing

What it costs. checkpoint.pt is 3x the weights in fp32 (weights plus Adam's two moments; none can go
for an exact resume), best.pt 1x: at residual b24 c612 (192M parameters) 2.3 GB, plus 0.77 GB in the
epochs that improve. Written synchronously, that is seconds of a ~25 s epoch. So, with `background=True`:

1. `HostSnapshot.take` copies every device tensor into pinned host buffers with non-blocking copies on
   the current stream. Stream order puts them after the epoch's last update and before the next
   epoch's first, so the host never waits; buffers are allocated once per trial and reused.
2. `CheckpointWriter.save` torch.saves that snapshot in one background thread, which first waits for
   the copies to land (torch.save releases the GIL while it writes tensor bytes).
3. At most one write is in flight: the next snapshot first waits for the previous write, which had a
   whole epoch to finish. A kill loses at most the epoch being trained plus the write in flight.

The trainer announces epoch N's files with epoch N+1's report (`checkpoint/epoch`), so nothing is
written while a report is being handled (a caller may copy the folder then).

How often (`CheckpointPolicy`). A checkpoint costs the training thread its write (synchronous) plus
whatever the caller does with the folder when it is announced (Tune copies it to the study's
storage). The policy keeps that cost under a fraction of the training time (`FastPaths.
checkpoint_budget`, 2%): the next checkpoint is due once the seconds trained since the last one are at
least the last one's cost / budget. One that cost under `CHEAP_S` is written every epoch (small
nets: a kill then loses at most the epoch in progress); at residual b24 c612 on 7000 images (a 3 GB
write of ~5 s on an H100 machine) every ~8th epoch. The epoch a trial ends on is always written.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sr_core.contract import BEST_WEIGHTS
from sr_core.files import atomic_path, write_text_atomic

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = BEST_WEIGHTS
ENDED_FILE = "ended.json"
BEST_IMAGES = "val_images"  # best.pt's key: {"val/mse": [per image], "val/psnr": [...]} at the best epoch


CHEAP_S = 0.5  # a checkpoint costing less than this is written every epoch


@dataclass
class CheckpointPolicy:
    """When the next checkpoint is due: its cost stays under `budget` of the training time."""
    budget: float = 0.02
    cost: float = 0.0  # the last checkpoint's cost to the training thread (write + announcing it)
    trained: float = 0.0  # training seconds since the last checkpoint
    announced_epoch: int = 0  # the newest checkpoint the caller was told about

    def trained_for(self, seconds: float) -> None:
        self.trained += seconds

    def due(self) -> bool:
        return self.cost < CHEAP_S or self.budget <= 0 or self.trained * self.budget >= self.cost

    def wrote(self, seconds: float) -> None:
        """A checkpoint was written (or handed to the background thread) costing `seconds`."""
        self.cost, self.trained = seconds, 0.0

    def announced(self, epoch: int, seconds: float) -> None:
        """The caller spent `seconds` handling the report that announced checkpoint `epoch` (new)."""
        self.announced_epoch = epoch
        self.cost += seconds


class HostSnapshot:
    """Host copies of a nested state (dicts, lists, tuples of tensors and plain values).

    CUDA tensors land in pinned buffers reused from one `take` to the next (keyed by their place in
    the state); CPU tensors are cloned (the live ones keep changing while a write runs).
    """

    def __init__(self) -> None:
        self._pinned: dict[str, torch.Tensor] = {}

    def take(self, state: Any) -> tuple[Any, torch.cuda.Event | None]:
        """(the copy, an event that fires when every device->host copy has landed, or None)."""
        copied_from_cuda = []
        snapshot = self._copy(state, "", copied_from_cuda)
        if not copied_from_cuda:
            return snapshot, None
        event = torch.cuda.Event(blocking=True)  # the writer thread sleeps on it instead of spinning
        event.record()  # on the current stream, after every copy queued above
        return snapshot, event

    def _copy(self, value: Any, key: str, copied_from_cuda: list) -> Any:
        if isinstance(value, torch.Tensor):
            if value.device.type != "cuda":
                return value.detach().clone()
            buf = self._pinned.get(key)
            if buf is None or (buf.shape, buf.stride(), buf.dtype) != (value.shape, value.stride(), value.dtype):
                # Same strides as the source (channels_last weights stay so): the copy is one memcpy.
                buf = self._pinned[key] = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype,
                                                              pin_memory=True)
            buf.copy_(value.detach(), non_blocking=True)
            copied_from_cuda.append(key)
            return buf
        if isinstance(value, dict):
            out = type(value)((k, self._copy(v, f"{key}/{k}", copied_from_cuda)) for k, v in value.items())
            if hasattr(value, "_metadata"):  # a state_dict's per-module versions, as torch.save keeps them
                out._metadata = value._metadata
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(self._copy(v, f"{key}/{i}", copied_from_cuda) for i, v in enumerate(value))
        return value  # python numbers, strings, None: immutable or rebuilt every epoch


@dataclass
class CheckpointWriter:
    """Writes a trial's checkpoint files into `folder`, in the caller's thread or one background thread."""
    folder: Path
    background: bool
    done_epoch: int = 0  # the newest epoch whose files are complete on disk
    write_seconds: float = 0.0  # how long the last finished write took
    _host: HostSnapshot = field(default_factory=HostSnapshot, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)

    def save(self, epoch: int, state: dict[str, Any], *, best: dict | None = None,
             ended: dict[str, Any] | None = None) -> None:
        """Write checkpoint.pt from `state`; best.pt from `best` ({"config", "state_dict"}) when given
        (the best weights changed since the last write); ended.json from `ended` when the trial ended."""
        self.wait()  # one write in flight at most; its snapshot buffers are about to be reused
        if not self.background:
            self._write(epoch, state, None if best is None else _on_cpu(best), ended, None)
            self._raise()
            return
        both, ready = self._host.take({"state": state, "best": best})
        state, best = both["state"], both["best"]
        self._thread = threading.Thread(target=self._write, args=(epoch, state, best, ended, ready),
                                        name="sr-checkpoint", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Return once every write started so far is on disk; re-raise a write's failure."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing the checkpoint into {self.folder} failed: {error}") from error

    def _write(self, epoch: int, state: dict, best: dict | None, ended: dict | None,
               ready: torch.cuda.Event | None) -> None:
        t0 = time.perf_counter()
        try:
            if ready is not None:
                ready.synchronize()  # blocks this thread only, until the copies have landed
            self.folder.mkdir(parents=True, exist_ok=True)
            # best.pt first, checkpoint.pt second: a kill in between leaves the previous checkpoint,
            # whose resume recomputes this same epoch and rewrites the same best.pt.
            if best is not None:
                with atomic_path(self.folder / BEST_FILE) as tmp:
                    torch.save(best, tmp)
            with atomic_path(self.folder / CHECKPOINT_FILE) as tmp:
                torch.save(state, tmp)
            if ended is not None:
                write_ended(self.folder, ended)
            self.done_epoch = epoch
        except BaseException as exc:  # surfaced in the training thread by the next save() or wait()
            self._error = exc
        self.write_seconds = time.perf_counter() - t0


def _on_cpu(best: dict) -> dict:
    return {**best, "state_dict": {k: v.detach().cpu() for k, v in best["state_dict"].items()}}


def write_best(folder: Path, best: dict) -> None:
    """best.pt alone ({"config", "state_dict", BEST_IMAGES}), e.g. when a trial ends between checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / BEST_FILE) as tmp:
        torch.save(_on_cpu(best), tmp)


def write_ended(folder: Path, ended: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / ENDED_FILE, json.dumps(ended))


def read_ended(folder: Path) -> dict[str, Any] | None:
    path = folder / ENDED_FILE
    return json.loads(path.read_text()) if path.exists() else None


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
