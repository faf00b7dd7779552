"""`sr-search bench curves`: every config of a grid study trained to its end by the real `train_trial`,
each epoch's val/mse, val/psnr and seconds kept: the learning curves `bench search` replays schedules
on. A curve does not depend on whether a scheduler would have stopped it later, so one grid of curves
answers what any schedule would have spent and found.

The residual study's grid (3 depths x 11 widths x 4 learning rates, 75 epochs) costs ~40 GPU-hours,
so its curves come from a proxy of the same shape that fits a CPU (search/bench/curves/
residual-proxy.toml): small widths, 48 train images per epoch, a fixed val set of 16 patches spread
over the embedded photos. Proxy config (i, j, k) stands for the real config with the same depth,
width and lr index; `bench search` weighs its epochs by that real config's FLOPs.

    sr-search bench curves --study search/bench/curves/residual-proxy.toml --seed 0 \\
        --out search/bench/curves/residual-proxy-seed0.json --processes 2

Configs run in worker processes (1 torch thread each, as a trial with cpus_per_trial = 1); each
finished config is appended to OUT.partial at once, so a kill loses only the configs in progress and
a rerun continues where it stopped. Early stopping is off while recording (patience = epochs): a
replay applies any patience to the curve afterwards, which is exact, since training up to the stop
does not depend on the patience.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from search.bench.output import envelope

VAL_PATCHES = 16  # the proxy's fixed val set: evenly spaced over the embedded val patches
IMAGE_SCALE = 1e7  # each val image's val/mse is kept per epoch as round(mse * IMAGE_SCALE) (5 digits)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, help="a grid study (name or .toml) whose every config is trained")
    p.add_argument("--seed", type=int, default=0, help="the trials' seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="the curves file to write (.json or .json.gz)")
    p.add_argument("--processes", type=int, default=2, help="configs trained at once (default 2)")
    p.add_argument("--val-patches", type=int, default=VAL_PATCHES,
                   help=f"val patches kept, evenly spaced (default {VAL_PATCHES}; 0: the whole val set)")


def _run(args) -> int:
    from search.study import load_study
    if args.processes < 1 or args.val_patches < 0:
        raise ValueError(f"--processes must be >= 1 and --val-patches >= 0, got {args.processes=} {args.val_patches=}")
    study = load_study(args.study)
    if study.grid_size is None:
        raise ValueError(f"{study.source}: bench curves needs a grid study (lists in [space])")
    curves = record(study, args.seed, args.out, args.processes, args.val_patches)
    print(f"bench curves: {len(curves['configs'])} configs x {study.train.epochs} epochs -> {args.out}")
    return 0


def _seeded(study, seed: int):
    """The study with this seed and early stopping off (patience = epochs)."""
    return dataclasses.replace(study, search=dataclasses.replace(study.search, seed=seed),
                               train=dataclasses.replace(study.train, patience=study.train.epochs))


def record(study, seed: int, out: Path, processes: int, val_patches: int) -> dict:
    """Train every config of the grid (resuming from OUT.partial), then write OUT; returns its content."""
    from search.run.engine import prepare
    from search.workdir import Workdir
    seeded = _seeded(study, seed)
    partial = out.with_name(out.name + ".partial")
    done = _read_partial(partial)
    jobs = [seeded.trial_config(point) for point in seeded.grid()]
    todo = [job for job in jobs if job.run_name not in done]
    print(f"bench curves: {len(jobs)} configs, {len(done)} already in {partial.name}, {len(todo)} to train",
          flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sr-bench-curves-") as tmp:
        cache = prepare(seeded, Workdir(Path(tmp)), log=lambda *a: None).path
        out.parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool, open(partial, "a") as log:
            futures = [pool.submit(train_curve, job, str(cache), val_patches) for job in todo]
            for i, future in enumerate(as_completed(futures), start=1):
                name, curve = future.result()
                done[name] = curve
                log.write(json.dumps({"name": name, **curve}) + "\n")
                log.flush()
                print(f"[{(time.monotonic() - started) / 60:6.1f} min] {i}/{len(todo)} {name}: best val/psnr "
                      f"{max(curve['val_psnr']):.2f} dB, {sum(curve['seconds']):.0f} s", flush=True)
    content = {**envelope("curves", "cpu", sys.argv), "commit": _commit(), "study": seeded.name,
               "study_text": study.text, "seed": seed, "epochs": seeded.train.epochs,
               "val_patches": val_patches, "image_scale": IMAGE_SCALE, "configs": {job.run_name: done[job.run_name] for job in jobs}}
    _write(out, content)
    partial.unlink(missing_ok=True)
    return content


def train_curve(config, cache: str, val_patches: int) -> tuple[str, dict]:
    """One config trained to its end on one thread: its per-epoch figures and its shape."""
    import torch

    from sr_core.data import SRPairs, load_cached
    from sr_core.models import flops_per_image
    from sr_core.train import train_trial
    torch.set_num_threads(1)
    data = load_cached(cache)
    if val_patches:
        val = data.val
        keep = sorted({round(i * (len(val) - 1) / max(val_patches - 1, 1)) for i in range(val_patches)})
        data = dataclasses.replace(data, val=SRPairs(val.lr[keep], val.hr[keep], tuple(val.names[i] for i in keep)))
    result = train_trial(config, data, device="cpu")
    rounded = lambda key, digits: [round(float(h[key]), digits) for h in result.history]
    return config.run_name, {
        "arch": config.arch, "blocks": config.blocks, "channels": config.channels, "lr": config.lr,
        "status": result.status, "flops_per_image": flops_per_image(config.arch, config.blocks, config.channels),
        "val_mse": rounded("val/mse", 8), "val_psnr": rounded("val/psnr", 4), "seconds": rounded("epoch_seconds", 3),
        "val_mse_images": [[round(v * IMAGE_SCALE) for v in epoch["val/mse"]] for epoch in result.epoch_images]}


def image_mse(curve: dict, epoch: int):
    """Each val image's val/mse at `epoch` (1-based) of a recorded curve, or None when the curves file
    predates per-image records."""
    rows = curve.get("val_mse_images")
    return None if not rows else [v / IMAGE_SCALE for v in rows[epoch - 1]]


def _read_partial(path: Path) -> dict:
    """The configs a killed run finished: one JSON line each (a torn last line is dropped)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row.pop("name")] = row
    return done


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _write(path: Path, content: dict) -> None:
    text = json.dumps(content, separators=(",", ":"))
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".gz":
        with gzip.open(tmp, "wt") as f:
            f.write(text)
    else:
        tmp.write_text(text)
    tmp.replace(path)


def load_curves(path: Path) -> dict:
    """A curves file written by `bench curves` (.json or .json.gz); a StudyError names a file that is
    missing or not one (the CLI exits 2)."""
    from search.errors import StudyError
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            recorded = json.load(f)
    except FileNotFoundError:
        raise StudyError(f"{path}: curves file not found (write one with sr-search bench curves)") from None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path}: not a curves file of bench curves ({exc})") from None
    if not isinstance(recorded, dict) or "configs" not in recorded:
        raise StudyError(f"{path}: not a curves file of bench curves (no 'configs')")
    return recorded


def load_partial(path: Path, study_name: str, seed: int) -> dict:
    """What a `bench curves` run that has not finished yet has in OUT.partial, as a curves file of the
    largest complete sub-grid it holds (`subgrid`: the space's values kept), so a schedule can be
    replayed on the configs already trained; a StudyError names a file or study that does not fit."""
    from search.errors import StudyError
    from search.study import load_study
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: partial curves file not found")
    study = _seeded(load_study(study_name), seed)
    if study.grid_size is None:
        raise StudyError(f"{study.source}: a partial curves file needs the grid study it was recorded from")
    done = _read_partial(path)
    names = {study.trial_config(point).run_name: point for point in study.grid()}
    unknown = sorted(set(done) - set(names))
    if unknown:
        raise StudyError(f"{path}: {len(unknown)} configs are not in {study.source}'s grid, e.g. {unknown[0]}")
    subgrid = complete_subgrid({k: list(v) for k, v in study.space.items()}, [names[n] for n in done])
    if not subgrid:
        raise StudyError(f"{path}: its {len(done)} configs hold no complete sub-grid of {study.source}")
    kept = {n: done[n] for n, point in names.items() if n in done and all(point[k] in subgrid[k] for k in subgrid)}
    return {"study": study.name, "study_text": study.text, "seed": seed, "epochs": study.train.epochs,
            "configs": kept, "subgrid": subgrid, "grid_configs": len(names), "recorded_configs": len(done)}


def complete_subgrid(space: dict[str, list], points: list[dict]) -> dict[str, list] | None:
    """The space with values dropped until every config of what is left is among `points` (a greedy
    largest complete product): each step drops the value whose configs are most often missing, on a tie
    the one that drops fewest configs. None when nothing is left."""
    have = {tuple(sorted(p.items())) for p in points}
    space = {k: list(v) for k, v in space.items()}
    while True:
        grid: list[dict] = [{}]
        for key, values in space.items():
            grid = [{**g, key: v} for g in grid for v in values]
        missing = [g for g in grid if tuple(sorted(g.items())) not in have]
        if not missing:
            return space
        share = {(k, v): sum(1 for g in missing if g[k] == v) * len(values) / len(grid)
                 for k, values in space.items() for v in values}
        key, value = max(share, key=lambda kv: (share[kv], len(space[kv[0]])))
        space[key].remove(value)
        if not space[key]:
            return None


SUBCOMMAND = ("train every config of a grid study to its end: the learning curves bench search replays",
              _arguments, _run)
