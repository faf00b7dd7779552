"""Benchmarks of the study machinery (they need Ray, unlike `bench train` and `bench data`).

    bench overhead   a study of N tiny trials through the real engine (Ray + Optuna + MLflow): the slot
                     time not spent inside the trials' epochs, per trial; and the same for a demo study
                     already run in a workdir, as a fraction of its wall time
    bench search     ASHA against the full grid on the embedded data, over several seeds: every config of
                     the grid is trained to the end once per seed (its real learning curve), then Ray's own
                     AsyncHyperBandScheduler decides on those curves in the order Optuna's grid sampler
                     hands the trials out, 2 at a time. A trial's curve does not depend on whether it is
                     pruned later, so this is what ASHA would do, at a fraction of the cost of running both.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

OVERHEAD_STUDY = """
[study]
name = "overhead"
data = "{data}"
[search]
sampler = "grid"
[space]
arch = "residual"
blocks = {blocks}
channels = [4]
lr = {lrs}
eta_min = 1e-5
[train]
epochs = {epochs}
batch_size = 4
epoch_samples = 4
patience = 100
[pruner]
kind = "none"
[resources]
cpus_per_trial = 1
gpus_per_trial = 0
"""


# -- bench overhead ---------------------------------------------------------------------------------
def _overhead_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=12, help="tiny trials in the study (default 12)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    p.add_argument("--demo-workdir", type=Path, help="also measure a study already run in this workdir "
                   "(default: ./sr-runs when it holds a demo run)")
    p.add_argument("--demo-study", default="demo")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


def study_overhead(tracking_uri: str, study: str) -> dict:
    """Slot time a finished study spent outside its trials' epochs: (wall x concurrency - sum of the
    epochs' own seconds - slots idle after the last trial started) / trials. Wall is Tune's fit.
    Includes Ray's actor starts, Optuna and MLflow writes, Tune's checkpoint copies, the driver's
    artifact logging, teardown. The idle tail is reported apart (`tail_idle_s`)."""
    from mlflow.tracking import MlflowClient

    from search.tracking import latest_study_run, study_runs
    client = MlflowClient(tracking_uri)
    found = latest_study_run(client, study)
    if found is None:
        raise ValueError(f"no runs of study {study!r} in {tracking_uri}")
    parent = client.get_run(found[1])
    wall = parent.data.metrics["actual/wall_hours"] * 3600
    trials = study_runs(client, *found)
    compute = sum(m.value for t in trials for m in client.get_metric_history(t.info.run_id, "epoch_seconds"))
    slots = _concurrency(parent.data.params, wall, trials)
    tail = _tail_idle(trials, slots)
    overhead = wall * slots - compute - tail
    return {"study": study, "trials": len(trials), "concurrency": slots, "wall_s": wall, "compute_s": compute,
            "tail_idle_s": tail, "overhead_s_per_trial": overhead / max(len(trials), 1),
            "overhead_fraction": overhead / (wall * slots)}


def _tail_idle(trials, slots: int) -> float:
    """Slot-seconds left idle after the last trial started: no trial was left to run, so that is the
    grid's tail, not orchestration. Counted from the trials' own start and end times."""
    spans = [(t.info.start_time / 1e3, (t.info.end_time or t.info.start_time) / 1e3) for t in trials]
    if not spans:
        return 0.0
    last_start, end = max(s for s, _ in spans), max(e for _, e in spans)
    busy = sum(max(0.0, e - max(s, last_start)) for s, e in spans)
    return max(0.0, slots * (end - last_start) - busy)


def _concurrency(params: dict, wall: float, trials) -> int:
    """Trials that ran at once: the most whose [start, end] intervals overlap (what the study had)."""
    events = sorted([(t.info.start_time, 1) for t in trials] + [(t.info.end_time or t.info.start_time, -1)
                                                                 for t in trials])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return max(most, 1)


def _run_overhead(args) -> int:
    from search.bench import envelope, table, write_json
    if args.trials < 1 or args.epochs < 1:
        raise ValueError(f"--trials and --epochs must be >= 1, got {args.trials=} {args.epochs=}")
    result = {**envelope("overhead", "cpu", sys.argv), "tiny": _tiny_study(args.trials, args.epochs)}
    demo = args.demo_workdir or (Path("sr-runs") if (Path("sr-runs") / "mlflow.db").exists() else None)
    if demo is not None:
        from search.workdir import Workdir
        result["demo"] = study_overhead(Workdir(demo).mlflow_uri, args.demo_study)
    rows = [{"study": k, **v} for k, v in result.items() if k in ("tiny", "demo")]
    print("bench overhead: slot time outside the trials' epochs (Ray + Optuna + MLflow), "
          "not counting slots idle once no trial was left to start\n")
    print(table(rows, [("study", "study", ""), ("trials", "trials", "d"), ("concurrency", "at once", "d"),
                       ("wall_s", "wall s", ".1f"), ("compute_s", "in epochs s", ".1f"),
                       ("tail_idle_s", "idle tail slot-s", ".1f"),
                       ("overhead_s_per_trial", "overhead s/trial", ".2f"),
                       ("overhead_fraction", "fraction", ".1%")]))
    if args.json:
        write_json(args.json, result)
    return 0


def _tiny_study(trials: int, epochs: int) -> dict:
    from search.engine import RunOptions, run_study
    from search.study import parse_study
    from search.workdir import Workdir
    blocks = list(range(math.ceil(trials / 2)))
    with tempfile.TemporaryDirectory(prefix="sr-bench-overhead-") as tmp:
        photos = _write_photos(Path(tmp) / "photos")
        text = OVERHEAD_STUDY.format(data=photos, blocks=blocks, lrs=[1e-3, 2e-3][: min(trials, 2)],
                                     epochs=epochs)
        study = parse_study(text, "bench overhead", "overhead")
        with contextlib.redirect_stdout(io.StringIO()):
            run_study(study.with_overrides(trials=trials) if study.num_trials != trials else study,
                      RunOptions(workdir=Path(tmp) / "w", tflops=1.0, report=False), log=lambda *a: None)
        return study_overhead(Workdir(Path(tmp) / "w").mlflow_uri, "overhead")


def _write_photos(folder: Path) -> Path:
    """Two real photos (scikit-image's) as an HR-only folder: 8 train / 4 val patches, epochs of a second."""
    from PIL import Image
    from skimage import data as sk
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(sk, name)()[:256, :256]).save(folder / f"{name}.png")
    return folder


# -- bench search -----------------------------------------------------------------------------------
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
    from search.bench import envelope, table, write_json
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

    from search.engine import Workdir, prepare
    with tempfile.TemporaryDirectory(prefix="sr-bench-search-") as tmp:
        cache, _, _ = prepare(study, Workdir(Path(tmp)), log=lambda *a: None)
        jobs = [{**config, "seed": seed, "epochs": study.train.epochs, "batch_size": study.train.batch_size,
                 "grad_clip": study.train.grad_clip, "patience": study.train.patience,
                 "augment": study.train.augment, "epoch_samples": epoch_samples or None}
                for config in study.grid()]
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
            curves = dict(pool.map(_train_one, [(job, str(cache)) for job in jobs]))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(curves))
    return curves


def _train_one(job_and_cache) -> tuple[str, dict]:
    import torch

    from sr_core.data import load_cached
    from sr_core.train import TrialConfig, train_trial
    job, cache = job_and_cache
    torch.set_num_threads(1)
    config = TrialConfig(**job)
    result = train_trial(config, load_cached(cache), device="cpu")
    return config.run_name, {"val_mse": [h["val/mse"] for h in result.history], "status": result.status,
                             "seconds": [h["epoch_seconds"] for h in result.history]}


def grid_order(study, seed: int) -> list[str]:
    """The run names in the order Optuna's grid sampler hands them out for this seed."""
    import optuna

    from search.tracking import run_name
    from search.tuner import optuna_space, sampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = dataclass_replace_seed(study, seed)
    s = optuna.create_study(sampler=sampler(grid))
    names = []
    for i in range(grid.num_trials):
        t = s.ask(optuna_space(grid))
        names.append(run_name(t.params))
        if i < grid.num_trials - 1:  # the grid sampler stops the study after the last: not outside optimize()
            s.tell(t, 0.0)
    return names


def dataclass_replace_seed(study, seed: int):
    import dataclasses
    return dataclasses.replace(study, search=dataclasses.replace(study.search, seed=seed))


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


SUBCOMMANDS = {
    "overhead": ("a study of N tiny trials (and a demo run): orchestration overhead per trial",
                 _overhead_arguments, _run_overhead),
    "search": ("ASHA against the full grid over seeds: epochs used and regret of ASHA's best",
               _search_arguments, _run_search),
}
