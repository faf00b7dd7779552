"""`sr-search bench train`: the real training loop's throughput, beside a plain loop measured in turns.

What runs is `sr_core.train.train_trial` itself (device-side shuffling and augmentation, clipping,
the cosine schedule, Adam, one short evaluation per epoch) on synthetic smooth images, with short
epochs (`images` per epoch). Epoch 1 is warm-up (cudnn.benchmark, torch.compile); each later epoch
is one round. After every round the trial's `on_epoch` runs one chunk of the plain loop, so both are
measured side by side in the same minutes: on a shared, noisy machine only their ratio per round
means much, and we report medians.

The plain loop is the yardstick: fp32, fixed input tensors, torch's defaults, plain Adam; no
clipping, schedule, augmentation or evaluation, all of which favour it.

Imports neither Ray, Optuna nor MLflow: it runs on a bare GPU box with torch, numpy and pillow.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sr_core.data import SRData, SRPairs
from sr_core.fastpaths import FastPaths, amp_dtype, set_flags
from sr_core.models import build_model, flops_per_image, params_count
from sr_core.throughput import peak_tflops
from sr_core.train import TrialConfig, train_trial

VAL_IMAGES = 4  # the trial evaluates every epoch (fp64 SSIM, slow on CPU): keep it small
CUDA_ONLY = ("tf32", "cudnn_benchmark", "amp")


@dataclass(frozen=True)
class TrainSpec:
    arch: str = "residual"
    blocks: int = 8
    channels: int = 64
    batch_size: int = 16
    images: int = 64  # per epoch (= per round); rounded up to whole batches
    rounds: int = 3  # timed epochs after the warm-up epoch
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        TrialConfig(arch=self.arch, blocks=self.blocks, channels=self.channels, batch_size=self.batch_size)
        if self.images < 1 or self.rounds < 1:
            raise ValueError(f"images and rounds must be >= 1, got {self.images=} {self.rounds=}")

    @property
    def epoch_images(self) -> int:
        return -(-self.images // self.batch_size) * self.batch_size

    @property
    def train_flops_per_image(self) -> float:
        return 3.0 * flops_per_image(self.arch, self.blocks, self.channels)  # forward + backward


def synthetic_data(n_train: int, n_val: int, seed: int = 0) -> SRData:
    """Smooth random photos-like images (sums of low frequencies), as uint8 pairs."""
    g = torch.Generator().manual_seed(seed)
    hr = F.interpolate(torch.rand(n_train + n_val, 3, 8, 8, generator=g), size=(128, 128), mode="bicubic",
                       align_corners=False).clamp(0, 1)
    lr = F.interpolate(hr, size=(32, 32), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    lr, hr = (lr * 255).round().to(torch.uint8), (hr * 255).round().to(torch.uint8)
    names = tuple(f"s{i}" for i in range(n_train + n_val))
    return SRData(train=SRPairs(lr[:n_train], hr[:n_train], names[:n_train]),
                  val=SRPairs(lr[n_train:], hr[n_train:], names[n_train:]), test=None, source="synthetic")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_rate(fn, flops: float, device: torch.device, seconds: float, chunks: int = 5) -> float:
    """TFLOP/s of `fn` in its fastest of `chunks` timed chunks: a ceiling is what the machine can do,
    and on a shared machine the slower chunks measure the neighbours."""
    fn()
    sync(device)
    best = 0.0
    for _ in range(chunks):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / chunks or reps < 2:
            fn()
            reps += 1
        sync(device)
        best = max(best, flops * reps / (time.perf_counter() - t0) / 1e12)
    return best


def gemm_tflops(device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """A large dense matrix product's rate: the ceiling a convnet's FLOP rate is compared with."""
    dev = torch.device(device)
    n = 8192 if dev.type == "cuda" else 2048
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=g)  # random data: zeros run faster
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
    return _best_rate(lambda: a @ b, 2.0 * n ** 3, dev, seconds)


def conv_tflops(device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """A large 3x3 convolution's rate (channels_last, forward): the ceiling our convs could reach.

    On CPUs this can beat torch.matmul: convolutions run in oneDNN's own kernels, matmul in the BLAS
    (MKL picks slower code paths on some non-Intel CPUs)."""
    dev = torch.device(device)
    n, c = (64, 512) if dev.type == "cuda" else (16, 256)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(n, c, 32, 32, device=dev, dtype=dtype, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, device=dev, dtype=dtype, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return _best_rate(lambda: F.conv2d(x, w, padding=1), 2.0 * n * c * c * 9 * 32 * 32, dev, seconds)


class PlainLoop:
    """The yardstick loop (see the module docstring). `run(steps)` returns its images/s."""

    def __init__(self, spec: TrainSpec):
        self.spec, self.device = spec, torch.device(spec.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            self.model = build_model(spec.arch, spec.blocks, spec.channels).to(self.device)
            self.x = torch.rand(spec.batch_size, 3, 32, 32).to(self.device)
            self.y = torch.rand(spec.batch_size, 3, 128, 128).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.run(2)  # warm-up: allocator, kernels, Adam's state

    def step(self) -> None:
        loss = F.mse_loss(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def run(self, steps: int) -> float:
        with _torch_defaults(self.device):  # it runs inside our trial, which set TF32 and cudnn.benchmark
            sync(self.device)
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            sync(self.device)
        return steps * self.spec.batch_size / (time.perf_counter() - t0)


@contextlib.contextmanager
def _torch_defaults(device: torch.device):
    """torch's own defaults for cudnn.benchmark (off), cuDNN TF32 (on) and fp32 matmuls (IEEE)."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    set_flags(cudnn_benchmark=False, cudnn_tf32=True, matmul_precision="highest")
    try:
        yield
    finally:
        set_flags(*saved)


def trial_config(spec: TrainSpec, epochs: int | None = None) -> TrialConfig:
    epochs = epochs or spec.rounds + 1
    return TrialConfig(arch=spec.arch, blocks=spec.blocks, channels=spec.channels, lr=1e-4, eta_min=1e-6,
                       epochs=epochs, batch_size=spec.batch_size, patience=epochs + 1, seed=spec.seed,
                       epoch_samples=spec.epoch_images)


def measure_trainer(spec: TrainSpec, fast: FastPaths, plain: PlainLoop | None = None,
                    data: SRData | None = None) -> dict:
    """train_trial's images/s per timed epoch (and the plain loop's, in turns, when given)."""
    data = data or synthetic_data(spec.epoch_images, VAL_IMAGES, spec.seed)
    plain_rates: list[float] = []
    steps = spec.epoch_images // spec.batch_size

    def on_epoch(report: dict) -> bool:
        if plain is not None and report["epoch"] <= spec.rounds:
            plain_rates.append(plain.run(steps))  # between our epochs: side by side in time
        return True

    device = torch.device(spec.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train_trial(trial_config(spec), data, device=device, on_epoch=on_epoch, fast_paths=fast)
    if result.status != "completed" or len(result.history) < 2:
        return {"error": f"trial {result.status}: {result.reason}"}
    rates = [h["images_per_s"] for h in result.history[1:]]
    ips = statistics.median(rates)
    row = {"images_per_s": ips, "images_per_s_each": rates,
           "tflops": spec.train_flops_per_image * ips / 1e12,
           # epoch 1's training minus a steady epoch's: cudnn.benchmark, torch.compile, caches
           "warmup_s": spec.epoch_images / result.history[0]["images_per_s"] - spec.epoch_images / ips}
    if plain_rates:
        row["plain_images_per_s"] = statistics.median(plain_rates)
        row["plain_images_per_s_each"] = plain_rates
        row["speedup"] = statistics.median(r / p for r, p in zip(rates, plain_rates))
    if device.type == "cuda":
        row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return row


def ablation(spec: TrainSpec, fast: FastPaths, plain: PlainLoop | None) -> list[dict]:
    """Every switch off one at a time, then all off; each with its own side-by-side plain chunks."""
    on_cuda = torch.device(spec.device).type == "cuda"
    rows = []
    names = [n for n in FastPaths.switches() if n != "async_checkpoint" and (on_cuda or n not in CUDA_ONLY)]
    variants = [(f"without {n}", fast.without(n)) for n in names if getattr(fast, n)]
    variants.append(("reference (all off)", FastPaths.reference()))
    for label, variant in variants:
        try:
            rows.append({"variant": label, **measure_trainer(spec, variant, plain)})
        except Exception as exc:  # one variant failing must not lose the others
            rows.append({"variant": label, "error": repr(exc)[:300]})
    return rows


def _packed_worker(spec: TrainSpec, fast: FastPaths, threads: int, barrier, results) -> None:
    """One of N concurrent trials: warm up, wait for all, then train the timed epochs."""
    if threads:
        torch.set_num_threads(threads)
    marks: dict[str, float] = {}

    def on_epoch(report: dict) -> bool:
        if report["epoch"] == 1:
            barrier.wait(timeout=900)  # every process warmed up: start the clock together
            marks["start"] = time.time()
        marks["end"] = time.time()
        return True

    try:
        result = train_trial(trial_config(spec), synthetic_data(spec.epoch_images, VAL_IMAGES, spec.seed),
                             device=spec.device, on_epoch=on_epoch, fast_paths=fast)
        rates = [h["images_per_s"] for h in result.history[1:]]
        results.put({"pid": os.getpid(), "status": result.status, "start": marks.get("start"),
                     "end": marks.get("end"), "images": spec.epoch_images * len(rates),
                     "images_per_s": statistics.median(rates) if rates else None})
    except BaseException as exc:  # report, and free the others from the barrier
        barrier.abort()
        results.put({"pid": os.getpid(), "error": repr(exc)[:300]})


def packed(spec: TrainSpec, fast: FastPaths, processes: int, timeout_s: float = 900) -> dict:
    """Aggregate images/s of `processes` copies of the trial running at once on one device."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # a fresh interpreter each: CUDA cannot be forked
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    # On CPU the processes share this process's thread budget (torch.get_num_threads()).
    threads = max(1, torch.get_num_threads() // processes) if torch.device(spec.device).type == "cpu" else 0
    procs = [ctx.Process(target=_packed_worker, args=(spec, fast, threads, barrier, results), daemon=True)
             for _ in range(processes)]
    for p in procs:
        p.start()
    rows, deadline = [], time.monotonic() + timeout_s
    while len(rows) < processes and time.monotonic() < deadline:
        try:
            rows.append(results.get(timeout=5))
        except Exception:  # queue.Empty: check the deadline and the workers
            if not any(p.is_alive() for p in procs) and results.empty():
                break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    ok = [r for r in rows if "error" not in r and r.get("start")]
    out = {"processes": processes, "workers": rows, "threads_per_process": threads or None}
    if len(ok) == processes:
        # Wall clock from the common start to the last finish (the short per-epoch evaluations
        # included), and the sum of each process's training-only rate (which assumes they overlapped).
        span = max(r["end"] for r in ok) - min(r["start"] for r in ok)
        out["aggregate_images_per_s"] = sum(r["images"] for r in ok) / span
        out["per_process_images_per_s"] = [r["images_per_s"] for r in ok]
        out["sum_of_training_rates"] = sum(r["images_per_s"] for r in ok)
    else:
        out["error"] = f"{processes - len(ok)} of {processes} processes did not finish"
    return out


def profile_trainer(spec: TrainSpec, fast: FastPaths, steps: int = 8, rows: int = 25) -> dict:
    """torch.profiler over `steps` training steps (after a warm-up epoch): the top ops/kernels."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(spec.device)
    cuda = device.type == "cuda"
    prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []))
    small = dataclasses.replace(spec, images=steps * spec.batch_size, rounds=1)
    window: dict[str, float] = {}

    def on_epoch(report: dict) -> bool:
        if report["epoch"] == 1:
            sync(device)
            prof.start()
        else:
            window["train_s"] = small.epoch_images / report["images_per_s"]
            prof.stop()
        return True

    train_trial(trial_config(small), synthetic_data(small.epoch_images, VAL_IMAGES, spec.seed), device=device,
                on_epoch=on_epoch, fast_paths=fast)
    return summarize_profile(prof, steps, window.get("train_s"), cuda, rows)


def summarize_profile(prof, steps: int, train_s: float | None, cuda: bool, rows: int) -> dict:
    events = prof.key_averages()
    sort = "self_cpu_time_total"
    if cuda:
        sort = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
    table = events.table(sort_by=sort, row_limit=rows)

    def device_us(e) -> float:
        return float(getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0) or 0)

    out = {"steps": steps, "sort_by": sort, "table": table}
    if cuda:  # kernels are the rows that ran on the device; their total is the GPU's busy time
        kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
        busy_us = sum(device_us(e) for e in kernels)
        out["gpu_busy_ms_per_step"] = busy_us / 1e3 / steps
        out["top_kernels"] = [{"name": e.key[:120], "calls": e.count, "device_ms": device_us(e) / 1e3}
                              for e in sorted(kernels, key=device_us, reverse=True)[:rows]]
        out["kernel_launches_per_step"] = sum(e.count for e in kernels) / steps
    else:
        out["top_ops"] = [{"name": e.key[:120], "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3}
                          for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]]
    if train_s:
        # The profiled epoch's wall time per step includes the profiler's own overhead.
        out["wall_ms_per_step_profiled"] = train_s * 1e3 / steps
    return out


def bench_train(spec: TrainSpec, fast: FastPaths, *, plain: bool = True, with_ablation: bool = False,
                processes: int = 0, gemm_seconds: float = 1.0) -> dict:
    """Everything `sr-search bench train` prints: ours, the plain loop, the ceilings, optional extras."""
    device = torch.device(spec.device)
    compute = amp_dtype(device, fast.amp) or torch.float32
    gemm = [gemm_tflops(spec.device, compute, gemm_seconds)]
    yardstick = PlainLoop(spec) if plain else None
    ours = measure_trainer(spec, fast, yardstick)
    gemm.append(gemm_tflops(spec.device, compute, gemm_seconds))  # before and after: the machine drifts
    conv = conv_tflops(spec.device, compute, gemm_seconds)
    peak, peak_source = peak_tflops(spec.device)
    out = {"spec": dataclasses.asdict(spec), "fast_paths": dataclasses.asdict(fast),
           "params": params_count(spec.arch, spec.blocks, spec.channels),
           "train_gflop_per_image": spec.train_flops_per_image / 1e9,
           "compute_dtype": str(compute).replace("torch.", ""), "gemm_tflops": max(gemm),
           "gemm_tflops_each": gemm, "conv_tflops": conv, "peak_tflops": peak, "peak_source": peak_source,
           "ours": ours}
    if "images_per_s" in ours:
        out["images_per_s"] = ours["images_per_s"]
        out["speedup"] = ours.get("speedup")
        out["fraction_of_gemm"] = ours["tflops"] / out["gemm_tflops"]
        out["fraction_of_conv"] = ours["tflops"] / conv
        # On a GPU, against its data-sheet peak; on a CPU, against the GEMM measured in this run.
        out["fraction_of_peak"] = ours["tflops"] / peak if peak else out["fraction_of_gemm"]
    if with_ablation:
        out["ablation"] = ablation(spec, fast, yardstick)
    if processes:
        out["packing"] = [packed(spec, fast, n) for n in sorted({1, processes})]
    return out
