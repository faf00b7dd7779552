"""The driver's Tune callback: each trial's story, written once into MLflow and Optuna, and printed.

Tune calls it in the driver for every trial start, epoch result, completion and error. How a trial
ended is decided once (`outcome.closing_status`, or `failed` for an error) and written to both stores
from that one decision: MLflow tags `status` and `reason`, Optuna's state and user attrs.

It holds only strings and small objects, so that Tune can pickle it into the experiment state
(`Tuner.restore` brings it back after a crash); clients and studies are opened lazily.
"""
from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

from search.optuna_link import OPTUNA_NUMBER, OptunaRecorder, OptunaTarget
from search.outcome import WITH_WEIGHTS, closing_status
from search.secrets import TRACKING_ENV, resolve
from search.testhooks import pause_point
from search.tracking import (EPOCH_METRICS, PARAM_KEYS, log_params, log_values, run_name,
                             set_status)
from search.trainable import scratch_dir


class StudyCallback(tune.Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, study_name: str,
                 optuna: OptunaTarget, data_path: str, max_epochs: int, scratch_tag: str,
                 progress: "Progress"):
        self.tracking_uri = tracking_uri  # masked when it holds a password (search.secrets)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        self.optuna = OptunaRecorder(optuna)
        self.data_path = data_path
        self.max_epochs = max_epochs
        self.scratch_tag = scratch_tag
        self.progress = progress
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._logged: dict[str, int] = {}
        self._nodes: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None, "_runs": {}, "_logged": {}, "_nodes": {}}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(resolve(self.tracking_uri, TRACKING_ENV))
        return self._client

    # -- Tune hooks -----------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        set_status(self.client, self._run_id(trial), "running", reason="")
        self.progress.event(trials, f"start  {run_name(trial.config)}")

    on_trial_restore = on_trial_start

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.progress.event(trials, f"retry  {run_name(trial.config)} (its process died; "
                                    f"attempt {trial.run_metadata.num_failures + 1})")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("final"):
            return  # the closing report repeats the last epoch; it is handled at completion
        run_id, epoch = self._run_id(trial), int(result["epoch"])
        replayed = epoch <= self._logged.get(trial.trial_id, 0)
        if not replayed:
            now = int(time.time() * 1000)
            # The epoch's metrics (step = epoch), and the running summary (best so far, epochs run)
            # so that `status` and the report show a trial that is still going, or was interrupted.
            summary = {k: v for k, v in _summary(trial, result).items() if k != "wall_seconds"}
            self.client.log_batch(run_id, metrics=[Metric(k, float(result[k]), now, epoch)
                                                   for k in EPOCH_METRICS if k in result]
                                  + [Metric(k, v, now, 0) for k, v in summary.items() if math.isfinite(v)])
            self._logged[trial.trial_id] = epoch
        if result.get("node_id") and result["node_id"] != self._nodes.get(trial.trial_id):
            self._tag_node(run_id, result)  # the first result, and again if a retry moved the trial
            self._nodes[trial.trial_id] = result["node_id"]
        self.optuna.report(trial.config[OPTUNA_NUMBER], epoch, result["val/mse"])
        self.progress.result(trials, trial, result, replayed)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial, trials, *closing_status(trial.last_result, self.max_epochs))

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.get_error()
        lines = [line for line in str(error or "").splitlines() if line.strip()]
        reason = f"the trial's process failed {trial.run_metadata.num_failures} time(s)"
        self._close(trial, trials, "failed", f"{reason}: {lines[-1][:300]}" if lines else reason)

    # -- helpers --------------------------------------------------------------------------------
    def _run_id(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=f"tags.trial_id = '{trial.trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_run_id}'")
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
                      "arch": str(config["arch"]), "status": "running", "trial_id": trial.trial_id,
                      "optuna.trial_number": str(config[OPTUNA_NUMBER])},
            ).info.run_id
            from sr_core.models import flops_per_image, params_count
            shape = (config["arch"], int(config["blocks"]), int(config["channels"]))
            log_params(self.client, run_id, {**{k: config[k] for k in PARAM_KEYS},
                                             "n_params": params_count(*shape),
                                             "flops_per_image": flops_per_image(*shape)})
        self._runs[trial.trial_id] = run_id
        return run_id

    def _tag_node(self, run_id: str, result: dict) -> None:
        for key, tag in (("node_id", "ray.node_id"), ("hostname", "host")):
            if result.get(key):
                self.client.set_tag(run_id, tag, str(result[key]))

    def _close(self, trial, trials, status: str, reason: str) -> None:
        run_id = self._run_id(trial)
        summary = _summary(trial)
        log_values(self.client, run_id, summary)
        if status in WITH_WEIGHTS and trial.checkpoint is not None:
            try:
                self._log_artifacts(run_id, trial.checkpoint)
            except Exception as exc:  # an artifact problem must not lose the trial's record
                print(f"warning: could not log artifacts of {run_name(trial.config)}: {exc}", file=sys.stderr)
        self.optuna.finish(trial.config[OPTUNA_NUMBER], status, reason, summary.get("best/val_mse"))
        set_status(self.client, run_id, status, reason)  # last: the record is complete once it says so
        self.progress.closed(trials, trial, status, summary)
        # The trial removes its own scratch folder; this catches one it could not (a killed process).
        shutil.rmtree(scratch_dir(self.scratch_tag, trial.trial_id), ignore_errors=True)
        pause_point("trial_closed")

    def _log_artifacts(self, run_id: str, checkpoint) -> None:
        from search.samples import sample_grid
        with checkpoint.as_directory() as ckpt, tempfile.TemporaryDirectory() as tmp:
            best = Path(ckpt) / "best.pt"
            if not best.exists():
                return
            self.client.log_artifact(run_id, str(best))
            png = Path(tmp) / "samples.png"
            sample_grid(best, self.data_path, png)
            self.client.log_artifact(run_id, str(png))


def _summary(trial, result: dict | None = None) -> dict[str, float]:
    """best/* as the trainer reported them with its last result; epochs run and Tune's wall time."""
    last = result if result is not None else (trial.last_result or {})
    out = {k: float(v) for k, v in last.items() if k.startswith("best/")}
    out["epochs_run"] = float(last.get("epoch", 0))
    out["wall_seconds"] = float(last.get("time_total_s", 0.0))
    return out


class Progress:
    """One line per event: elapsed time, the event, trials by status, the best so far, and an ETA.

    The ETA counts epochs: the epochs still to run (unfinished trials to their last epoch, trials not
    started yet at the mean length of the trials that ended, which is where pruning shows) times this
    session's wall time per epoch. Before the first epoch it is the cost estimate's.
    """

    def __init__(self, total_trials: int, max_epochs: int, estimate_seconds: float):
        self.total_trials, self.max_epochs, self.estimate_seconds = total_trials, max_epochs, estimate_seconds
        self.statuses: dict[str, str] = {}
        self.epochs: dict[str, int] = {}
        self.best: tuple[float, str] | None = None
        self.epochs_run = 0
        self.started = time.monotonic()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("statuses", "epochs", "best", "epochs_run")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.statuses, self.epochs, self.best, self.epochs_run = {}, {}, None, 0
        self.started = time.monotonic()  # a resumed study counts from its own start

    def result(self, trials, trial, result: dict, replayed: bool) -> None:
        psnr = float(result.get("val/psnr", float("nan")))
        self.epochs[trial.trial_id] = int(result["epoch"])
        self.epochs_run += 0 if replayed else 1
        if self.best is None or psnr > self.best[0]:
            self.best = (psnr, run_name(trial.config))
        self.event(trials, f"epoch {int(result['epoch']):>3} {run_name(trial.config)}: val/psnr {psnr:.2f} dB"
                   + (" (replayed)" if replayed else ""))

    def closed(self, trials, trial, status: str, summary: dict) -> None:
        self.statuses[trial.trial_id] = status
        self.epochs[trial.trial_id] = int(summary.get("epochs_run", 0))
        best = f": best val/psnr {summary['best/val_psnr']:.2f} dB" if "best/val_psnr" in summary else ""
        self.event(trials, f"{status:<7} {run_name(trial.config)}{best}")

    def eta_seconds(self, trials) -> float:
        elapsed = time.monotonic() - self.started
        if self.epochs_run == 0:
            return max(self.estimate_seconds - elapsed, 0.0)
        ended = [self.epochs.get(tid, 0) for tid in self.statuses]
        per_trial = sum(ended) / len(ended) if ended else self.max_epochs
        running = [t.trial_id for t in trials if t.trial_id not in self.statuses]
        not_started = max(self.total_trials - len(self.statuses) - len(running), 0)
        remaining = sum(max(self.max_epochs - self.epochs.get(tid, 0), 0) for tid in running)
        return (remaining + not_started * per_trial) * elapsed / self.epochs_run

    def event(self, trials, text: str) -> None:
        counts: dict[str, int] = {}
        for t in trials:
            key = self.statuses.get(t.trial_id) or ("running" if t.status == "RUNNING" else None)
            if key:
                counts[key] = counts.get(key, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        best = f" | best {self.best[0]:.2f} dB {self.best[1]}" if self.best else ""
        ended = f"{len(self.statuses)}/{self.total_trials} ended, ETA {_clock(self.eta_seconds(trials))}"
        print(f"[{_clock(time.monotonic() - self.started, exact=True)}] {text:<48} | {parts} | {ended}{best}",
              flush=True)


def _clock(seconds: float, exact: bool = False) -> str:
    """'  3:07' (minutes:seconds) for elapsed time; '~7 min' / '~2.5 h' for an ETA."""
    if exact:
        s = int(seconds)
        return f"{s // 60:>3}:{s % 60:02d}"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    return f"~{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"~{seconds / 3600:.1f} h"
