"""MLflow tracking, written only from the Ray driver (one writer): see docs/tracking-schema.md.

The parent run is the study; each Tune trial is a child run tagged `mlflow.parentRunId` (MLflow's
nesting only works inside one process). `TrackingCallback` is a Tune callback: Tune calls it in the
driver for every trial start, per-epoch result, completion and error.
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from ray import tune

from search.asha import read_pruned

EXPERIMENT = "sr-search"
EPOCH_METRICS = ("train/mse", "val/mse", "val/psnr", "val/ssim", "lr", "epoch_seconds", "images_per_s")
PARAM_KEYS = ("arch", "blocks", "channels", "lr", "eta_min", "epochs", "batch_size", "grad_clip",
              "patience", "seed")
FINISHED = ("completed", "early_stopped", "pruned")


class TrackingError(RuntimeError):
    """The tracking server cannot be used (unreachable, refused): a user-fixable setup problem."""


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any trial starts, when an http(s) tracking server does not answer."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow server {tracking_uri} answered {response.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow server {tracking_uri} is unreachable ({reason}); start it "
                            "(e.g. `mlflow server --host 127.0.0.1 --port 5000 --workers 1`) or drop "
                            "--tracking-uri to use the workdir's own store") from None


def ensure_experiment(client: MlflowClient, artifact_root: Path | None) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root.resolve().as_uri() if artifact_root is not None else None
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def run_name(config: dict[str, Any]) -> str:
    return f"{config['arch']}_b{config['blocks']}_c{config['channels']}_lr{config['lr']:g}"


def start_study_run(client: MlflowClient, experiment_id: str, study, estimate_metrics: dict[str, float],
                    baseline: dict[str, float], extra_params: dict[str, str]) -> str:
    run = client.create_run(experiment_id, run_name=study.name,
                            tags={"sr.role": "study", "study": study.name, "status": "running"})
    params = {**study.flat_params(), **extra_params}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    _log_values(client, run.info.run_id, {**estimate_metrics, **baseline})
    client.log_text(run.info.run_id, study.text, "study.toml")
    return run.info.run_id


def _log_values(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for k, v in values.items()
               if v is not None and math.isfinite(float(v))]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def finish_study_run(client: MlflowClient, run_id: str, status: str, values: dict[str, float]) -> None:
    _log_values(client, run_id, values)
    client.set_tag(run_id, "status", status)
    client.set_terminated(run_id, "FINISHED" if status == "completed" else "FAILED")


class TrackingCallback(tune.Callback):
    """Mirrors Tune trials into MLflow child runs and prints one progress line per event.

    Holds only strings so that Tune can pickle it into the experiment state (Tuner.restore brings it
    back after a crash); the MLflow client is made lazily.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, study_name: str,
                 asha_state: str, data_path: str, trial_extras: dict[str, dict[str, float]] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        self.asha_state = asha_state
        self.data_path = data_path
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._logged: dict[str, int] = {}
        self._best: tuple[float, str] | None = None
        self._started = time.monotonic()
        self.statuses: dict[str, str] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # -- runs -----------------------------------------------------------------------------------
    def _run_id(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.trial_id = '{trial.trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
            max_results=1)
        if found:  # a resumed study: keep writing into the trial's existing run
            run_id = found[0].info.run_id
            # Tune restores a trial from its last *snapshotted* checkpoint, which can be an epoch
            # behind what was already logged; the replayed epochs are not logged twice.
            logged = self.client.get_metric_history(run_id, "val/mse")
            self._logged[trial.trial_id] = max((m.step for m in logged), default=0)
        else:
            config = trial.config
            run_id = self.client.create_run(
                self.experiment_id, run_name=run_name(config),
                tags={"mlflow.parentRunId": self.parent_run_id, "sr.role": "trial", "study": self.study_name,
                      "arch": str(config["arch"]), "status": "running", "trial_id": trial.trial_id},
            ).info.run_id
            from sr_core.models import flops_per_image, params_count
            shape = (config["arch"], int(config["blocks"]), int(config["channels"]))
            params = {k: config[k] for k in PARAM_KEYS}
            params.update(n_params=params_count(*shape), flops_per_image=flops_per_image(*shape))
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self._runs[trial.trial_id] = run_id
        return run_id

    # -- Tune hooks -----------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self._run_id(trial)
        self.client.set_tag(run_id, "status", "running")
        self._print(trials, f"start  {run_name(trial.config)}")

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("final"):
            return  # the closing status report repeats the last epoch; it is logged at completion
        run_id = self._run_id(trial)
        epoch = int(result["epoch"])
        now = int(time.time() * 1000)
        replayed = epoch <= self._logged.get(trial.trial_id, 0)
        if not replayed:
            self.client.log_batch(run_id, metrics=[Metric(k, float(result[k]), now, epoch)
                                                   for k in EPOCH_METRICS if k in result])
        psnr = result.get("val/psnr", float("nan"))
        if self._best is None or psnr > self._best[0]:
            self._best = (psnr, run_name(trial.config))
        self._print(trials, f"epoch {epoch:>3} {run_name(trial.config)}: val/psnr {psnr:.2f} dB"
                    + (" (replayed)" if replayed else ""))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial, trials, self._status(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, trials, "failed")

    # -- helpers --------------------------------------------------------------------------------
    def _status(self, trial) -> str:
        last = trial.last_result or {}
        if last.get("final"):
            return str(last["final_status"])
        if trial.trial_id in read_pruned(self.asha_state):
            return "pruned"
        # Stopped by the scheduler at its last epoch, before its closing report: it ran to the end.
        return "completed" if last.get("epoch") == trial.config.get("epochs") else "failed"

    def _close(self, trial, trials, status: str) -> None:
        run_id = self._run_id(trial)
        self.statuses[trial.trial_id] = status
        summary = _summary(trial)
        _log_values(self.client, run_id, summary)
        if status in FINISHED and trial.checkpoint is not None:
            try:
                self._log_artifacts(run_id, Path(trial.checkpoint.path), trial.config)
            except Exception as exc:  # an artifact problem must not lose the trial's record
                print(f"warning: could not log artifacts of {run_name(trial.config)}: {exc}", file=sys.stderr)
        self.client.set_tag(run_id, "status", status)
        self.client.set_terminated(run_id, "FINISHED" if status != "failed" else "FAILED")
        self._print(trials, f"{status:<7} {run_name(trial.config)}"
                    + (f": best val/psnr {summary['best/val_psnr']:.2f} dB" if "best/val_psnr" in summary else ""))

    def _log_artifacts(self, run_id: str, ckpt_dir: Path, config: dict) -> None:
        best = ckpt_dir / "best.pt"
        if not best.exists():
            return
        self.client.log_artifact(run_id, str(best))
        from search.samples import sample_grid
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "samples.png"
            sample_grid(best, self.data_path, png)
            self.client.log_artifact(run_id, str(png))

    def _print(self, trials, event: str) -> None:
        counts: dict[str, int] = {}
        for t in trials:
            key = self.statuses.get(t.trial_id) or ("running" if t.status == "RUNNING" else None)
            if key:
                counts[key] = counts.get(key, 0) + 1
        elapsed = int(time.monotonic() - self._started)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        best = f" | best {self._best[0]:.2f} dB {self._best[1]}" if self._best else ""
        print(f"[{elapsed // 60:>3}:{elapsed % 60:02d}] {event:<48} | {parts}{best}", flush=True)


def _summary(trial) -> dict[str, float]:
    """best/* as the trainer reported them with its last epoch; epochs run and Tune's wall time."""
    last = trial.last_result or {}
    out = {k: float(v) for k, v in last.items() if k.startswith("best/")}
    out["epochs_run"] = float(last.get("epoch", 0))
    out["wall_seconds"] = float(last.get("time_total_s", 0.0))
    return out


def study_trials(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The child runs of one study run: name, status, params and summary metrics, as plain dicts."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              max_results=10000)
    out = []
    for run in runs:
        row: dict[str, Any] = {"name": run.info.run_name, "run_id": run.info.run_id,
                               "status": run.data.tags.get("status", "unknown")}
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
