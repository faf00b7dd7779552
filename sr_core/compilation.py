"""torch.compile in the trainer: which mode a trial trains with, how its net is compiled, the node's
compile cache, and what compiling cost.

Modes (`FastPaths.compile`): "" trains eagerly; "regional" compiles each ResidualBlock (PyTorch's
regional compilation recipe: the blocks run identical code, so one compiled graph serves all of them
and compile time does not grow with depth); "default", "reduce-overhead" (adds CUDA graphs),
"max-autotune" and "max-autotune-no-cudagraphs" compile the whole net in that torch.compile mode.

"auto" (the default) decides per trial, from what was measured (BENCHMARKS.md):
- CPU: eager. torch.compile gave no speed-up on the development CPU (FIELD-NOTES) and costs 4-18 s.
- CUDA, launch-bound steps in a trial long enough to win back the compile (`gpu_busy.
  cuda_graphs_pay`): CUDA graphs, "reduce-overhead". Measured on an H100 at residual b8 c64: 4004-
  5044 images/s against 1492 eager (2.7-3.4x) after 15-17 s of compiling.
- CUDA otherwise: eager (`AUTO_COMPUTE_BOUND`). Regional compile of the big nets would fuse the bf16
  casts (10% of b24 c612's GPU time) and the elementwise ops (~12%) but is NOT measured yet;
  `python -m search.bench.gpu_targets` measures it, and this constant is the line to change if it pays.

Safe when one process trains trial after trial (Ray's actor reuse), resumes, or retries: every compiled
trial starts from `torch.compiler.reset()` (no guards, recompile counts or CUDA graph pools of another
trial's shapes; the on-disk cache survives it) and ends with another (a reused process gets the graphs'
memory back). Shapes are static (`dynamic=False`): a new width is a new compile, never a slower
dynamic-shape graph. Evaluation always runs eagerly (`eager()`): one graph per training shape only.
A resumed trial loads its weights in place into the compiled net, so the same kernels continue.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from sr_core.fastpaths import FastPaths
from sr_core.gpu_busy import cuda_graphs_pay
from sr_core.models import ResidualBlock

AUTO_LAUNCH_BOUND = "reduce-overhead"  # measured: 2.7-3.4x at b8 c64 on an H100
AUTO_COMPUTE_BOUND = ""  # eager: regional compile of the big nets is not measured yet
NODE_CACHE_FOLDER = "sr-search-compile-cache"


def auto_mode(device: torch.device, arch: str, blocks: int, channels: int, batch_size: int,
              planned_images: int, params=()) -> str:
    """The compile mode "auto" gives one trial (a pure rule; see the module docstring)."""
    if device.type != "cuda":
        return ""
    if cuda_graphs_pay(arch, blocks, channels, batch_size, planned_images, params):
        return AUTO_LAUNCH_BOUND
    return AUTO_COMPUTE_BOUND


def resolve(fast: FastPaths, device: torch.device, config, per_epoch: int) -> FastPaths:
    """`fast` with "auto" replaced by the mode this trial gets (`config`: a TrialConfig)."""
    if fast.compile != "auto":
        return fast
    mode = auto_mode(device, config.arch, config.blocks, config.channels, config.batch_size,
                     config.epochs * per_epoch, config.net[3])
    return dataclasses.replace(fast, compile=mode)


def compile_model(model: torch.nn.Module, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable the training step runs: the model itself (eager), the model with each residual
    block compiled in place ("regional"), or a torch.compile of the whole model."""
    if mode in ("", "auto"):
        return model
    torch.compiler.reset()  # as in a fresh process: nothing of an earlier trial's graphs
    if mode == "regional":
        for module in model.modules():
            if isinstance(module, ResidualBlock):
                module.compile(dynamic=False)
        return model
    return torch.compile(model, mode=mode, dynamic=False)


def release() -> None:
    """Drop every compiled graph (and the CUDA graphs' memory pool) once a trial ends."""
    torch.compiler.reset()


def eager() -> contextlib.AbstractContextManager:
    """Run compiled regions eagerly inside the block (the trainer's evaluation)."""
    return torch.compiler.set_stance("force_eager")


def use_node_compile_cache(folder: str | os.PathLike | None = None) -> Path:
    """Keep torch's on-disk compile caches in one node-local folder, so a shape compiled by one trial
    is a cache hit for the next on this node, in the same process or another (a retry, a resumed
    study, another lr of the same net). Inductor's FX graph cache, AOTAutograd's cache and Triton's
    kernels all live under TORCHINDUCTOR_CACHE_DIR (all on by default in torch 2.x). Without `folder`:
    a folder the environment already names is kept, else <system temp>/sr-search-compile-cache.
    The Ray trainable calls this once per trial, before training."""
    if folder is None:
        folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or Path(tempfile.gettempdir()) / NODE_CACHE_FOLDER
    path = Path(folder).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    return path


class CompileClock:
    """A compiled session's compile time: its first training step's wall time minus its second's.

    Compiling happens inside the first step (dynamo, AOTAutograd and inductor, or their cache hits,
    and the CUDA graph warm-up); the second is the first one at full speed (on CUDA it also records
    the graph, which takes milliseconds). Each of the two steps ends with a device sync: two sync
    points once per session, none after. Reported once, in the session's first epoch report.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device  # None: an eager session, nothing to time
        self._marks: list[float] = []
        self._reported = False

    def start(self) -> None:
        if self.device is not None and not self._marks and not self._reported:
            self._marks.append(time.perf_counter())

    def step_done(self) -> None:
        if self._reported or not self._marks or len(self._marks) >= 3:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # sync point: the first two steps only
        self._marks.append(time.perf_counter())

    def report(self) -> dict[str, float]:
        """{"compile_seconds": s} the first time it is asked after a step, {} from then on."""
        if self._reported or len(self._marks) < 2:
            return {}
        self._reported = True
        first = self._marks[1] - self._marks[0]
        second = self._marks[2] - self._marks[1] if len(self._marks) == 3 else 0.0
        return {"compile_seconds": max(0.0, first - second)}
