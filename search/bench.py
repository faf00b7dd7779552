"""`sr-search bench`: training and inference throughput of one network on this machine's device.

Prints images/s, effective TFLOP/s and, on known GPUs, MFU against the dense bf16 peak. Figures only:
no pass/fail (machines are noisy; compare ratios measured in one run).
"""
from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F

from sr_core.models import build_model, flops_per_image, params_count

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
                    "4090": 165.0, "V100": 125.0}


def _peak(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(0)
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _time(fn, seconds: float, sync) -> tuple[int, float]:
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    sync()
    return n, time.perf_counter() - t0


def bench(arch: str, blocks: int, channels: int, batch_size: int = 16, seconds: float = 3.0,
          device: str | None = None, amp: bool = True) -> dict:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dtype = torch.bfloat16 if device.startswith("cuda") and amp else None
    model = build_model(arch, blocks, channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch_size, 3, 32, 32, device=device)
    y = torch.rand(batch_size, 3, 128, 128, device=device)

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
    peak = _peak(device)
    out = {"arch": arch, "blocks": blocks, "channels": channels, "batch_size": batch_size,
           "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
           "precision": "bf16-autocast" if dtype else "fp32", "params": params_count(arch, blocks, channels),
           "gflops_per_image": fpi / 1e9, "train_images_per_s": train_ips, "infer_images_per_s": infer_ips,
           "train_tflops": 3 * fpi * train_ips / 1e12, "infer_tflops": fpi * infer_ips / 1e12}
    if peak:
        out["train_mfu"] = 3 * fpi * train_ips / peak
        out["infer_mfu"] = fpi * infer_ips / peak
    if device == "cpu":
        out["threads"] = torch.get_num_threads()
    return out


def format_table(result: dict) -> str:
    width = max(len(k) for k in result)
    rows = [f"{k:<{width}}  {v:,.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in result.items()]
    return "\n".join(rows)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2)
