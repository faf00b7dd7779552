"""`sr-search bench overhead`: what the study machinery costs per trial (it needs Ray, unlike `bench
train` and `bench data`): a study of N tiny trials through the real engine (Ray + Optuna + MLflow),
the slot time not spent inside the trials' epochs, per trial; and the same for a demo study already
run in a workdir, as a fraction of its wall time.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
from pathlib import Path

from search.bench.output import envelope, table, write_json
from sr_core.contract import DEFAULT_WORKDIR, MLFLOW_DB

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
    if args.trials < 1 or args.epochs < 1:
        raise ValueError(f"--trials and --epochs must be >= 1, got {args.trials=} {args.epochs=}")
    result = {**envelope("overhead", "cpu", sys.argv), "tiny": _tiny_study(args.trials, args.epochs)}
    demo = args.demo_workdir or (Path(DEFAULT_WORKDIR) if (Path(DEFAULT_WORKDIR) / MLFLOW_DB).exists() else None)
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
    from search.run.engine import RunOptions, run_study
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


SUBCOMMAND = ("a study of N tiny trials (and a demo run): orchestration overhead per trial",
              _overhead_arguments, _run_overhead)
