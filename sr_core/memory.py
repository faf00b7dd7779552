"""Peak device memory of one training trial, predicted per config; whether it fits a GPU; what share
of a GPU a trial gets so that small ones pack several to a device.

`predict_memory` predicts what `torch.cuda.max_memory_allocated()` shows over a trial that
sr_core.train.train_trial trains eagerly, in its steady epochs (from the second on, once the best
weights are held). It is measured, not guessed: sr_core.memory_trace runs the trainer's own step,
evaluation and best-weights copy on the real network, on CPU, and accounts every storage and every
tensor saved for backward. Sizes are polynomials in the width c, the batch b and the eval batch e
(`MONOMIALS`), so five tiny traces (`POINTS`, c <= 5) give exact integer coefficients for any width
and batch: a fit costs 1-2 s at 24 blocks, once per (arch, blocks, precision, layout), and each
prediction after it microseconds. A fit that is not exact raises instead of predicting.

The parts (`MemoryPrediction`, bytes):
  params, grads, adam   fp32 weights; their gradients, held from one step's backward to the next
                        step's zero_grad (so through the next forward and the evaluation); Adam's
                        two moments and fused Adam's per-tensor step counts
  best_copy             the trainer keeps the best epoch's weights on the device
  weight_casts          autocast's half-precision copy of every weight, saved for backward
  saved_activations     the rest of what autograd saves for backward at this batch
  train_transient       on top of all that at the training step's peak: the batch, short-lived forward
                        tensors, the backward's gradient buffers and the new gradients forming
  eval_transient        on top of the held state at the evaluation's peak: inference activations at
                        the eval batch and the fp64 metrics
  data                  the uint8 train and val sets (both live on the device) and augmentation maps
  workspace             the stated margin for what op-level accounting cannot see (below)
  total_bytes           the largest phase (train, eval, or the moment a new best copy is made while
                        the old one is held) + data + workspace

Not modelled, and measured instead by search.bench.gpu_targets: compiled graphs (AOTAutograd's
partitioner picks its own saved set), CUDA graphs (their pool holds a graph's tensors between
replays), and the first epoch, which can peak higher while cudnn.benchmark tries algorithms, each
with its own workspace.
"""
from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from sr_core.fastpaths import FastPaths, for_trial
from sr_core.gpu_busy import compute_share
from sr_core.memory_trace import AUTOCAST, PHASES, trace_trial
from sr_core.archs import as_params
from sr_core.models import MODELS, check_model_args
from sr_core.sizes import HR_SIZE, LR_SIZE

GIB = 2 ** 30
IMAGE_BYTES = 3 * (LR_SIZE ** 2 + HR_SIZE ** 2)  # one uint8 LR/HR pair
AUGMENT_MAPS_BYTES = 8 * (LR_SIZE ** 2 + HR_SIZE ** 2) * 8  # sr_core.augment's int64 maps, per device
# Inside max_memory_allocated but invisible at the op level, because libraries allocate it from
# PyTorch's caching allocator inside one op: cuBLAS's workspace (32 MiB per handle on Hopper; SSIM's
# filter is a matmul) and the workspace of the algorithm cuDNN runs for each conv (the implicit-GEMM
# ones usual for 3x3 convs need little, FFT/Winograd ones scale with the operands). The allocator's
# rounding of each block to 512 bytes adds under 1 MB (a few hundred tensors). Not measured on a GPU
# yet: set these from the calibration rows of `python -m search.bench.memory` (measured / predicted).
WORKSPACE_BYTES = 64 * 2 ** 20
WORKSPACE_FRACTION = 0.05
# Outside max_memory_allocated, allowed for when deciding what fits: the CUDA context with the cuDNN
# and cuBLAS handles of one process (~0.5-0.8 GiB with lazy loading; rounded up), paid per process,
# hence per packed trial; and what the caching allocator reserves beyond what it hands out (cached
# free blocks, 2 MiB-rounded segments, fragmentation; 5-15% is typical of a steady training loop).
CUDA_CONTEXT_BYTES = 1 * GIB
ALLOCATOR_RESERVE_FRACTION = 0.10
FRACTION_STEPS = (1, 2, 4, 8)  # trials per GPU: Ray's fractional GPUs are 1/k of one

MONOMIALS = ("1", "c", "c^2", "b", "bc", "e", "ec")
_COLUMNS = {"train": (0, 1, 2, 3, 4), "eval": (0, 1, 2, 5, 6), "best": (0, 1, 2)}
POINTS = ((2, 1, 1), (3, 1, 2), (5, 1, 1), (2, 2, 2), (3, 2, 1))  # (c, b, e): both 5x5 systems full rank


def _monomials(c: int, b: int, e: int) -> np.ndarray:
    return np.array([1, c, c * c, b, b * c, e, e * c], dtype=np.int64)


def _solve(values: np.ndarray, columns: tuple[int, ...]) -> np.ndarray:
    """Integer coefficients [n, 7] of n quantities measured at POINTS ([5, n]); exact or RuntimeError."""
    a = np.stack([_monomials(*p) for p in POINTS])[:, columns]
    coef = np.rint(np.linalg.lstsq(a.astype(float), values.astype(float), rcond=None)[0]).astype(np.int64)
    if not np.array_equal(a @ coef, values):
        raise RuntimeError("memory model: traced sizes are not polynomials in (channels, batch, eval batch) "
                           f"over {[MONOMIALS[i] for i in columns]}; the trainer's sequence changed shape")
    full = np.zeros((values.shape[1], len(MONOMIALS)), dtype=np.int64)
    full[:, columns] = coef.T
    return full


@dataclass(frozen=True)
class MemoryFit:
    """Coefficients over MONOMIALS of the live bytes after each traced allocation, and of the totals."""
    live: dict[str, np.ndarray]  # phase -> [allocations in it, 7]
    held: dict[str, np.ndarray]  # params, grads, adam, best -> [7]
    saved: np.ndarray  # [7]: 1, c, c^2 are the weight casts; b, bc the activations

    def peaks(self, x: np.ndarray) -> dict[str, int]:
        """The largest live bytes of each phase at monomials x."""
        return {phase: int((coef @ x).max()) for phase, coef in self.live.items()}


def memory_fit(arch: str, blocks: int, precision: str = "bf16", channels_last: bool = False) -> MemoryFit:
    """Five traces of (arch, blocks) at POINTS, solved for exact coefficients (cached per process)."""
    return _memory_fit(arch, blocks, precision, bool(channels_last))


@functools.lru_cache(maxsize=64)
def _memory_fit(arch: str, blocks: int, precision: str, channels_last: bool) -> MemoryFit:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds stalls (20 s, not 1.4 s, on a busy 2-core box)
    try:
        traces = [trace_trial(arch, blocks, c, b, e, precision, channels_last) for c, b, e in POINTS]
    finally:
        torch.set_num_threads(threads)
    phases = traces[0].phases
    if any(t.phases != phases for t in traces):
        raise RuntimeError(f"memory model: {arch} b{blocks} allocates differently at different widths")
    live = np.array([t.live for t in traces], dtype=np.int64)
    fitted = {phase: _solve(live[:, [i for i, p in enumerate(phases) if p == phase]], _COLUMNS[phase])
              for phase in PHASES}
    held = {k: _solve(np.array([[t.held[k]] for t in traces]), _COLUMNS["best"])[0] for k in traces[0].held}
    saved = _solve(np.array([[t.saved] for t in traces]), _COLUMNS["train"])[0]
    return MemoryFit(fitted, held, saved)


@dataclass(frozen=True)
class MemoryPrediction:
    """A trial's predicted peak of torch.cuda.max_memory_allocated() (bytes), with its parts."""
    arch: str
    blocks: int
    channels: int
    batch_size: int
    params: int
    grads: int
    adam: int
    best_copy: int
    weight_casts: int
    saved_activations: int
    train_transient: int
    eval_transient: int
    data: int
    workspace: int
    peak_phase: str
    total_bytes: int
    params_: tuple = ()  # a user arch's other parameters (sr_core.archs)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


def predict_memory(arch: str, blocks: int, channels: int, batch_size: int, *, train_images: int,
                   val_images: int, eval_batch: int = 256, precision: str = "bf16",
                   channels_last: bool = False, params=()) -> MemoryPrediction:
    """Predicted peak device memory of one trial (see the module docstring); the images are those the
    trainer holds on the device (the whole train and val sets). A user's arch (sr_core.archs, with its
    `params`) is no polynomial in a width we know: its own step is traced at this very shape, once
    (the weight casts are then counted with the saved activations)."""
    _check(arch, blocks, channels, batch_size, train_images, val_images, eval_batch, precision, params)
    e = min(eval_batch, val_images)
    if arch not in MODELS:
        trace = _traced(arch, blocks, channels, batch_size, e, precision, bool(channels_last), as_params(params))
        peaks = {phase: max(n for p, n in zip(trace.phases, trace.live) if p == phase) for phase in PHASES}
        held, casts, activations = dict(trace.held), 0, trace.saved
    else:
        fit = memory_fit(arch, blocks, precision, channels_last)
        x = _monomials(channels, batch_size, e)
        held = {k: int(v @ x) for k, v in fit.held.items()}
        casts, activations = int(fit.saved[:3] @ x[:3]), int(fit.saved[3:] @ x[3:])
        peaks = fit.peaks(x)
    held_total = sum(held.values())
    phase = max(peaks, key=peaks.get)
    workspace = WORKSPACE_BYTES + int(WORKSPACE_FRACTION * peaks[phase])
    data = (train_images + val_images) * IMAGE_BYTES + AUGMENT_MAPS_BYTES
    return MemoryPrediction(
        arch, blocks, channels, batch_size, held["params"], held["grads"], held["adam"], held["best"], casts,
        activations, peaks["train"] - held_total - casts - activations, peaks["eval"] - held_total, data,
        workspace, phase, peaks[phase] + data + workspace, as_params(params))


@functools.lru_cache(maxsize=64)
def _traced(arch: str, blocks: int, channels: int, batch_size: int, eval_batch: int, precision: str,
            channels_last: bool, params: tuple):
    return trace_trial(arch, blocks, channels, batch_size, eval_batch, precision, channels_last, params)


def predict_trial(config, fast: FastPaths | None = None, *, train_images: int, val_images: int,
                  precision: str = "bf16") -> MemoryPrediction:
    """The peak of `train_trial(config, data, fast_paths=fast)` on a CUDA device (`config`: a TrialConfig):
    the layout and eval batch that trial uses; `precision` is the GPU's ("fp16" without native bf16)."""
    fast = fast if fast is not None else FastPaths()
    layout = for_trial(fast, torch.device("cuda"), config.channels).channels_last
    return predict_memory(config.arch, config.blocks, config.channels, config.batch_size, train_images=train_images,
                          val_images=val_images, eval_batch=fast.eval_batch,
                          precision=precision if fast.amp else "fp32", channels_last=layout,
                          params=config.net[3])


def _check(arch, blocks, channels, batch_size, train_images, val_images, eval_batch, precision, params) -> None:
    check_model_args(arch, blocks, channels, params)
    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {tuple(AUTOCAST)}, got {precision=}")
    for name, value, low in [("batch_size", batch_size, 1), ("train_images", train_images, 1), ("val_images", val_images, 1),
                             ("eval_batch", eval_batch, 1)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {name}={value!r}")


def device_need(prediction: MemoryPrediction) -> int:
    """Device bytes one trial's process needs: its peak, the allocator's reserve, a CUDA context."""
    return int(prediction.total_bytes * (1 + ALLOCATOR_RESERVE_FRACTION)) + CUDA_CONTEXT_BYTES


def fits(prediction: MemoryPrediction, device_bytes: int) -> tuple[bool, str]:
    """Whether one trial fits a device of `device_bytes` (torch.cuda.get_device_properties().total_memory)."""
    if device_bytes <= 0:
        raise ValueError(f"device_bytes must be > 0, got {device_bytes=}")
    need = device_need(prediction)
    verdict = "fits" if need <= device_bytes else "does not fit"
    return need <= device_bytes, (
        f"{prediction.arch} b{prediction.blocks} c{prediction.channels} batch {prediction.batch_size}: "
        f"predicted peak {prediction.total_gib:.2f} GiB + {ALLOCATOR_RESERVE_FRACTION:.0%} allocator reserve + "
        f"{CUDA_CONTEXT_BYTES / GIB:.2f} GiB CUDA context = {need / GIB:.2f} GiB, {verdict} in "
        f"{device_bytes / GIB:.2f} GiB ({prediction.peak_phase} sets the peak)")


def gpu_fraction(predicted_bytes: int, device_bytes: int, compute_share: float,
                 steps: Iterable[int] = FRACTION_STEPS) -> float:
    """The GPU fraction to give a trial: 1/k for the largest k in `steps` such that k trials' memory
    (each its predicted peak, the allocator's reserve and its own CUDA context) fits the device AND
    k * compute_share <= 1. Ray's fractional GPUs are bookkeeping: this keeps the sum of the packed
    trials' memory under the device's. A trial that alone keeps the GPU's compute busy (share 1)
    gains nothing from company, so it gets a whole GPU; so does one whose memory allows no second."""
    steps = sorted(set(steps), reverse=True)
    if not steps or any(not isinstance(k, int) or k < 1 for k in steps):
        raise ValueError(f"steps must be positive ints, got {steps=}")
    if device_bytes <= 0 or predicted_bytes < 0:
        raise ValueError(f"device_bytes must be > 0 and predicted_bytes >= 0, got {device_bytes=} {predicted_bytes=}")
    if not 0 < compute_share <= 1:
        raise ValueError(f"compute_share must be in (0, 1], got {compute_share=}")
    per_trial = int(predicted_bytes * (1 + ALLOCATOR_RESERVE_FRACTION)) + CUDA_CONTEXT_BYTES
    for k in steps:
        if k * per_trial <= device_bytes and k * compute_share <= 1 + 1e-9:
            return 1.0 / k
    return 1.0


def fraction_for(prediction: MemoryPrediction, device_bytes: int, cuda_graphs: bool = False) -> float:
    """`gpu_fraction` of one predicted trial, its compute share from sr_core.gpu_busy."""
    share = compute_share(prediction.arch, prediction.blocks, prediction.channels, prediction.batch_size,
                          cuda_graphs, prediction.params_)
    return gpu_fraction(prediction.total_bytes, device_bytes, share)


def compare_to_measured(pairs: Iterable[tuple[MemoryPrediction, int | None]], tolerance: float = 0.15) -> dict:
    """Calibration: predicted against measured peaks (bytes of max_memory_allocated from a GPU run).
    Rows carry `ratio` = measured / predicted; a measured None (no GPU) is listed, not judged."""
    rows = []
    for pred, measured in pairs:
        row = {"config": f"{pred.arch}_b{pred.blocks}_c{pred.channels}", "batch_size": pred.batch_size,
               "predicted_gib": pred.total_gib, "measured_gib": None if measured is None else measured / GIB,
               "peak_phase": pred.peak_phase}
        if measured is not None:
            row["ratio"] = measured / pred.total_bytes
            row["within_tolerance"] = abs(row["ratio"] - 1) <= tolerance
        rows.append(row)
    judged = [r for r in rows if "ratio" in r]
    summary = {"tolerance": tolerance, "judged": len(judged),
               "within_tolerance": sum(r["within_tolerance"] for r in judged)}
    if judged:
        ratios = [r["ratio"] for r in judged]
        summary.update(median_ratio=statistics.median(ratios), min_ratio=min(ratios), max_ratio=max(ratios))
    return {"rows": rows, **summary}
