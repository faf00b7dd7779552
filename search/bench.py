"""`sr-search bench SUB`: figures about this machine, each printed as a table and, with --json FILE,
written with the machine and the versions beside them. Figures only, never pass/fail: machines are
noisy, so each benchmark compares ratios measured side by side in one run.

    bench train   the real training loop against a plain one: images/s, TFLOP/s, fraction of peak,
                  optional ablation of the fast paths, optional N concurrent processes (search.bench_train)
    bench data    one epoch of augmented batches: ours against PIL + DataLoader (search.bench_data)
    bench overhead, bench search   the study machinery, through the real engine (search.bench_study)

A subcommand is one entry of SUBCOMMANDS (its arguments and its run function); `overhead` and
`search` (which need the Ray engine) slot in the same way. Nothing here imports Ray, Optuna or
MLflow, and torch only once a benchmark runs: `bench` works on a bare GPU box with PYTHONPATH=.
`bench(...)` is the one synthetic training step that `search.estimate` measures devices with.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Callable

EXIT_USAGE = 2

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
                    "4090": 165.0, "V100": 125.0}


# -- the machine and the versions, recorded with every figure ----------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import torch
    info = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "platform": platform.platform()}
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    gpu_capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count())
    return info


def versions() -> dict:
    import numpy
    import PIL
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def envelope(benchmark: str, device: str, command: list[str] | None = None) -> dict:
    return {"benchmark": benchmark, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(command) if command else None, "machine": machine_info(device),
            "versions": versions()}


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; columns are (key, header, format), e.g. ("speedup", "x", ".2f")."""
    def cell(row, key, fmt):
        value = row.get(key)
        if value is None:
            return "-"
        return format(value, fmt) if isinstance(value, (int, float)) and fmt else str(value)
    body = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max(len(x) for x in col) for col in zip(heads, *body)]
    line = lambda xs: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(xs, widths)))
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in body])


def default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


# -- bench train --------------------------------------------------------------------------------------
def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="residual", choices=["residual", "refiner"])
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--images", type=int, help="images per timed epoch (default: 64 on CPU, 512 on GPU)")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs after the warm-up epoch (default 3)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; on a shared "
                   "machine 1 avoids OpenMP stalls while other jobs hold the other cores)")
    p.add_argument("--compile", default="", help="torch.compile mode for our loop (default, reduce-overhead, ...)")
    p.add_argument("--no-plain", action="store_true", help="skip the plain reference loop")
    p.add_argument("--ablation", action="store_true", help="also each fast path switched off, one at a time")
    p.add_argument("--processes", type=int, default=0,
                   help="also N copies of the trial in separate processes on the same device (and 1)")
    p.add_argument("--profile", metavar="FILE", help="also write a torch.profiler table of a few steps")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


_OURS_COLUMNS = [("variant", "loop", ""), ("images_per_s", "images/s", ".1f"), ("tflops", "TFLOP/s", ".3f"),
                 ("speedup", "x plain", ".2f"), ("plain_images_per_s", "plain images/s", ".1f"),
                 ("warmup_s", "warm-up s", ".1f")]


def _run_train(args) -> int:
    import torch

    from search.bench_train import TrainSpec, bench_train, profile_trainer
    from sr_core.fastpaths import FastPaths
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or default_device()
    images = args.images or (512 if device.startswith("cuda") else 64)
    spec = TrainSpec(arch=args.arch, blocks=args.blocks, channels=args.channels, batch_size=args.batch_size,
                     images=images, rounds=args.rounds, device=device)
    fast = FastPaths(compile=args.compile)
    if args.processes < 0:
        raise ValueError(f"--processes must be >= 0, got {args.processes}")
    result = {**envelope("train", device, sys.argv), **bench_train(
        spec, fast, plain=not args.no_plain, with_ablation=args.ablation, processes=args.processes)}
    if args.profile:
        prof = profile_trainer(spec, fast)
        Path(args.profile).write_text(prof.pop("table"))
        result["profile"] = {**prof, "table_file": args.profile}
    print(format_train(result))
    if args.json:
        write_json(args.json, result)
    return 0


def format_train(r: dict) -> str:
    m = r["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_cores']} cores, {m['torch_threads']} torch threads)"
    s = r["spec"]
    lines = [f"bench train: {s['arch']} b{s['blocks']} c{s['channels']}, batch {s['batch_size']}, "
             f"{s['images']} images x {s['rounds']} timed epochs, on {where}",
             f"  {r['train_gflop_per_image']:.2f} GFLOP per training image (3x forward); "
             f"{r['compute_dtype']} GEMM measured here: {r['gemm_tflops']:.3f} TFLOP/s, a 3x3 conv: "
             f"{r['conv_tflops']:.3f} TFLOP/s; peak: "
             + (f"{r['peak_tflops']:g} TFLOP/s ({r['peak_source']})" if r["peak_tflops"] else r["peak_source"]), ""]
    rows = [{"variant": "ours (all fast paths)", **r["ours"]}] + r.get("ablation", [])
    lines.append(table(rows, _OURS_COLUMNS))
    for row in rows:
        if "error" in row:
            lines.append(f"  {row['variant']}: {row['error']}")
    if "images_per_s" in r:
        lines += ["", f"images_per_s {r['images_per_s']:.1f}   speedup {r['speedup'] or float('nan'):.2f}x plain   "
                  f"fraction_of_peak {r['fraction_of_peak']:.1%}   fraction_of_gemm {r['fraction_of_gemm']:.1%}   "
                  f"fraction_of_conv {r['fraction_of_conv']:.1%}"]
    for pack in r.get("packing", []):
        agg = pack.get("aggregate_images_per_s")
        lines.append(f"packing: {pack['processes']} process(es): "
                     + (f"aggregate {agg:.1f} images/s" if agg else pack.get("error", "?")))
    return "\n".join(lines)


# -- bench data ---------------------------------------------------------------------------------------
def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=int, default=2000, help="train images in the epoch (default 2000)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                   help="DataLoader worker processes for the PIL pipeline (default: cores, at most 8)")
    p.add_argument("--rounds", type=int, default=3, help="epochs of each, alternating (default 3)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="CPU threads for torch in this process (default: torch's)")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


def _run_data(args) -> int:
    import torch

    from search.bench_data import bench_data
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.images < 1 or args.rounds < 1 or args.workers < 0:
        raise ValueError(f"--images and --rounds must be >= 1 and --workers >= 0, got "
                         f"{args.images=} {args.rounds=} {args.workers=}")
    device = args.device or default_device()
    result = {**envelope("data", device, sys.argv), **bench_data(args.images, args.batch_size, device,
                                                                 args.workers, args.rounds)}
    print(format_data(result))
    if args.json:
        write_json(args.json, result)
    return 0


def format_data(r: dict) -> str:
    rows = [{"pipeline": "ours: uint8 on the device, one gather", "epoch_s": r["ours_epoch_s"],
             "images_per_s": r["ours_images_per_s"], "once_s": r["ours_setup_s"]},
            {"pipeline": f"PIL + DataLoader ({r['loader_workers']} workers)", "epoch_s": r["pil_epoch_s"],
             "images_per_s": r["pil_images_per_s"]}]
    cols = [("pipeline", "pipeline", ""), ("epoch_s", "epoch s", ".3f"), ("images_per_s", "images/s", ",.0f"),
            ("once_s", "load once s", ".3f")]
    return (f"bench data: one epoch of {r['images']} augmented pairs, batch {r['batch_size']}, on {r['device']}\n\n"
            + table(rows, cols) + f"\n\nspeedup {r['speedup']:.1f}x (median of {r['rounds']} alternating "
            f"rounds; {r['speedup_with_setup']:.1f}x counting our one-time load)")


# -- the subcommand registry ---------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "train": ("the real training loop vs a plain one: images/s, TFLOP/s, fraction of peak, ablation",
              _train_arguments, _run_train),
    "data": ("one epoch of augmented batches: ours vs PIL + DataLoader", _data_arguments, _run_data),
}


def _study_benchmarks() -> None:
    """`overhead` and `search` (search.bench_study) import Ray only when they run."""
    from search.bench_study import SUBCOMMANDS as study_benchmarks
    SUBCOMMANDS.update(study_benchmarks)


_study_benchmarks()


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    bench_parser = subparsers.add_parser("bench", help="benchmarks of this machine: " + ", ".join(SUBCOMMANDS),
                                         description=__doc__.split("\n\n")[0])
    sub = bench_parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    for name, (help_text, add_arguments, _) in SUBCOMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return bench_parser


def run_bench(args) -> int:
    """Run the chosen benchmark; bad arguments (a ValueError from validation) exit 2."""
    try:
        return SUBCOMMANDS[args.bench_command][2](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- one synthetic training step (what search.estimate measures a device with) -----------------------
def _time(fn, seconds: float, sync) -> tuple[int, float]:
    import time
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    sync()
    return n, time.perf_counter() - t0


def _peak(device: str) -> float | None:
    import torch
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(0)
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def bench(arch: str, blocks: int, channels: int, batch_size: int = 16, seconds: float = 3.0,
          device: str | None = None, amp: bool = True) -> dict:
    """Training and inference images/s of one synthetic step; `train_tflops` feeds the cost estimate."""
    import torch
    import torch.nn.functional as F

    from sr_core.models import build_model, flops_per_image, params_count
    device = device or default_device()
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
