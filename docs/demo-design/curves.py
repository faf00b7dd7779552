"""Learning curves for the demo design: run train_trial (no Ray) on a list of configs, 1 thread each.

    PYTHONPATH=. python docs/demo-design/curves.py JOBS.json OUT_DIR [--workers N] [--cache FILE]
                                                   [--deadline SECONDS]

JOBS.json: a list of {"name": str, "lr_kernels": "mix" | one kernel of sr_core.resize.LR_KERNELS,
"bicubic_skip": bool (default true), "train_exclude": [photo, ...] (default none), "config":
{TrialConfig fields}}. Writes OUT_DIR/NAME.json (the config, status, per-epoch
history, seconds) and OUT_DIR/NAME.pt (best weights, as sr_core.infer.save_weights) for every job.
Jobs whose JSON exists are skipped (resumable); no job starts after --deadline seconds.
--cache: a data cache written by sr_core.data.prepare_dataset("embedded", ...), so that machines
without scikit-image's photos train on the very same tensors.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

_DATA = {}
_CACHE: list[str] = []
_START = time.time()


def _data(lr_kernels: str, exclude: tuple[str, ...] = ()):
    from sr_core.data import SRPairs, load_cached, load_dataset
    from sr_core.resize import LR_KERNELS, downscale_with
    key = (lr_kernels, exclude)
    if key not in _DATA:
        data = load_cached(_CACHE[0]) if _CACHE else load_dataset("embedded", progress=lambda line: None)
        train = data.train
        if lr_kernels in LR_KERNELS:  # every train LR by one kernel (sr-search: as before the mix)
            train = SRPairs(downscale_with(train.hr, lr_kernels), train.hr, train.names)
        elif lr_kernels != "mix":
            raise ValueError(f"lr_kernels must be 'mix' or one of {LR_KERNELS}, got {lr_kernels!r}")
        if exclude:  # drop the train patches of some photos (val untouched)
            keep = [i for i, n in enumerate(train.names) if not n.startswith(exclude)]
            train = SRPairs(train.lr[keep], train.hr[keep], tuple(train.names[i] for i in keep))
        _DATA[key] = dataclasses.replace(data, train=train)
    return _DATA[key]


def run_job(job: dict, out: Path) -> str:
    torch.set_num_threads(1)
    from sr_core.infer import save_weights
    from sr_core.train import config_from_dict, train_trial
    path = out / f"{job['name']}.json"
    if path.exists():
        return f"skip {job['name']}"
    config = config_from_dict(job["config"])
    data = _data(job.get("lr_kernels", "mix"), tuple(job.get("train_exclude", ())))
    if not job.get("bicubic_skip", True):  # measure the residual net without its bicubic skip
        import sr_core.train
        from sr_core.models import ResidualSR
        sr_core.train.build_model = lambda arch, b, c: ResidualSR(b, c, bicubic_skip=False)
    t0 = time.perf_counter()
    result = train_trial(config, data, device="cpu")
    record = {"name": job["name"], "lr_kernels": job.get("lr_kernels", "mix"),
              "bicubic_skip": job.get("bicubic_skip", True), "train_exclude": job.get("train_exclude", []),
              "train_images": len(data.train),
              "config": dataclasses.asdict(config), "status": result.status, "best": result.best,
              "history": result.history, "seconds": time.perf_counter() - t0,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    if result.weights is not None:
        save_weights(out / f"{job['name']}.pt", config.arch, config.blocks, config.channels, result.weights)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return f"done {job['name']} {result.status} best val/mse {result.best.get('val/mse', float('nan')):.6f} " \
           f"in {record['seconds']:.0f} s"


def _run(args):
    job, out, deadline = args
    if time.time() - _START > deadline:
        return f"not started (deadline) {job['name']}"
    try:
        return run_job(job, Path(out))
    except Exception as exc:  # one job's failure must not lose the others
        return f"FAILED {job['name']}: {exc!r}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache")
    parser.add_argument("--deadline", type=float, default=float("inf"))
    args = parser.parse_args()
    if args.cache:
        _CACHE.append(args.cache)
    jobs = json.loads(Path(args.jobs).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with mp.get_context("fork").Pool(args.workers, maxtasksperchild=1) as pool:
        for line in pool.imap_unordered(_run, [(job, str(out), args.deadline) for job in jobs]):
            print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
