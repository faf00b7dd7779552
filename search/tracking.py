"""MLflow tracking: the one module that writes to MLflow (from the Ray driver only), and the reads
the search needs back. docs/tracking-schema.md is the contract; its vocabulary is `sr_core.contract`,
which the report reads with.

The parent run is the study; each Tune trial is a child run tagged `mlflow.parentRunId` (MLflow's
nesting only works inside one process). The driver's Tune callback (search/tune/callback.py) calls
the trial functions here; `run`, `status`, `predict` and `evaluate` call the study ones.
"""
from __future__ import annotations

import base64
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from search.errors import StudyError, TrackingError
from search.redaction import mask
from sr_core.contract import (ARCH_PARAMS, AUDIT_SUFFIX, AUDIT_TAGS, CROP_METRICS, CROPS_MANIFEST, EPOCH_METRICS, EPOCHS_RUN,
                              EXPERIMENT, EXPERIMENT_TAGS, FINAL_SUFFIX, FINISHED, MLFLOW_STATE, OBJECTIVE,
                              OBJECTIVE_MODE, ROLE_AUDIT, ROLE_FINAL, ROLE_STUDY, ROLE_TRIAL, TAG_GPUS, TAG_REASON,
                              TAG_ROLE, TAG_STATUS, TAG_STUDY, TAG_TRIAL_ID, VAL_IMAGES, WALL_SECONDS, best_position,
                              crop_image, crop_metric, eval_artifact, summary_key)
from sr_core.crops import ComparisonCrops, Weights, bicubic_crops, crop_metrics, hr_crops, manifest, render_crops
from sr_core.models import flops_per_image, params_count
from sr_core.trial_config import LOGGED_FIELDS
from sr_core.trial_config import run_name as _run_name

# MLflow's database-backed stores and its server; the file store is disabled in MLflow 3.
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before anything is written, when the tracking URI cannot work."""
    scheme = tracking_uri.split("://", 1)[0].split("+", 1)[0] if "://" in tracking_uri else ""
    if scheme not in SCHEMES:
        raise TrackingError(f"--tracking-uri {mask(tracking_uri)!r}: unsupported; use http(s)://HOST:PORT "
                            "of an MLflow server, or a database URI such as sqlite:///PATH/mlflow.db")
    if scheme not in ("http", "https"):
        return
    parts = urlsplit(tracking_uri)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/health")
    if parts.username:  # credentials in the URI: sent as HTTP basic auth, as MLflow's client does
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow server {mask(tracking_uri)} answered {response.status} on /health")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow server {mask(tracking_uri)} is unreachable ({reason}); start it "
                            "(e.g. `mlflow server --host 127.0.0.1 --port 5000 --workers 1`) or drop "
                            "--tracking-uri to use the workdir's own store") from None


def ensure_experiment(client: MlflowClient, artifact_root: Path | None) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        location = artifact_root.resolve().as_uri() if artifact_root is not None else None
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=location)
    else:
        experiment_id = exp.experiment_id
    for key, value in EXPERIMENT_TAGS.items():
        if exp is None or exp.tags.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def run_name(config: Mapping[str, Any]) -> str:
    """A trial's run name from its config mapping (sr_core.trial_config.run_name builds it)."""
    return _run_name(config["arch"], config["blocks"], config["channels"], config["lr"], config["eta_min"],
                     config.get("arch_params"), config.get("loss", "mse"))


def log_values(client: MlflowClient, run_id: str, values: Mapping[str, float | None], step: int = 0) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for k, v in values.items()
               if v is not None and math.isfinite(float(v))]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))


def log_file(client: MlflowClient, run_id: str, path: str | Path) -> None:
    client.log_artifact(run_id, str(path))


def log_val_images(client: MlflowClient, run_id: str, images: Mapping[str, list]) -> None:
    """Each val image's metrics (VAL_IMAGES), what the report's paired bootstraps compare."""
    if images:
        client.log_text(run_id, json.dumps(dict(images)), VAL_IMAGES)


def val_images(client: MlflowClient, run_id: str) -> dict[str, list] | None:
    """A run's VAL_IMAGES, or None when it has none (older runs, a trial without a best epoch)."""
    import tempfile
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(client.download_artifacts(run_id, VAL_IMAGES, tmp)).read_text())
    except Exception:  # noqa: BLE001 - a missing artifact: MLflow raises several kinds
        return None


# -- the study run -----------------------------------------------------------------------------------
def start_study_run(client: MlflowClient, experiment_id: str, study, values: Mapping[str, float],
                    params: Mapping[str, Any]) -> str:
    run = client.create_run(experiment_id, run_name=study.name,
                            tags={TAG_ROLE: ROLE_STUDY, TAG_STUDY: study.name, TAG_STATUS: "running"})
    log_params(client, run.info.run_id, {**study.flat_params(), **params})
    log_values(client, run.info.run_id, values)
    client.log_text(run.info.run_id, study.text, "study.toml")
    return run.info.run_id


def set_status(client: MlflowClient, run_id: str, status: str, reason: str | None = None) -> None:
    """The `status` tag and MLflow's own run state, which say the same thing (docs/tracking-schema.md),
    and the `reason` tag: set when given, removed when given empty, kept when None."""
    if reason:
        client.set_tag(run_id, TAG_REASON, reason)
    elif reason is not None and TAG_REASON in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, TAG_REASON)  # e.g. a resumed trial that was interrupted, now completed
    client.set_tag(run_id, TAG_STATUS, status)
    state = MLFLOW_STATE.get(status, "FINISHED")
    if state in ("RUNNING", "SCHEDULED"):  # running, or paused: waiting to be resumed
        client.update_run(run_id, status=state)
    else:
        client.set_terminated(run_id, state)


def mark_unfinished(client: MlflowClient, experiment_id: str, parent_run_id: str, reason: str) -> list[str]:
    """Tag every trial still `running` (and the study run) `interrupted`; returns the trial run names.

    Called when the driver stops on a signal, and by `--resume` / `status` after a driver that was
    killed outright (kill -9, a lost machine) left runs RUNNING. Interrupted trials are resumable.
    """
    names = []
    for run in study_runs(client, experiment_id, parent_run_id):
        if run.data.tags.get(TAG_STATUS) == "running" or run.info.status == RunStatus.to_string(RunStatus.RUNNING):
            set_status(client, run.info.run_id, "interrupted", reason)
            names.append(run.info.run_name)
    parent = client.get_run(parent_run_id)
    if parent.data.tags.get(TAG_STATUS) == "running" or parent.info.status == "RUNNING":
        set_status(client, parent_run_id, "interrupted", reason)
    return names


# -- trial runs ---------------------------------------------------------------------------------------
def find_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> tuple[str, int] | None:
    """(run id, last epoch logged) of a Tune trial's run in this study, or None when it has none yet."""
    found = client.search_runs(
        [experiment_id], max_results=1,
        filter_string=f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'")
    if not found:
        return None
    run_id = found[0].info.run_id
    logged = client.get_metric_history(run_id, "val/mse")
    return run_id, max((m.step for m in logged), default=0)


def create_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, study_name: str,
                     trial_id: str, config: Mapping[str, Any], tags: Mapping[str, str],
                     role: str = ROLE_TRIAL) -> str:
    """A child run for a Tune trial (or the final step's, role `final`, named `<run name>-final`; or an
    audited pruned trial's, role `audit`, `<run name>-audit`):
    its tags, its hyperparameters (TrialConfig's logged fields) and its shape (parameters, forward
    FLOPs per image)."""
    name = run_name(config) + {ROLE_FINAL: FINAL_SUFFIX, ROLE_AUDIT: AUDIT_SUFFIX}.get(role, "")
    run_id = open_trial_run(client, experiment_id, parent_run_id, study_name, trial_id, name, str(config["arch"]),
                            tags, role)
    params = dict(config.get("arch_params") or {})  # a user arch's parameters: params of their own
    shape = (config["arch"], int(config["blocks"]), int(config["channels"]), params)
    names = {ARCH_PARAMS: ",".join(sorted(params))} if params else {}
    log_params(client, run_id, {**{k: config[k] for k in LOGGED_FIELDS}, **params, **names,
                                "n_params": params_count(*shape), "flops_per_image": flops_per_image(*shape)})
    return run_id


def open_trial_run(client: MlflowClient, experiment_id: str, parent_run_id: str, study_name: str,
                   trial_id: str, name: str, arch: str, tags: Mapping[str, str] | None = None,
                   role: str = ROLE_TRIAL) -> str:
    """The child run `create_trial_run` opens, named `name`, with the tags every trial, final and audit
    run carries (`status` running) and no params yet: for a writer that logs them itself (`log_params`),
    such as the reports' test store."""
    return client.create_run(
        experiment_id, run_name=name,
        tags={"mlflow.parentRunId": parent_run_id, TAG_ROLE: role, TAG_STUDY: study_name,
              "arch": arch, TAG_STATUS: "running", TAG_TRIAL_ID: trial_id, **(tags or {})},
    ).info.run_id


def run_status(client: MlflowClient, run_id: str) -> str:
    """A run's `status` tag (docs/tracking-schema.md)."""
    return client.get_run(run_id).data.tags.get(TAG_STATUS, "")


def log_epoch(client: MlflowClient, run_id: str, epoch: int, result: Mapping[str, Any],
              summary: Mapping[str, float]) -> None:
    """One epoch's metrics (step = epoch) and the running summary (step 0) in one write."""
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(result[k]), now, epoch) for k in EPOCH_METRICS if k in result]
                     + [Metric(k, float(v), now, 0) for k, v in summary.items() if math.isfinite(float(v))])


# -- comparison crops (sr_core.crops) ------------------------------------------------------------------
def log_study_crops(client: MlflowClient, run_id: str, crops: ComparisonCrops) -> None:
    """The study's comparison crops on its run, once when it opens: crops.json (names, photos, bicubic
    PSNRs) and each crop's HR and bicubic images, so the report shows them without sr_core."""
    client.log_dict(run_id, manifest(crops), CROPS_MANIFEST)
    for key, hr, bicubic in zip(crops.keys, hr_crops(crops), bicubic_crops(crops)):
        client.log_image(run_id, hr, artifact_file=crop_image(key, "hr"))
        client.log_image(run_id, bicubic, artifact_file=crop_image(key, "bicubic"))


def log_trial_crops(client: MlflowClient, run_id: str, weights: Weights, crops: ComparisonCrops,
                    step: int = 0) -> list[dict[str, float]]:
    """A trial's prediction of each crop (at `weights`, its best.pt; `step` its best epoch) and its
    PSNRs on it; returns the PSNRs. Each image is logged twice, as MLflow offers two comparisons: at
    crops/KEY.png, the same path in every trial (the runs' compare page lines artifacts up by path,
    and the report reads it), and under the image key crops/KEY (the chart view's image grid)."""
    images = render_crops(weights, crops)
    scores = crop_metrics(images, crops)
    for key, image in zip(crops.keys, images):
        client.log_image(run_id, image, artifact_file=crop_image(key))
        client.log_image(run_id, image, key=f"crops/{key}", step=step)
    log_values(client, run_id, {crop_metric(key, m): score[m] for key, score in zip(crops.keys, scores)
                                for m in CROP_METRICS}, step=step)
    return scores


# -- reading a study back -------------------------------------------------------------------------
def study_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def study_trials(client: MlflowClient, experiment_id: str, parent_run_id: str,
                 role: str = ROLE_TRIAL) -> list[dict[str, Any]]:
    """The search's trials of one study run (or, with role `final`, its final step's run): name,
    status, params and summary metrics, as plain dicts, in start order (so that `best_of` breaks
    ties the same way everywhere)."""
    out = []
    runs = [r for r in study_runs(client, experiment_id, parent_run_id)
            if r.data.tags.get(TAG_ROLE, ROLE_TRIAL) == role]
    for run in sorted(runs, key=lambda r: r.info.start_time):
        row: dict[str, Any] = {"name": run.info.run_name, "run_id": run.info.run_id, "role": role,
                               "status": run.data.tags.get(TAG_STATUS, "unknown"),
                               "reason": run.data.tags.get(TAG_REASON, ""),
                               **{t: run.data.tags[t] for t in (TAG_TRIAL_ID, TAG_GPUS, *AUDIT_TAGS)
                                  if t in run.data.tags}}
        row.update(run.data.params)
        row.update({k: v for k, v in run.data.metrics.items()
                    if k.startswith("best/") or k in (EPOCHS_RUN, WALL_SECONDS)})
        out.append(row)
    return out


def best_of(trials: Iterable[Mapping[str, Any]], metric: str = OBJECTIVE,
            mode: str = OBJECTIVE_MODE) -> Mapping[str, Any] | None:
    """The best trial of `study_trials` rows by the one rule (sr_core.contract.best_position)."""
    rows = list(trials)
    key = summary_key(metric)
    at = best_position([r.get("status", "") for r in rows], [r.get(key, math.nan) for r in rows], mode)
    return None if at is None else rows[at]


def study_objective(client: MlflowClient, parent_run_id: str) -> tuple[str, str]:
    """(metric, mode) a study optimised, from its run's params (val/mse, min for studies before them)."""
    params = client.get_run(parent_run_id).data.params
    return params.get("search.metric", OBJECTIVE), params.get("search.mode", OBJECTIVE_MODE)


def final_of(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, Any] | None:
    """The study's final-step run (`study_trials` row) when it ran to its end, else None."""
    done = [r for r in study_trials(client, experiment_id, parent_run_id, ROLE_FINAL) if r["status"] in FINISHED]
    return done[-1] if done else None


def best_model(client: MlflowClient, study: str) -> dict[str, Any]:
    """The model a study hands its users (`predict`): its final step's when that finished, else
    the search's best trial (`best_study_trial`)."""
    found = require_study_run(client, study)
    return final_of(client, *found) or best_study_trial(client, study)


def best_study_trial(client: MlflowClient, study: str) -> dict[str, Any]:
    """The latest run of `study`'s best trial by the one rule, as `run` and the report name it;
    a StudyError when there is no such study or no trial finished."""
    found = require_study_run(client, study)
    best = best_of(study_trials(client, *found), *study_objective(client, found[1]))
    if best is None:
        raise StudyError(f"study {study!r} has no trial that ran to its end (completed or early_stopped) yet")
    return dict(best)


def latest_study_run(client: MlflowClient, study: str) -> tuple[str, str] | None:
    """(experiment id, parent run id) of the most recent run of `study`, or None."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`sr.role` = 'study' and tags.study = '{study}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return (exp.experiment_id, runs[0].info.run_id) if runs else None


def require_study_run(client: MlflowClient, study: str) -> tuple[str, str]:
    """`latest_study_run`, or a StudyError saying how to make one."""
    found = latest_study_run(client, study)
    if found is None:
        raise StudyError(f"no runs of study {study!r} in this tracking store; run it first "
                         f"(sr-search run --study {study})")
    return found


def study_metric(client: MlflowClient, run_id: str, key: str) -> float | None:
    return client.get_run(run_id).data.metrics.get(key)


def download(client: MlflowClient, run_id: str, path: str, into: str | Path) -> str:
    """A run's artifact, downloaded into a folder; its local path."""
    return client.download_artifacts(run_id, path, str(into))


def has_artifact(client: MlflowClient, run_id: str, path: str) -> bool:
    """Whether a run holds the artifact `path` (e.g. a trial's best.pt), without downloading it."""
    folder = str(Path(path).parent) if Path(path).parent != Path(".") else None
    return path in {a.path for a in client.list_artifacts(run_id, folder)}


# -- benchmark evaluations (sr-search evaluate) ------------------------------------------------------
def log_evaluation(client: MlflowClient, run_id: str, folder: str, means: Mapping[str, float],
                   tags: Mapping[str, str], per_image: Iterable[Mapping[str, Any]]) -> None:
    """One run's figures on one benchmark folder (docs/tracking-schema.md, "Evaluations"): the folder
    means as metrics (keys `sr_core.contract.eval_key`), what they were made with as tags, and every
    image's figures as the artifact eval/<folder>.json, which the report's per-image table reads.
    A later evaluation of the same folder overwrites all three."""
    log_values(client, run_id, means)
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    client.log_text(run_id, json.dumps(list(per_image), indent=1), eval_artifact(folder))
