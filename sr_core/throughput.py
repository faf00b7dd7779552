"""How fast a device trains these nets: the one synthetic training step the cost estimate measures a
device with, and the data-sheet peaks that MFU is quoted against.

`reference_step(...)` times forward + backward + Adam on random tensors (bf16 autocast on CUDA, fp32
elsewhere): no data pipeline, no evaluation, so it measures the device, not the trainer. The real
trainer's figures come from `sr-search bench train` (search/bench/train.py), which runs
`sr_core.train.train_trial` itself.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

from sr_core.models import build_model, flops_per_image, params_count
from sr_core.sizes import HR_SIZE, LR_SIZE

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
                    "4090": 165.0, "V100": 125.0}

# A mid-size reference net for measuring a device: big enough to keep a GPU busy, small enough for
# two seconds on a laptop CPU.
REFERENCE_NET = ("residual", 4, 64)


def peak_tflops(device: str) -> tuple[float | None, str]:
    """(the device's dense bf16 peak in TFLOP/s from its data sheet, where it comes from); None on a
    CPU or an unlisted GPU."""
    if torch.device(device).type != "cuda":
        return None, "none (CPU: see the measured GEMM)"
    name = torch.cuda.get_device_name(torch.device(device))
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return peak, f"{name} dense bf16 data sheet" if peak else f"{name}: unknown"


def _time(fn: Callable[[], None], seconds: float, sync: Callable[[], None]) -> tuple[int, float]:
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    sync()  # a CPU-GPU sync point: the clock stops once the queued steps have run
    return n, time.perf_counter() - t0


def reference_step(arch: str, blocks: int, channels: int, batch_size: int = 16, seconds: float = 3.0,
                   device: str | None = None, amp: bool = True) -> dict:
    """Training and inference images/s of one synthetic step; `train_tflops` feeds the cost estimate."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dtype = torch.bfloat16 if device.startswith("cuda") and amp else None
    model = build_model(arch, blocks, channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch_size, 3, LR_SIZE, LR_SIZE, device=device)
    y = torch.rand(batch_size, 3, HR_SIZE, HR_SIZE, device=device)

    def train_step():
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            loss = F.mse_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer_step():
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            model(x)

    fpi = flops_per_image(arch, blocks, channels)
    n_train, t_train = _time(train_step, seconds, sync)
    n_infer, t_infer = _time(infer_step, seconds / 2, sync)
    train_ips, infer_ips = n_train * batch_size / t_train, n_infer * batch_size / t_infer
    peak, _ = peak_tflops(device)
    out = {"arch": arch, "blocks": blocks, "channels": channels, "batch_size": batch_size,
           "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
           "precision": "bf16-autocast" if dtype else "fp32", "params": params_count(arch, blocks, channels),
           "gflops_per_image": fpi / 1e9, "train_images_per_s": train_ips, "infer_images_per_s": infer_ips,
           "train_tflops": 3 * fpi * train_ips / 1e12, "infer_tflops": fpi * infer_ips / 1e12}
    if peak:
        out["train_mfu"] = 3 * fpi * train_ips / (peak * 1e12)
        out["infer_mfu"] = fpi * infer_ips / (peak * 1e12)
    if device == "cpu":
        out["threads"] = torch.get_num_threads()
    return out


def measure_device_flops(device: str, threads: int | None = None, seconds: float = 1.5) -> float:
    """Effective training FLOP/s of the reference net (forward + backward + Adam, batch 16), measured
    without touching the caller's RNG or thread count."""
    prev_threads = torch.get_num_threads()
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            result = reference_step(*REFERENCE_NET, batch_size=16, seconds=seconds, device=device)
    finally:
        torch.set_num_threads(prev_threads)
    return result["train_tflops"] * 1e12
