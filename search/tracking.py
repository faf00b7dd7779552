"""MLflow tracking, written only from the Ray driver (one writer): see docs/tracking-schema.md.

The parent run is the study; each Tune trial is a child run tagged `mlflow.parentRunId` (MLflow's
nesting only works inside one process). The Tune callback that writes trials lives in
search/callback.py; this module holds the MLflow side of it and of `run`, `status` and `predict`.
"""
from __future__ import annotations

import base64
import math
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from search.errors import TrackingError  # noqa: F401  (re-exported)
from search.secrets import mask

EXPERIMENT = "sr-search"
EPOCH_METRICS = ("train/mse", "val/mse", "val/psnr", "val/ssim", "lr", "epoch_seconds", "images_per_s")
PARAM_KEYS = ("arch", "blocks", "channels", "lr", "eta_min", "epochs", "batch_size", "grad_clip",
              "patience", "seed")
# MLflow's database-backed stores and its server; the file store is disabled in MLflow 3.
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
# MLflow 3 opens an experiment on its GenAI overview unless it is marked as model training.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}




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


def run_name(config: dict[str, Any]) -> str:
    return f"{config['arch']}_b{config['blocks']}_c{config['channels']}_lr{config['lr']:g}"


def log_values(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for k, v in values.items()
               if v is not None and math.isfinite(float(v))]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


def start_study_run(client: MlflowClient, experiment_id: str, study, values: dict[str, float],
                    params: dict[str, Any]) -> str:
    run = client.create_run(experiment_id, run_name=study.name,
                            tags={"sr.role": "study", "study": study.name, "status": "running"})
    log_params(client, run.info.run_id, {**study.flat_params(), **params})
    log_values(client, run.info.run_id, values)
    client.log_text(run.info.run_id, study.text, "study.toml")
    return run.info.run_id


def set_status(client: MlflowClient, run_id: str, status: str, reason: str | None = None) -> None:
    """The `status` tag and MLflow's own run state, which say the same thing (docs/tracking-schema.md),
    and the `reason` tag: set when given, removed when given empty, kept when None."""
    if reason:
        client.set_tag(run_id, "reason", reason)
    elif reason is not None and "reason" in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, "reason")  # e.g. a resumed trial that was interrupted, now completed
    client.set_tag(run_id, "status", status)
    if status == "running":
        client.update_run(run_id, status="RUNNING")
    else:
        state = {"interrupted": "KILLED", "failed": "FAILED"}.get(status, "FINISHED")
        client.set_terminated(run_id, state)


def mark_unfinished(client: MlflowClient, experiment_id: str, parent_run_id: str, reason: str) -> list[str]:
    """Tag every trial still `running` (and the study run) `interrupted`; returns the trial run names.

    Called when the driver stops on a signal, and by `--resume` / `status` after a driver that was
    killed outright (kill -9, a lost machine) left runs RUNNING. Interrupted trials are resumable.
    """
    names = []
    for run in study_runs(client, experiment_id, parent_run_id):
        if run.data.tags.get("status") == "running" or run.info.status == RunStatus.to_string(RunStatus.RUNNING):
            set_status(client, run.info.run_id, "interrupted", reason)
            names.append(run.info.run_name)
    parent = client.get_run(parent_run_id)
    if parent.data.tags.get("status") == "running" or parent.info.status == "RUNNING":
        set_status(client, parent_run_id, "interrupted", reason)
    return names


def study_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def study_trials(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The child runs of one study run: name, status, params and summary metrics, as plain dicts,
    in start order (so that `outcome.best_of` breaks ties the same way everywhere)."""
    out = []
    for run in sorted(study_runs(client, experiment_id, parent_run_id), key=lambda r: r.info.start_time):
        row: dict[str, Any] = {"name": run.info.run_name, "run_id": run.info.run_id,
                               "status": run.data.tags.get("status", "unknown"),
                               "reason": run.data.tags.get("reason", "")}
        row.update(run.data.params)
        row.update({k: v for k, v in run.data.metrics.items()
                    if k.startswith("best/") or k in ("epochs_run", "wall_seconds")})
        out.append(row)
    return out


def latest_study_run(client: MlflowClient, study: str) -> tuple[str, str] | None:
    """(experiment id, parent run id) of the most recent run of `study`, or None."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`sr.role` = 'study' and tags.study = '{study}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return (exp.experiment_id, runs[0].info.run_id) if runs else None
