"""Time a few real training steps and evaluations of a study's config shapes on the device the trials
use: what the cost model (search.run.cost_model) is fitted to, instead of a FLOP rate measured on one
large net (small nets run far below a device's large-GEMM rate: launch overhead dominates them).

Each shape: its model at the study's batch size, forward + backward + gradient clipping + Adam as the
trainer steps (bf16 autocast on CUDA, fp32 on CPU), one warm-up step, then `steps` timed; and one
timed evaluation of `eval_images` images under inference_mode. Synthetic tensors: no data pipeline.
Once per probe, the full-size val's scoring (sr_core.full_val.score_image: 8-bit rounding, float64
PSNR-Y, SSIM-Y and PSNR, on the host whatever the device) is timed per HR pixel: each row carries it as
`score_pixel_s`; the forward of a full-size image is priced from `eval_image_s` by its LR pixels.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from sr_core.models import build_model, flops_per_image
from sr_core.sizes import HR_SIZE, LR_SIZE


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_shape(arch: str, blocks: int, channels: int, batch_size: int, device: torch.device, steps: int = 3,
               eval_images: int = 16, params=()) -> dict:
    """{arch, blocks, channels, params, batch_size, flops_per_image, step_s, eval_image_s, probe_s} for one
    shape (`params`: a user arch's other parameters, sr_core.archs)."""
    started = time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(arch, blocks, channels, params).to(device)
        x = torch.rand(batch_size, 3, LR_SIZE, LR_SIZE, device=device)
        y = torch.rand(batch_size, 3, HR_SIZE, HR_SIZE, device=device)
        xe = torch.rand(eval_images, 3, LR_SIZE, LR_SIZE, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.mse_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        model(xe[:1])
        _sync(device)
        t0 = time.perf_counter()
        model(xe)
        _sync(device)
    eval_image_s = (time.perf_counter() - t0) / eval_images
    return {"arch": arch, "blocks": blocks, "channels": channels, "params": params, "batch_size": batch_size,
            "flops_per_image": flops_per_image(arch, blocks, channels, params), "step_s": step_s,
            "eval_image_s": eval_image_s, "probe_s": time.perf_counter() - started}


def time_scoring(side: int = 256, repeats: int = 2) -> float:
    """Seconds per HR pixel of scoring one full-size image (sr_core.full_val.score_image), on the host."""
    from sr_core.full_val import score_image
    gen = torch.Generator().manual_seed(0)
    sr = torch.rand(3, side, side, generator=gen)
    hr = (torch.rand(3, side, side, generator=gen) * 255).to(torch.uint8)
    score_image(sr, hr)  # warm-up (the SSIM filter matrices are cached per size)
    t0 = time.perf_counter()
    for _ in range(repeats):
        score_image(sr, hr)
    return (time.perf_counter() - t0) / repeats / (side * side)


def sample_shapes(shapes: list[tuple]) -> list[tuple]:
    """Per architecture, the smallest, the largest and the middle shape by FLOPs (all when 3 or fewer).
    A shape: (arch, blocks, channels) or (arch, blocks, channels, params)."""
    out = []
    for arch in sorted({s[0] for s in shapes}):
        mine = sorted(set(s for s in shapes if s[0] == arch), key=lambda s: (flops_per_image(*s), str(s)))
        picks = {0, len(mine) - 1, len(mine) // 2}
        out += [mine[i] for i in sorted(picks)]
    return out


def probe(shapes: list[tuple], batch_size: int, device: torch.device, threads: int | None = None,
          budget_s: float = 20.0) -> list[dict]:
    """`time_shape` for the sampled shapes, smallest first; a shape whose step the timings so far predict
    (by FLOPs) to take over a fifth of the budget is skipped (the cost model extrapolates to it)."""
    previous = torch.get_num_threads()
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        out: list[dict] = []
        score_pixel_s = time_scoring()
        spent = 0.0
        for shape in sorted(sample_shapes(shapes), key=lambda s: flops_per_image(*s)):
            mine = [r for r in out if r["arch"] == shape[0]]
            if mine:
                rate = mine[-1]["step_s"] / (mine[-1]["flops_per_image"] * batch_size)
                if rate * flops_per_image(*shape) * batch_size * 5 > budget_s / 5 or spent > budget_s:
                    continue
            row = {**time_shape(*shape[:3], batch_size=batch_size, device=device,
                                params=shape[3] if len(shape) > 3 else ()), "score_pixel_s": score_pixel_s}
            spent += row["probe_s"]
            out.append(row)
        return out
    finally:
        torch.set_num_threads(previous)
