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
    """What the orchestration cost a finished study's search, from its trials' own records (role `trial`
    only: the audit's and the final step's runs are not the search's):

    - each epoch's running interval is [its logged time - its epoch_seconds, its logged time]; slot
      occupancy and the concurrency come from these intervals and the start and resume windows below, so
      a paused trial holds no slot but one being started or restored does;
    - the search's span is from the first trial's start to the last trial's last epoch;
    - start: a trial's first epoch began this long after its run was opened (Ray's actor, the data, the
      first checkpoint folder);
    - resume: after a rung, the trial that resumed first began its next epoch this long after the rung's
      last epoch ended (the decision, Optuna's record of it, the restore from the checkpoint); later ones
      wait for a slot as well, which is the schedule's, not orchestration;
    - overhead = starts + resumes, against the span x the concurrency; the rest of the idle slot time
      (waiting at a rung for the slowest trial, the tail once no trial is left) is shown apart."""
    from mlflow.tracking import MlflowClient

    from search.tracking import latest_study_run, study_runs
    from sr_core.contract import ROLE_TRIAL, TAG_ROLE
    client = MlflowClient(tracking_uri)
    found = latest_study_run(client, study)
    if found is None:
        raise ValueError(f"no runs of study {study!r} in {tracking_uri}")
    trials = [t for t in study_runs(client, *found) if t.data.tags.get(TAG_ROLE, ROLE_TRIAL) == ROLE_TRIAL]
    epochs = {t.info.run_id: sorted(((m.step, m.timestamp / 1e3 - m.value, m.timestamp / 1e3) for m in
                                     client.get_metric_history(t.info.run_id, "epoch_seconds")))
              for t in trials}
    if not any(epochs.values()):
        raise ValueError(f"study {study!r} has no timed epochs")
    return {"study": study, **overhead_figures({t.info.run_id: t.info.start_time / 1e3 for t in trials}, epochs)}


def overhead_figures(opened_at: dict[str, float], epochs: dict[str, list]) -> dict:
    """The figures from each trial's opening time and its epochs' (step, start, end) rows."""
    intervals = [(a, b) for rows in epochs.values() for _, a, b in rows]
    first = min(opened_at.values())
    span = max(b for _, b in intervals) - first
    opened = [(opened_at[k], rows[0][1]) for k, rows in epochs.items() if rows]
    starts = [b - a for a, b in opened]
    waits = _resume_windows(epochs)
    resumes = [b - a for a, b in waits]
    # a trial being started or restored holds its slot as a running epoch does: without these windows, two
    # trials set up side by side whose short epochs never overlap would count one slot for two starts
    slots = _concurrency(intervals + [(a, b) for a, b in opened if b > a] + waits)
    compute = sum(b - a for a, b in intervals)
    overhead = sum(max(x, 0.0) for x in starts) + sum(resumes)
    return {"trials": len(opened_at), "concurrency": slots, "wall_s": span, "compute_s": compute,
            "start_s_per_trial": sum(starts) / max(len(starts), 1),
            "resume_s": sum(resumes) / max(len(resumes), 1), "resumes": len(resumes),
            "idle_other_s": max(span * slots - compute - overhead, 0.0),
            "overhead_s_per_trial": overhead / max(len(opened_at), 1), "overhead_fraction": overhead / (span * slots)}


def _resumes(epochs: dict[str, list]) -> list[float]:
    """Per rung, the first resumed trial's wait from the rung's last epoch end to its next epoch's start."""
    return [b - a for a, b in _resume_windows(epochs)]


def _resume_windows(epochs: dict[str, list]) -> list[tuple[float, float]]:
    """Per rung, (the rung's last epoch end, the first resumed trial's next epoch start)."""
    by_rung: dict[int, list[tuple[float, float]]] = {}  # epoch -> (end of that epoch, start of the next)
    last_end: dict[int, float] = {}
    for rows in epochs.values():
        for (step, _, end), (_, start, _) in zip(rows, rows[1:]):
            by_rung.setdefault(step, []).append((end, start))
        for step, _, end in rows:
            last_end[step] = max(last_end.get(step, 0.0), end)
    out = []
    for step, pairs in by_rung.items():
        waits = [start - end for end, start in pairs]
        if max(waits) < 1.0:  # no pause here: trials went straight on
            continue
        out.append((last_end[step], max(min(start for _, start in pairs), last_end[step])))
    return out


def _concurrency(intervals: list[tuple[float, float]]) -> int:
    """Epochs that ran at once: the most whose running intervals overlap (paused trials hold no slot)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
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
    print("bench overhead: the search's orchestration (Ray + Optuna + MLflow): trial starts and resumes after "
          "a rung, against its span x the trials at once; slots idle at a rung or in the tail shown apart\n")
    print(table(rows, [("study", "study", ""), ("trials", "trials", "d"), ("concurrency", "at once", "d"),
                       ("wall_s", "search s", ".1f"), ("compute_s", "in epochs s", ".1f"),
                       ("start_s_per_trial", "start s/trial", ".2f"), ("resumes", "rungs resumed", "d"),
                       ("resume_s", "resume s", ".2f"), ("idle_other_s", "other idle slot-s", ".1f"),
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
