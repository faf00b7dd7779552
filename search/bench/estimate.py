"""`sr-search bench estimate`: a finished study's cost estimate against what it spent, per trial and in
total, device-hours and wall time.

    sr-search bench estimate --study demo [--workdir sr-runs] [--json FILE]

The study run keeps its estimate (ESTIMATE_ARTIFACT: device-seconds by part, the wall, each config's
predicted epoch from the measured cost model, search.run.cost_model). Each run (trials, audit, final) is
set against its own epochs at its config's predicted epoch seconds (the final step's at its threads'
speedup); each part and the total against the runs' `wall_seconds` (Tune's training time, what
`actual/device_hours` sums on a CPU), the wall against `actual/wall_hours`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from search.bench.output import envelope, table, write_json


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, help="a study run to completion in the workdir")
    p.add_argument("--workdir", type=Path, default=Path("sr-runs"), help="its workdir (default ./sr-runs)")
    p.add_argument("--tracking-uri", help="its MLflow store, when not the workdir's")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")


def _run(args) -> int:
    from search.workdir import Workdir
    uri = Workdir(args.workdir).tracking_uri(args.tracking_uri)
    result = {**envelope("estimate", "cpu", sys.argv), **compare(uri, args.study)}
    print(format_result(result))
    if args.json:
        write_json(args.json, result)
    return 0


def compare(tracking_uri: str, study: str) -> dict:
    """Predicted against actual for the study's latest run: rows per run, parts and totals."""
    from mlflow.tracking import MlflowClient

    from search import tracking
    from search.errors import StudyError
    from sr_core.contract import ESTIMATE_ARTIFACT, EPOCHS_RUN, FINAL_SUFFIX, ROLE_AUDIT, ROLE_FINAL, WALL_SECONDS
    client = MlflowClient(tracking_uri)
    experiment_id, parent = tracking.require_study_run(client, study)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            estimate = json.loads(Path(client.download_artifacts(parent, ESTIMATE_ARTIFACT, tmp)).read_text())
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            raise StudyError(f"study {study!r}: its run keeps no {ESTIMATE_ARTIFACT} (run before the measured "
                             "cost model, or with --tflops)") from None
    per_epoch, seconds = estimate["epoch_seconds"], estimate["seconds"]
    speedup = estimate.get("speedup", 1.0)
    rows = []
    for role, part in (("trial", "search"), (ROLE_AUDIT, "audit"), (ROLE_FINAL, "final")):
        for run in tracking.study_trials(client, experiment_id, parent, role):
            name = run["name"].removesuffix(FINAL_SUFFIX).removesuffix("-audit")
            epochs = float(run.get(EPOCHS_RUN) or 0)
            if role == "audit":  # it trained from the epoch it was stopped at
                epochs -= float(run.get("audit.stopped_at") or 0)
            predicted = per_epoch.get(name, float("nan")) * epochs / (speedup if role == ROLE_FINAL else 1.0)
            rows.append({"run": run["name"], "part": part, "epochs": epochs, "predicted_s": predicted,
                         "actual_s": float(run.get(WALL_SECONDS) or 0)})
    parts = []
    for part in ("search", "audit", "final"):
        mine = [r for r in rows if r["part"] == part]
        actual = sum(r["actual_s"] for r in mine)
        parts.append({"part": part, "estimate_s": seconds.get(part, 0.0) + (seconds.get("questions", 0.0)
                                                                            if part == "search" else 0.0),
                      "per_run_s": sum(r["predicted_s"] for r in mine), "actual_s": actual})
    actual_hours = tracking.study_metric(client, parent, "actual/wall_hours") or 0.0
    total = {"device_hours_estimate": estimate["device_hours"],
             "device_hours_actual": sum(r["actual_s"] for r in rows) / 3600,
             "wall_hours_estimate": estimate["wall_hours"], "wall_hours_actual": actual_hours,
             "probe_seconds": estimate.get("probe_seconds", 0.0)}
    for key in ("device_hours", "wall_hours"):
        actual = total[f"{key}_actual"]
        total[f"{key}_ratio"] = total[f"{key}_estimate"] / actual if actual else float("nan")
    return {"study": study, "rows": rows, "parts": parts, "total": total}


def format_result(result: dict) -> str:
    rows = [{**r, "ratio": r["predicted_s"] / r["actual_s"] if r["actual_s"] else float("nan")}
            for r in result["rows"]]
    parts = [{**p, "ratio": p["estimate_s"] / p["actual_s"] if p["actual_s"] else float("nan")}
             for p in result["parts"]]
    t = result["total"]
    return (f"bench estimate: {result['study']}: the estimate before it ran against what it spent\n\n"
            + table(rows, [("run", "run", ""), ("part", "part", ""), ("epochs", "epochs", ".0f"),
                           ("predicted_s", "predicted s", ".1f"), ("actual_s", "actual s", ".1f"),
                           ("ratio", "x actual", ".2f")])
            + "\n\n" + table(parts, [("part", "part", ""), ("estimate_s", "estimate s", ".1f"),
                                     ("per_run_s", "runs' epochs at the model s", ".1f"),
                                     ("actual_s", "actual s", ".1f"), ("ratio", "x actual", ".2f")])
            + f"\n\ndevice-hours: {t['device_hours_estimate']:.4f} estimated, {t['device_hours_actual']:.4f} spent "
            f"(x{t['device_hours_ratio']:.2f}); wall: {t['wall_hours_estimate']:.4f} h estimated, "
            f"{t['wall_hours_actual']:.4f} h actual (x{t['wall_hours_ratio']:.2f}); the probe took "
            f"{t['probe_seconds']:.1f} s")


SUBCOMMAND = ("a finished study's cost estimate against what it spent, per run and in total", _arguments, _run)
