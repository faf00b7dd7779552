"""What a study says when its trials have ended: the statuses, the best trial (one rule:
`search.tracking.best_of`), the actual cost, the best model on photos from outside scikit-image, the
study run's description in the MLflow UI, and the HTML report.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from search import milestones, tracking
from search.run.estimate import Estimate
from search.study import Study
from sr_core.contract import (BEST_WEIGHTS, FINAL_FROM_AUDIT, FINAL_FROM_SEARCH, FINISHED, ROLE_AUDIT, ROLE_FINAL,
                              TAG_FINAL_FROM, TAG_FINAL_FROM_RUN, TAG_GPUS, WALL_SECONDS, summary_key)


@dataclass
class StudyOutcome:
    study: str
    estimate: Estimate
    parent_run_id: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    best: dict | None = None
    report_path: Path | None = None
    wall_seconds: float = 0.0
    baseline_psnr: float | None = None
    outside: dict[str, float] = field(default_factory=dict)  # LR kernel -> gain over bicubic (dB)
    final: dict | None = None  # the final step's run (study_trials row), when it ran to its end
    final_from: str = ""  # where its configuration came from (TAG_FINAL_FROM), "" without a final
    final_from_name: str = ""  # the name of the trial or audit run it came from
    outside_search: dict[str, float] = field(default_factory=dict)  # the search's best, beside a final
    audit: str = ""  # the pruning audit's verdict (audit_line), "" without one
    noise: dict = field(default_factory=dict)  # comparisons with their 95% intervals (noise_comparisons)
    device_hours: float = 0.0  # what the study's runs spent (actual/device_hours)


def finish(session, outcome: StudyOutcome, log) -> StudyOutcome:
    """Statuses, the best trial, actual cost, the report: written to the study run, returned."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(session.tracking_uri)
    study, state = session.study, session.state
    parent = state.parent_run_id
    trials = tracking.study_trials(client, state.experiment_id, parent)
    outcome.statuses = dict(Counter(t["status"] for t in trials))
    outcome.best = tracking.best_of(trials, study.search.metric, study.search.direction)
    outcome.wall_seconds = state.wall_seconds
    outcome.baseline_psnr = tracking.study_metric(client, parent, "bicubic/val_psnr")
    audits = tracking.study_trials(client, state.experiment_id, parent, ROLE_AUDIT)
    finals = tracking.study_trials(client, state.experiment_id, parent, ROLE_FINAL)
    # Every run's time: the search's trials, the audit's and the final step's, each times the share of
    # a device Ray placed it with (ray.gpus; a whole slot on a CPU), as the estimate counts them.
    outcome.device_hours = sum(float(t.get(WALL_SECONDS) or 0) * gpu_weight(t)
                               for t in trials + audits + finals) / 3600
    tracking.log_values(client, parent, {"actual/device_hours": outcome.device_hours,
                                         "actual/wall_hours": outcome.wall_seconds / 3600})
    outcome.final = tracking.final_of(client, state.experiment_id, parent)
    if outcome.final:
        outcome.final_from, outcome.final_from_name = final_source(client, outcome.final, trials + audits)
    images = {r["run_id"]: tracking.val_images(client, r["run_id"])
              for r in trials + audits + ([outcome.final] if outcome.final else []) if r["status"] in FINISHED}
    bicubic = tracking.val_images(client, parent)
    outcome.noise = noise_comparisons(trials, outcome.best, outcome.final, images, bicubic, study.search.metric,
                                      study.search.direction)
    if audits:
        outcome.audit = audit_line(audits, outcome.best, study, images)
        log(f"audit        : {outcome.audit}")
    if outcome.best:
        tracking.set_tags(client, parent, {"best_run_id": outcome.best["run_id"]})
        if outcome.final:
            # The model users take away (predict's) is the final one: outside/* is its; the search's
            # best is measured too, under outside_search/*, so the final step's gain shows.
            tracking.set_tags(client, parent, {"final_run_id": outcome.final["run_id"]})
            outcome.outside = _outside_photos(client, parent, outcome.final, "outside", "final model", log)
            outcome.outside_search = _outside_photos(client, parent, outcome.best, "outside_search",
                                                     "search's best", log)
        else:
            outcome.outside = _outside_photos(client, parent, outcome.best, "outside", "best model", log)
    tracking.set_tags(client, parent, {"mlflow.note.content": _description(study, trials, outcome)})
    tracking.set_status(client, parent, "completed")
    if session.opts.report:
        milestones.reached("report")
        outcome.report_path = write_report(session.tracking_uri, [study.name],
                                           session.workdir.report_path(study.name), log)
        tracking.log_file(client, parent, outcome.report_path)
    return outcome


def gpu_weight(run: dict) -> float:
    """The share of a device a run held: the GPU fraction Ray placed it with, a whole slot on a CPU."""
    try:
        gpus = float(run.get(TAG_GPUS) or 0)
    except ValueError:
        gpus = 0.0
    return gpus if gpus > 0 else 1.0


def audit_line(audits: list[dict], best: dict | None, study: Study, images: dict) -> str:
    """The pruning audit's verdict, the report's sentence (reports.verdict): did a pruned trial, resumed
    to the full budget, beat the search's best beyond the val set's noise, and what each trained."""
    from reports.verdict import pruning_sentence, schedule_words
    metric, mode = study.search.metric, study.search.direction
    key = summary_key(metric)

    def row(r: dict) -> dict:
        return {"name": r["name"], "value": float(r[key]), "images": (images.get(r["run_id"]) or {}).get(metric),
                "stopped_at": r.get("audit.stopped_at"), "rank": r.get("audit.rank"),
                "pruned": r.get("audit.pruned"), "epochs_run": r.get("epochs_run")}
    done = [row(a) for a in audits if a["status"] in FINISHED and a.get(key) is not None]
    if not done:
        return f"{len(audits)} pruned trial(s) resumed; none ran to its end"
    rungs = [r for r in study.rungs() if r < study.train.epochs]  # the last epoch ends trials, it decides nothing
    schedule = schedule_words(study.schedule, rungs, study.pruner.reduction_factor, study.pruner.insure)
    return pruning_sentence(study.name, schedule, row(best) if best else None, done, [], None, 0, metric, mode,
                            study.train.epochs)


def noise_comparisons(trials: list[dict], best: dict | None, final: dict | None, images: dict,
                      bicubic: dict | None, metric: str, mode: str) -> dict:
    """What `run` states, each with its 95% paired bootstrap interval over the val images (reports.noise):
    the best against bicubic and against the runner-up, the configs tied with the best, the final model
    against the search's best and against bicubic. Empty where per-image values are missing."""
    from reports.noise import gain, tied_with_best
    key, sign = summary_key(metric), (1.0 if mode == "min" else -1.0)

    def of(run: dict | None):
        return (images.get(run["run_id"]) or {}).get(metric) if run else None
    out: dict = {}
    base = (bicubic or {}).get(metric)
    if best is None or of(best) is None:
        return out
    if base is not None and len(base) == len(of(best)):
        out["best_vs_bicubic"] = gain(of(best), base, metric, mode)
    done = sorted((t for t in trials if t["status"] in FINISHED and of(t) is not None and t.get(key) is not None),
                  key=lambda t: sign * float(t[key]))
    runner = next((t for t in done if t["run_id"] != best["run_id"]), None)
    if runner is not None:
        out["runner_up"] = (runner["name"], gain(of(best), of(runner), metric, mode))
        out["tied"] = list(tied_with_best({t["name"]: of(t) for t in done}, best["name"], metric, mode))
    if final is not None and of(final) is not None:
        out["final_vs_best"] = gain(of(final), of(best), metric, mode)
        if base is not None and len(base) == len(of(final)):
            out["final_vs_bicubic"] = gain(of(final), base, metric, mode)
    return out


def final_source(client, final: dict, rows: list[dict]) -> tuple[str, str]:
    """(TAG_FINAL_FROM of the final run, the name of the run it came from among `rows`, "" if none):
    a final run without the tag (older studies) trained the search's best."""
    tags = client.get_run(final["run_id"]).data.tags
    origin = tags.get(TAG_FINAL_FROM) or FINAL_FROM_SEARCH
    names = {r["run_id"]: r["name"] for r in rows}
    return origin, names.get(tags.get(TAG_FINAL_FROM_RUN, ""), "")


def _final_origin(outcome: StudyOutcome) -> str:
    """Which configuration the final step trained, in words."""
    if outcome.final_from == FINAL_FROM_AUDIT:
        return (f"the configuration of the audited trial {outcome.final_from_name or '(unknown)'} (a pruned "
                "trial resumed to the full budget that ended better than the search's best)")
    return "the search's best configuration"


def _outside_photos(client, parent: str, run: dict, prefix: str, label: str, log) -> dict[str, float]:
    """A run's model on photos from outside scikit-image, per LR kernel (sr_core.generalise): what a
    user's own photos will see. Logged on the study run as <prefix>/<kernel>/{gain_db,model_psnr,
    bicubic_psnr}; a few seconds on a CPU."""
    from sr_core.generalise import generalisation
    with tempfile.TemporaryDirectory() as tmp:
        scores = generalisation(tracking.download(client, run["run_id"], BEST_WEIGHTS, tmp))
    tracking.log_values(client, parent, {f"{prefix}/{k}/{m}": getattr(v, m) for k, v in scores.items()
                                         for m in ("gain_db", "model_psnr", "bicubic_psnr")})
    gains = {k: v.gain_db for k, v in scores.items()}
    log(f"outside      : {label} vs bicubic on photos outside scikit-image, by LR kernel: "
        + ", ".join(f"{k} {g:+.2f} dB" for k, g in gains.items()) + f" ({run['name']})")
    return gains


def _description(study: Study, trials: list[dict], outcome: StudyOutcome) -> str:
    """The parent run's description in the MLflow UI: the study, its trials, the best, the gain."""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(outcome.statuses.items()))
    text = f"**{study.name}**: {study.description}\n\n{len(trials)} trials ({counts})."
    if outcome.best:
        b = outcome.best
        gain = ""
        if outcome.baseline_psnr is not None and b.get("best/val_psnr") is not None:
            gain = f", {float(b['best/val_psnr']) - outcome.baseline_psnr:+.2f} dB over bicubic"
        metric = study.search.metric
        text += (f"\n\nBest: **{b['name']}**, val/psnr {float(b.get('best/val_psnr', float('nan'))):.2f} dB"
                 f"{gain} ({metric} {float(b[summary_key(metric)]):.5g}).")
        if outcome.final:
            f = outcome.final
            psnr = float(f.get("best/val_psnr", float("nan")))
            text += (f"\n\nFinal model: **{f['name']}**, {_final_origin(outcome)} trained "
                     f"{int(float(f.get('epochs_run', 0)))} epochs: val/psnr {psnr:.2f} dB"
                     + (f", {psnr - outcome.baseline_psnr:+.2f} dB over bicubic"
                        if outcome.baseline_psnr is not None else "") + ".")
        if outcome.outside:
            text += (f" {'The final' if outcome.final else 'The best'} model on photos from outside scikit-image: "
                     + ", ".join(f"{g:+.2f} dB ({k} LR)" for k, g in outcome.outside.items()) + ".")
    return text


def write_report(tracking_uri: str, studies: list[str], out: Path, log=print) -> Path:
    """The HTML report of the studies (reports.build_report), logged by path."""
    from reports import build_report
    path = build_report(tracking_uri, studies, out)
    log(f"report       : {path}")
    return path
