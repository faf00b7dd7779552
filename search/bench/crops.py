"""`sr-search bench crops`: random crops against fixed patches on one folder of full-size photos.

One config (the demo's recipe by default: residual, 4 blocks, 32 channels, lr 1.5e-3 to 1e-4, batch 4,
rgb_permute) trained twice from the same seed on the same train photos, for the same epochs and the same
steps (each epoch as many crops as the fixed patches the photos hold): once on those fixed patches,
once on random crops drawn every step. Both are scored on the same val patches (the folder's every 5th
photo, or --val-data), and on photos neither saw (sr_core.generalise: scikit-learn's and matplotlib's).

The verdict is the paired bootstrap over the val images (reports.noise.gain: dB of the mean MSE, 95%):
random crops are better only where the interval excludes zero.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from search.bench.output import default_device, envelope, table, write_json


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="a folder of full-size photos (HR-only)")
    p.add_argument("--val-data", type=Path, help="its val photos (default: every 5th of --data's)")
    p.add_argument("--arch", default="residual")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--eta-min", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=60, help="epochs of each training (default 60, the demo's final)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


def bench_crops(args) -> dict:
    from reports.noise import gain
    from sr_core.baselines import bicubic_images
    from sr_core.data import load_dataset
    from sr_core.generalise import generalisation
    from sr_core.models import build_model
    from sr_core.train import TrialConfig, train_trial
    quiet = lambda line: None  # noqa: E731
    data = {kind: load_dataset(args.data, val_source=args.val_data, crops=kind, progress=quiet)
            for kind in ("fixed", "random")}
    steps_of = len(data["fixed"].train)  # each epoch: as many crops as the fixed patches
    config = TrialConfig(arch=args.arch, blocks=args.blocks, channels=args.channels, lr=args.lr, eta_min=args.eta_min,
                         epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, rgb_permute=True,
                         epoch_samples=steps_of, seed=args.seed)
    device = args.device or default_device()
    rows, images = {}, {}
    for kind, d in data.items():
        t0 = time.perf_counter()
        result = train_trial(config, d, device=device)
        model = build_model(config.arch, config.blocks, config.channels)
        model.load_state_dict(result.weights)
        outside = generalisation(model.eval())
        images[kind] = result.best_images["val/mse"]
        rows[kind] = {"train": kind, "status": result.status, "seconds": time.perf_counter() - t0,
                      "val_psnr": result.best["val/psnr"], "best_epoch": result.best["epoch"],
                      "images_per_s": statistics.median(h["images_per_s"] for h in result.history),
                      **{f"outside_{k}_gain_db": s.gain_db for k, s in outside.items()}}
    bicubic = bicubic_images(data["fixed"].val)
    verdict = gain(images["random"], images["fixed"])
    over_bicubic = {k: gain(v, bicubic["val/mse"]) for k, v in images.items()}
    return {"config": dataclasses.asdict(config), "data": str(args.data), "val_data": str(args.val_data or ""),
            "train_photos": len(data["random"].train.names), "images_per_epoch": steps_of,
            "val_images": len(data["fixed"].val), "device": str(device), "rows": list(rows.values()),
            "train_throughput_random_vs_fixed": rows["random"]["images_per_s"] / rows["fixed"]["images_per_s"],
            "random_vs_fixed_db": verdict.as_dict(), "random_vs_fixed": f"{verdict.text()} ({verdict.verdict})",
            "over_bicubic": {k: f"{g.text()} ({g.verdict})" for k, g in over_bicubic.items()}}


def _run(args) -> int:
    if args.epochs < 1 or args.batch_size < 1:
        raise ValueError(f"--epochs and --batch-size must be >= 1, got {args.epochs=} {args.batch_size=}")
    result = {**envelope("crops", args.device or default_device(), sys.argv), **bench_crops(args)}
    print(f"bench crops: {result['config']['arch']} ({result['config']['blocks']}, {result['config']['channels']}) "
          f"for {args.epochs} epochs of {result['images_per_epoch']} images on {result['train_photos']} photos "
          f"({result['val_images']} val patches), fixed patches against random crops\n")
    print(table(result["rows"], [("train", "train on", ""), ("status", "status", ""), ("seconds", "s", ".0f"),
                                 ("images_per_s", "train images/s", ".0f"),
                                 ("val_psnr", "val PSNR dB", ".2f"), ("best_epoch", "best epoch", "d"),
                                 ("outside_sr-search_gain_db", "outside gain dB (sr-search)", "+.2f"),
                                 ("outside_pil_gain_db", "(pil)", "+.2f"), ("outside_opencv_gain_db", "(opencv)", "+.2f")]))
    print(f"\nrandom crops against fixed patches on the val images: {result['random_vs_fixed']}")
    for kind, text in result["over_bicubic"].items():
        print(f"{kind} over bicubic on the val images: {text}")
    if args.json:
        write_json(args.json, result)
    return 0


SUBCOMMAND = ("random crops against fixed patches on a folder of full-size photos (same epochs and steps)",
              _arguments, _run)
