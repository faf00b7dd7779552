"""`bench memory`: the memory model's prediction against the peak a real trial reaches, per config.

    PYTHONPATH=. python3 -m search.bench.memory [--configs 8x64,24x712] [--batch-sizes 16,64] [--json FILE]

Each row trains the real `train_trial` for two short epochs (the second holds the best-weights copy,
as every later epoch does) on synthetic images and reads `torch.cuda.max_memory_allocated()`:
`measured_gib` over the whole trial (what the model predicts; the first epoch includes cudnn.benchmark
trying algorithms) and `measured_steady_gib` over the second epoch alone. `predicted_gib` is
`sr_core.memory.predict_trial` for the same config, data and fast paths. With the default 64 val
images the training step sets the peak of some rows and the evaluation of others (at the study's
1250 val images the eval batch of 256 sets it for every config: try --val-images 256). Eager training (compile "")
because that is what the model covers. On a machine without CUDA it still runs: predicted only,
`measured_gib` null, and a note saying why. Needs torch, numpy, pillow; never Ray, Optuna or MLflow.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

# From the grid's smallest to its largest net (study residual: blocks 8-24, channels 64-712).
DEFAULT_CONFIGS = ((8, 64), (8, 256), (16, 128), (16, 384), (24, 612), (24, 712))
DEFAULT_BATCHES = (16, 64)
STEPS_PER_EPOCH = 4
GIB = 2 ** 30


def memory_row(blocks: int, channels: int, batch_size: int, data, device: str, fast):
    """One config: (its row, the MemoryPrediction), predicted, and on CUDA measured through train_trial."""
    import torch

    from sr_core.memory import fits, predict_trial
    from sr_core.train import TrialConfig, train_trial
    config = TrialConfig(arch="residual", blocks=blocks, channels=channels, batch_size=batch_size, epochs=2,
                         lr=1e-4, eta_min=1e-6, patience=3, epoch_samples=STEPS_PER_EPOCH * batch_size)
    pred = predict_trial(config, fast, train_images=len(data.train), val_images=len(data.val))
    row = {"config": config.run_name, "blocks": blocks, "channels": channels, "batch_size": batch_size,
           "predicted_gib": pred.total_gib, "peak_phase": pred.peak_phase,
           "parts_gib": {k: v / GIB for k, v in dataclasses.asdict(pred).items()
                         if isinstance(v, int) and k not in ("blocks", "channels", "batch_size")},
           "measured_gib": None}
    if not device.startswith("cuda"):
        return row, pred
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    first: dict[str, float] = {}

    def on_epoch(report: dict) -> bool:
        if report["epoch"] == 1:  # from here on: the steady epochs
            first["peak"] = torch.cuda.max_memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        return True

    result = train_trial(config, data, device=device, on_epoch=on_epoch, fast_paths=fast)
    steady = torch.cuda.max_memory_allocated(device)
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    row.update(status=result.status, reason=result.reason, allocated_before_gib=before / GIB,
               measured_gib=max(first.get("peak", 0), steady) / GIB, measured_steady_gib=steady / GIB,
               first_epoch_gib=first.get("peak", 0) / GIB, reserved_gib=torch.cuda.max_memory_reserved(device) / GIB,
               fits_reason=fits(pred, total)[1])
    if result.status == "completed":
        row["ratio"] = row["measured_gib"] / row["predicted_gib"]
        row["steady_ratio"] = row["measured_steady_gib"] / row["predicted_gib"]
    else:  # an OOM's peak is where it stopped, not the trial's: kept apart, not judged
        row["stopped_peak_gib"], row["measured_gib"], row["measured_steady_gib"] = row["measured_gib"], None, None
    del result
    torch.cuda.empty_cache()
    return row, pred


def bench_memory(configs=DEFAULT_CONFIGS, batches=DEFAULT_BATCHES, train_images: int = 2048,
                 val_images: int = 64, device: str | None = None, deadline=None, tolerance: float = 0.15) -> dict:
    """Every (config, batch) row (rows past `deadline`, a time.monotonic() value, are skipped), and the
    calibration (sr_core.memory.compare_to_measured) over the whole trials and over the steady epochs."""
    import time

    import torch

    from search.bench.train import synthetic_data
    from sr_core.fastpaths import FastPaths
    from sr_core.memory import compare_to_measured
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data, fast, rows, preds = synthetic_data(train_images, val_images), FastPaths(compile=""), [], []
    for blocks, channels in configs:
        for batch in batches:
            if deadline is not None and time.monotonic() > deadline:
                rows.append({"config": f"residual_b{blocks}_c{channels}", "batch_size": batch, "skipped": "budget"})
                continue
            try:
                row, pred = memory_row(blocks, channels, batch, data, device, fast)
                rows.append(row)
                preds.append((pred, row))
            except Exception as exc:  # one row failing must not lose the others
                rows.append({"config": f"residual_b{blocks}_c{channels}", "batch_size": batch,
                             "error": repr(exc)[:300]})
    measured = lambda row, key: None if row.get(key) is None else int(row[key] * GIB)
    out = {"device": device, "train_images": train_images, "val_images": val_images, "eval_batch": fast.eval_batch,
           "rows": rows,
           "calibration": compare_to_measured([(p, measured(r, "measured_gib")) for p, r in preds], tolerance),
           "calibration_steady": compare_to_measured([(p, measured(r, "measured_steady_gib")) for p, r in preds],
                                                     tolerance)}
    if not device.startswith("cuda"):
        out["note"] = ("no CUDA device: predicted only (measured_gib is null); the prediction is for a "
                       "CUDA trial (bf16, the layout for_trial gives on CUDA)")
    return out


def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(tuple(int(x) for x in item.split("x")) for item in text.split(","))
    except ValueError:
        raise ValueError(f"--configs wants BLOCKSxCHANNELS,... e.g. 8x64,24x712, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", default=",".join(f"{b}x{c}" for b, c in DEFAULT_CONFIGS),
                   help="residual BLOCKSxCHANNELS, comma-separated")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCHES)))
    p.add_argument("--train-images", type=int, default=2048)
    p.add_argument("--val-images", type=int, default=64,
                   help="held on the device and evaluated in one batch of up to 256 (default 64: training sets "
                        "the peak of some rows, evaluation of others; 256 is the study's eval batch)")
    p.add_argument("--device", help="default: cuda when available")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON (keys predicted_gib, measured_gib)")


def run(args) -> int:
    from search.bench.output import envelope, table, write_json
    batches = tuple(int(x) for x in args.batch_sizes.split(","))
    if args.train_images < 1 or args.val_images < 1 or min(batches) < 1:
        raise ValueError("--train-images, --val-images and --batch-sizes must be >= 1")
    result = bench_memory(_pairs(args.configs), batches, args.train_images, args.val_images, args.device)
    payload = {**envelope("memory", result["device"], sys.argv), **result}
    print(table(result["rows"], [("config", "config", ""), ("batch_size", "batch", "d"),
                                 ("predicted_gib", "predicted GiB", ".2f"), ("measured_gib", "measured GiB", ".2f"),
                                 ("ratio", "measured/pred", ".3f"), ("measured_steady_gib", "steady GiB", ".2f"),
                                 ("peak_phase", "peak in", "")]))
    cal = result["calibration"]
    print(result.get("note") or f"\nwithin {cal['tolerance']:.0%}: {cal['within_tolerance']} of {cal['judged']}")
    if args.json:
        write_json(args.json, payload)
    return 0


SUBCOMMAND = ("the memory model's predicted peak against a real trial's, per config", add_arguments, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.memory", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
