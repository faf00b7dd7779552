"""The trainer's fast paths: one frozen dataclass of switches and the small helpers behind them.

Each switch is measured on and off by `sr-search bench train --ablation` (figures in BENCHMARKS.md).
`FastPaths.reference()` switches every one off: that is the plain trainer, and with it `train_trial`
gives bit for bit what it gave before the fast paths existed (a test pins this).
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import torch

# "" eager; "auto" picks per trial; "regional" compiles each residual block; the rest are torch.compile
# modes for the whole net (sr_core.compilation).
COMPILE_MODES = ("", "auto", "regional", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class FastPaths:
    """Switches for `train_trial(..., fast_paths=...)`. CUDA-only paths are no-ops on other devices."""

    # NHWC activations: cuDNN's tensor-core convolutions work in NHWC, so NCHW costs a transpose
    # around every conv. On CPU, oneDNN prefers NHWC too.
    channels_last: bool = True
    # CUDA: fp32 matmuls and convs on tensor cores (TF32). Under bf16 autocast little stays fp32,
    # so this matters most with amp off.
    tf32: bool = True
    # CUDA: time every conv algorithm once per shape and keep the fastest (our shapes never change).
    cudnn_benchmark: bool = True
    # One fused kernel for the whole Adam update instead of a loop over parameters; with a
    # GradScaler it also takes the inf check on the device, where plain Adam syncs every step.
    fused_adam: bool = True
    # Sample order and augmentation drawn on the device at the start of the epoch, each batch one
    # gather (sr_core.augment). Off: drawn on the host, a blocking host->device copy per batch.
    device_rng: bool = True
    # Divergence check without stalling: the finite flag is copied to the host behind the queued
    # work and read once it has landed. Off: a blocking check every 8 steps.
    lagged_nan_check: bool = True
    # CUDA: autocast to bf16 where the GPU has it natively, else fp16 with a GradScaler. Off: fp32.
    amp: bool = True
    # Validation images per forward pass (under inference_mode). The reference uses 64.
    eval_batch: int = 256
    # "" trains eagerly; otherwise how the training forward and backward are compiled. "auto": CUDA
    # graphs ("reduce-overhead") on CUDA for launch-bound trials long enough to win back the compile
    # (measured 2.7-3.4x at b8 c64 on an H100), eager everywhere else (sr_core.compilation).
    compile: str = "auto"
    # Write epoch N's checkpoint in a background thread during epoch N+1 and announce it with epoch
    # N+1's report (`checkpoint/epoch`). Off: written before the report of its own epoch. The caller
    # must expect the lag, so it is opt-in (see sr_core.checkpoint).
    async_checkpoint: bool = False
    # Checkpoints may cost the training thread at most this fraction of the training time: a costly
    # one (big nets) is then written every few epochs instead of every epoch (sr_core.checkpoint.
    # CheckpointPolicy). 0 writes every epoch.
    checkpoint_budget: float = 0.02

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {self.compile=}")
        if not 0 <= self.checkpoint_budget < 1:
            raise ValueError(f"checkpoint_budget must be in [0, 1), got {self.checkpoint_budget=}")
        if not isinstance(self.eval_batch, int) or self.eval_batch < 1:
            raise ValueError(f"eval_batch must be a positive int, got {self.eval_batch=}")

    @classmethod
    def reference(cls) -> FastPaths:
        """Every fast path off: the plain trainer."""
        return cls(**{f.name: False for f in fields(cls) if f.type == "bool"}, eval_batch=64, compile="")

    def without(self, name: str) -> FastPaths:
        """This set with one boolean switch off (for ablations)."""
        return replace(self, **{name: False})

    @classmethod
    def switches(cls) -> tuple[str, ...]:
        """The names of the on/off fast paths."""
        return tuple(f.name for f in fields(cls) if f.type == "bool")


def for_trial(fast: FastPaths, device: torch.device, channels: int) -> FastPaths:
    """The switches as one trial uses them. channels_last only where NHWC pays: on CPU, and on CUDA
    when the width is a multiple of 8. Otherwise cuDNN pads every NHWC activation to the next multiple
    of 8 (H100, residual b24 c612: nhwcAddPaddingKernel took 16% of the GPU time, and the trial ran
    at 225 images/s without channels_last against 212 with it; BENCHMARKS.md)."""
    if fast.channels_last and device.type == "cuda" and channels % 8:
        return replace(fast, channels_last=False)
    return fast


def native_bf16() -> bool:
    """True when the current CUDA GPU computes bf16 natively (is_bf16_supported() also counts emulation)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch from before the argument: native bf16 starts with Ampere
        return torch.cuda.get_device_capability()[0] >= 8


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """bf16 where native, else fp16 (with a GradScaler), on CUDA; None (fp32) elsewhere or when off."""
    if device.type != "cuda" or not enabled:
        return None  # on CPU, bf16 autocast is slower and less accurate than fp32
    return torch.bfloat16 if native_bf16() else torch.float16


@contextlib.contextmanager
def backend_flags(fast: FastPaths, device: torch.device) -> Iterator[None]:
    """TF32 and cudnn.benchmark for the duration of a trial. They are process-wide switches, so the
    caller's values come back on exit. Off means torch's defaults are left alone.

    Only the long-standing setters are used (cudnn.allow_tf32 sets cuDNN's conv and RNN flags
    together, set_float32_matmul_precision the matmul one): torch >= 2.9 raises when its legacy and
    new TF32 APIs disagree. A flag torch refuses is a missed speed-up, not a failed trial: warn."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.allow_tf32, torch.get_float32_matmul_precision())
    set_flags(cudnn_benchmark=fast.cudnn_benchmark or saved[0], cudnn_tf32=fast.tf32 or saved[1],
               matmul_precision="high" if fast.tf32 else saved[2])
    try:
        yield
    finally:
        set_flags(cudnn_benchmark=saved[0], cudnn_tf32=saved[1], matmul_precision=saved[2])


def set_flags(cudnn_benchmark: bool, cudnn_tf32: bool, matmul_precision: str) -> None:
    """Set cudnn.benchmark, cuDNN's TF32 and the fp32 matmul precision (warns where torch refuses)."""
    cudnn = torch.backends.cudnn
    try:
        if cudnn.benchmark != cudnn_benchmark:
            cudnn.benchmark = cudnn_benchmark
        if cudnn.allow_tf32 != cudnn_tf32:
            cudnn.allow_tf32 = cudnn_tf32
        if torch.get_float32_matmul_precision() != matmul_precision:
            torch.set_float32_matmul_precision(matmul_precision)
    except RuntimeError as exc:
        warnings.warn(f"could not set the TF32/cudnn.benchmark flags ({exc}); training without them")


class FiniteWatch:
    """Has a running device loss sum gone non-finite? Asked every step, answered without stalling.

    Lagged (on CUDA): every `every` steps the flag `isfinite(loss_sum)` is copied into pinned host
    memory behind the queued work; later steps read it once the copy has landed (event.query() never
    blocks), so the host stays ahead of the GPU. Divergence is then seen a few steps late, which only
    wastes those steps. Not lagged: `bool(tensor)` every `every` steps, a CPU-GPU sync point. On CPU
    both are the same immediate check (nothing runs ahead there).
    """

    def __init__(self, device: torch.device, every: int, lagged: bool) -> None:
        self.every = every
        self.lagged = lagged and device.type == "cuda"
        self._flag = torch.ones((), dtype=torch.bool, pin_memory=True) if self.lagged else None
        self._landed: torch.cuda.Event | None = None

    def diverged(self, loss_sum: torch.Tensor, step: int) -> bool:
        due = (step + 1) % self.every == 0
        if not self.lagged:
            return due and not bool(torch.isfinite(loss_sum))
        if self._landed is not None and self._landed.query():
            self._landed = None
            if not bool(self._flag):  # a host tensor: reading it waits for nothing
                return True
        if due and self._landed is None:
            self._flag.copy_(torch.isfinite(loss_sum), non_blocking=True)
            self._landed = torch.cuda.Event()
            self._landed.record()
        return False
