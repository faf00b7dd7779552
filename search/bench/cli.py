"""`sr-search bench SUB`: figures about this machine, each printed as a table and, with --json FILE,
written with the machine and the versions beside them. Figures only, never pass/fail: machines are
noisy, so each benchmark compares ratios measured side by side in one run.

    bench train     the real training loop against a plain one: images/s, TFLOP/s, fraction of peak,
                    optional ablation of the fast paths, optional N concurrent processes (bench/train.py)
    bench data      one epoch of augmented batches: ours against PIL + DataLoader (bench/data.py)
    bench overhead  the study machinery's cost per trial, through the real engine (bench/overhead.py)
    bench search    schedules replayed on measured learning curves (bench/schedules.py)
    bench curves    the learning curves of every config of a grid, for bench search (bench/curves.py)
    bench memory    the memory model's predicted peak against a real trial's, per config (bench/memory.py)
    bench estimate  a finished study's cost estimate against what it spent (bench/estimate.py)

A subcommand is one entry of SUBCOMMANDS (its help, its arguments and its run function). Nothing here
imports Ray, Optuna or MLflow, and torch only once a benchmark runs: `bench train` and `bench data`
work on a bare GPU box with PYTHONPATH=. This package is imported by nothing but `search.cli`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from search.bench import crops, curves, estimate, memory, overhead, schedules
from search.bench.output import default_device, envelope, table, write_json

EXIT_USAGE = 2


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

    from search.bench.train import TrainSpec, bench_train, profile_trainer
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

    from search.bench.data import bench_data
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
            {"pipeline": "random crops of the full photos, LR on the fly", "epoch_s": r["crops_epoch_s"],
             "images_per_s": r["crops_images_per_s"], "once_s": r["crops_setup_s"]},
            {"pipeline": f"PIL + DataLoader ({r['loader_workers']} workers)", "epoch_s": r["pil_epoch_s"],
             "images_per_s": r["pil_images_per_s"]}]
    cols = [("pipeline", "pipeline", ""), ("epoch_s", "epoch s", ".3f"), ("images_per_s", "images/s", ",.0f"),
            ("once_s", "load once s", ".3f")]
    return (f"bench data: one epoch of {r['images']} augmented pairs, batch {r['batch_size']}, on {r['device']}\n\n"
            + table(rows, cols) + f"\n\nspeedup {r['speedup']:.1f}x (median of {r['rounds']} alternating "
            f"rounds; {r['speedup_with_setup']:.1f}x counting our one-time load); random crops at "
            f"{r['crops_vs_fixed']:.0%} of the fixed patches' images/s")


# -- the subcommand registry ---------------------------------------------------------------------------
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "train": ("the real training loop vs a plain one: images/s, TFLOP/s, fraction of peak, ablation",
              _train_arguments, _run_train),
    "data": ("one epoch of augmented batches: ours vs PIL + DataLoader", _data_arguments, _run_data),
    # These two import Ray, Optuna and MLflow only when they run.
    "overhead": overhead.SUBCOMMAND,
    "search": schedules.SUBCOMMAND,
    "curves": curves.SUBCOMMAND,
    "memory": memory.SUBCOMMAND,
    "estimate": estimate.SUBCOMMAND,
    "crops": crops.SUBCOMMAND,
}


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
