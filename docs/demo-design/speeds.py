"""1-thread training speed and evaluation cost per epoch, in CPU seconds (robust on a shared machine).

    PYTHONPATH=. python docs/demo-design/speeds.py CACHE OUT.json [--repeats 3] [--batch 8] [--only KEYS]

The machine these figures are for has 2 cores shared with other work; wall-clock figures swing with
the neighbours' load, so each figure is the CPU time of this process (torch at 1 thread, so one
core's time), which is what a trial costs when it has its core to itself.
- images_per_s: train_trial's own training loop (sampling, augmentation, forward, backward, Adam),
  second of 2 epochs of `samples` images, with a 4-image val set so that its evaluation is negligible.
- eval_s: sr_core.train.evaluate on the real val set (val/mse, val/psnr, val/ssim): what every epoch
  adds. eval_ssim_s: the SSIM part of it, on bicubic images of the same size.
Medians over --repeats.
"""
import argparse
import dataclasses
import json
import statistics
import time

import torch

from sr_core import metrics
from sr_core.data import SRPairs, load_cached
from sr_core.pixels import to_float
from sr_core.resize import bicubic_upscale
from sr_core.models import build_model
from sr_core.train import TrialConfig, evaluate, train_trial

SIZES = ([("residual", b, c) for b in (1, 2, 4, 8) for c in (4, 8, 16)] + [("residual", 4, 32)]
         + [("refiner", b, c) for b in (1, 2, 4) for c in (4, 8, 16)])


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache")
    parser.add_argument("out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated keys like residual_b4_c16")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_cached(args.cache)
    tiny = dataclasses.replace(data, val=SRPairs(data.val.lr[:4], data.val.hr[:4], data.val.names[:4]))
    ssim_s = statistics.median(cpu(lambda: metrics.ssim(bicubic_upscale(to_float(data.val.lr)),
                                                        to_float(data.val.hr))) for _ in range(args.repeats))
    only = set(filter(None, args.only.split(",")))
    results = {}
    for arch, blocks, channels in SIZES:
        key = f"{arch}_b{blocks}_c{channels}"
        if only and key not in only:
            continue
        samples = 64 if arch == "refiner" and blocks * channels >= 32 else 128
        ips, evals = [], []
        for seed in range(args.repeats):
            marks = []
            cfg = TrialConfig(arch=arch, blocks=blocks, channels=channels, lr=1e-3, eta_min=1e-4, epochs=2,
                              batch_size=args.batch, epoch_samples=samples, seed=seed)
            t0 = time.process_time()
            train_trial(cfg, tiny, device="cpu", on_epoch=lambda r: marks.append(time.process_time()) or True)
            ips.append(samples / (marks[1] - marks[0]))
            model = build_model(arch, blocks, channels)
            evals.append(cpu(lambda: evaluate(model, data.val, torch.device("cpu"))))
        results[key] = {"images_per_s": statistics.median(ips), "eval_s": statistics.median(evals),
                        "images_per_s_all": ips, "eval_s_all": evals}
        print(f"{key:18s} {results[key]['images_per_s']:7.1f} img/s  eval {results[key]['eval_s']:5.2f} s  "
              f"(batch {args.batch}, {time.strftime('%H:%M:%S')}, load {open('/proc/loadavg').read().split()[0]})",
              flush=True)
    with open(args.out, "w") as f:
        json.dump({"clock": "process CPU time", "threads": 1, "batch_size": args.batch,
                   "torch": torch.__version__, "val_images": len(data.val), "eval_ssim_s": ssim_s,
                   "sizes": results}, f, indent=1)
    print(f"SSIM alone on {len(data.val)} val images: {ssim_s:.2f} s")


if __name__ == "__main__":
    main()
