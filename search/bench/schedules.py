"""`sr-search bench search`: ASHA against the full grid on the embedded data, over several seeds.

Every config of the grid is trained to the end once per seed (its real learning curve), then Ray's own
AsyncHyperBandScheduler decides on those curves in the order Optuna's grid sampler hands the trials
out, 2 at a time. A trial's curve does not depend on whether it is pruned later, so this is what ASHA
would do, at a fraction of the cost of running both.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from search.bench.output import envelope, table, write_json


def _search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", default="demo", help="the grid and training of this study (default demo)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, help="override [train].epochs")
    p.add_argument("--epoch-samples", type=int, help="override [train].epoch_samples (images per epoch)")
    p.add_argument("--grace", type=int, help="override [pruner].grace_period")
    p.add_argument("--rf", type=int, help="override [pruner].reduction_factor")
    p.add_argument("--concurrency", type=int, default=2, help="trials at once in the replay (default 2)")
    p.add_argument("--processes", type=int, default=2, help="processes training the grid (default 2)")
    p.add_argument("--curves", type=Path, help="keep the measured curves here (JSON per seed) and reuse them")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


def _run_search(args) -> int:
    from search.study import load_study
    study = load_study(args.study)
    train = {k: v for k, v in (("epochs", args.epochs),) if v is not None}
    study = study.with_overrides(**train) if train else study
    grace = args.grace or study.pruner.grace_period
    rf = args.rf or study.pruner.reduction_factor
    epoch_samples = args.epoch_samples if args.epoch_samples is not None else study.train.epoch_samples
    seeds = []
    for seed in range(args.seeds):
        curves = _grid_curves(study, seed, epoch_samples, args.processes, args.curves)
        seeds.append({"seed": seed, **replay(study, curves, seed, grace, rf, args.concurrency)})
        print(f"seed {seed}: " + json.dumps({k: v for k, v in seeds[-1].items() if k != "trials"}), flush=True)
    result = {**envelope("search", "cpu", sys.argv), "study": study.name, "grace_period": grace,
              "reduction_factor": rf, "epochs": study.train.epochs, "epoch_samples": epoch_samples,
              "seeds": seeds, **_spread(seeds, "epochs_fraction"), **_spread(seeds, "regret")}
    print(f"\nbench search: {study.name}, {study.grid_size} configs x {study.train.epochs} epochs, "
          f"ASHA grace {grace} rf {rf}, {args.concurrency} at a time, {args.seeds} seeds\n")
    print(table(seeds, [("seed", "seed", "d"), ("grid_best", "grid best val/mse", ".6f"),
                        ("asha_best", "ASHA best", ".6f"), ("regret", "regret", ".2%"),
                        ("epochs_fraction", "epochs", ".1%"), ("finished", "finished", "d")]))
    print(f"\nepochs_fraction {result['epochs_fraction']:.1%} (max {result['epochs_fraction_max']:.1%})   "
          f"regret {result['regret']:.2%} (max {result['regret_max']:.2%})")
    if args.json:
        write_json(args.json, result)
    return 0


def _spread(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows]
    return {key: statistics.mean(values), f"{key}_min": min(values), f"{key}_max": max(values),
            f"{key}_stdev": statistics.pstdev(values)}


def _grid_curves(study, seed: int, epoch_samples: int, processes: int, keep: Path | None) -> dict:
    """Every grid config trained to its end with this seed: run name -> per-epoch val/mse and seconds."""
    path = keep / f"{study.name}-seed{seed}.json" if keep else None
    if path and path.exists():
        return json.loads(path.read_text())
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    from search.engine import prepare
    from search.workdir import Workdir
    with tempfile.TemporaryDirectory(prefix="sr-bench-search-") as tmp:
        cache = prepare(study, Workdir(Path(tmp)), log=lambda *a: None).path
        seeded = dataclasses.replace(study, search=dataclasses.replace(study.search, seed=seed),
                                     train=dataclasses.replace(study.train, epoch_samples=epoch_samples))
        jobs = [seeded.trial_config(point) for point in seeded.grid()]
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
            curves = dict(pool.map(_train_one, [(job, str(cache)) for job in jobs]))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(curves))
    return curves


def _train_one(job_and_cache) -> tuple[str, dict]:
    import torch

    from sr_core.data import load_cached
    from sr_core.train import train_trial
    config, cache = job_and_cache
    torch.set_num_threads(1)
    result = train_trial(config, load_cached(cache), device="cpu")
    return config.run_name, {"val_mse": [h["val/mse"] for h in result.history], "status": result.status,
                             "seconds": [h["epoch_seconds"] for h in result.history]}


def grid_order(study, seed: int) -> list[str]:
    """The run names in the order Optuna's grid sampler hands them out for this seed."""
    import optuna

    from search.tracking import run_name
    from search.tune.searcher import make_sampler, optuna_space
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = dataclasses.replace(study, search=dataclasses.replace(study.search, seed=seed))
    s = optuna.create_study(sampler=make_sampler(grid))
    names = []
    for i in range(grid.num_trials):
        t = s.ask(optuna_space(grid))
        names.append(run_name(t.params))
        if i < grid.num_trials - 1:  # the grid sampler stops the study after the last: not outside optimize()
            s.tell(t, 0.0)
    return names


def replay(study, curves: dict, seed: int, grace: int, rf: int, concurrency: int) -> dict:
    """Ray's AsyncHyperBandScheduler on the measured curves, `concurrency` trials at a time in the
    grid sampler's order, each epoch taking its measured seconds. Returns epochs used and regret."""
    import heapq

    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
    asha = AsyncHyperBandScheduler(time_attr="epoch", metric="val/mse", mode="min", max_t=study.train.epochs,
                                   grace_period=grace, reduction_factor=rf, brackets=1, stop_last_trials=False)
    queue = grid_order(study, seed)
    running: list[tuple[float, int, str, int]] = []  # (time its next epoch ends, tiebreak, name, epoch index)
    clock, order, ran, pruned = 0.0, 0, {}, set()

    def start(name: str, at: float) -> None:
        nonlocal order
        asha.on_trial_add(None, SimpleNamespace(trial_id=name))
        heapq.heappush(running, (at + curves[name]["seconds"][0], order, name, 0))
        order += 1

    while queue and len(running) < concurrency:
        start(queue.pop(0), 0.0)
    while running:
        clock, _, name, i = heapq.heappop(running)
        ran[name] = i + 1
        trial = SimpleNamespace(trial_id=name)
        decision = asha.on_trial_result(None, trial, {"epoch": i + 1, "val/mse": curves[name]["val_mse"][i]})
        if decision == TrialScheduler.STOP and i + 1 < len(curves[name]["val_mse"]):
            pruned.add(name)
        elif i + 1 < len(curves[name]["val_mse"]):
            heapq.heappush(running, (clock + curves[name]["seconds"][i + 1], order, name, i + 1))
            order += 1
            continue
        asha.on_trial_complete(None, trial, {"epoch": i + 1, "val/mse": curves[name]["val_mse"][i]})
        if queue:
            start(queue.pop(0), clock)
    full = sum(len(c["val_mse"]) for c in curves.values())
    finished = [n for n in ran if n not in pruned]
    grid_best = min(min(c["val_mse"]) for c in curves.values())  # every config trained to its end
    asha_best = min(min(curves[n]["val_mse"][: ran[n]]) for n in finished)
    return {"grid_best": grid_best, "asha_best": asha_best, "regret": asha_best / grid_best - 1,
            "epochs_fraction": sum(ran.values()) / full, "finished": len(finished), "trials": len(curves),
            "wall_s": clock}


SUBCOMMAND = ("ASHA against the full grid over seeds: epochs used and regret of ASHA's best",
              _search_arguments, _run_search)
