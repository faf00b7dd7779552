"""The driver's Tune callback: each trial's story, written once into MLflow and Optuna, and printed.

Tune calls it in the driver for every trial start, epoch result, completion and error. How a trial
ended is decided once (`search.tune.statuses.closing_status`, or `failed` for an error) and written to
both stores from that one decision: MLflow tags `status` and `reason` (through search.tracking, the
one MLflow writer), Optuna's state and user attrs (search.tune.optuna_store.OptunaRecorder).

It holds only strings and small objects, so that Tune can pickle it into the experiment state
(`Tuner.restore` brings it back after a crash); clients and studies are opened lazily.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray import tune

from search import milestones, tracking
from search.redaction import TRACKING_ENV, resolve
from search.tune.optuna_store import OPTUNA_NUMBER, OptunaRecorder, OptunaTarget
from search.tune.progress import Progress
from search.tune.statuses import closing_status
from search.tune.trainable import AUDIT_KEY, scratch_dir
from sr_core.contract import (BEST_WEIGHTS, ENDED, EPOCHS_RUN, ROLE_AUDIT, ROLE_TRIAL, TAG_GPUS, WALL_SECONDS,
                              WITH_WEIGHTS, summary_key)


@dataclass(frozen=True)
class TrackingTarget:
    """Where the callback writes: the (masked) tracking URI, the experiment and the study's run."""
    tracking_uri: str  # masked when it holds a password (search.redaction)
    experiment_id: str
    parent_run_id: str
    study_name: str


class StudyCallback(tune.Callback):
    def __init__(self, target: TrackingTarget, optuna: OptunaTarget | None, data_path: str, max_epochs: int,
                 metric: str, scratch_tag: str, progress: Progress, role: str = ROLE_TRIAL):
        self.target = target
        # The final step (role `final`) is no Optuna trial: it writes MLflow only.
        self.optuna = OptunaRecorder(optuna) if optuna is not None else None
        self.role = role
        self.data_path = data_path
        self.max_epochs = max_epochs
        self.metric = metric  # the study's objective: what Optuna records per epoch and at the end
        self.scratch_tag = scratch_tag
        self.progress = progress
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._logged: dict[str, int] = {}
        self._nodes: dict[str, str] = {}
        self._paused: dict[str, int] = {}  # trial id -> the epoch it was paused at

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None, "_runs": {}, "_logged": {}, "_nodes": {}, "_paused": {}}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(resolve(self.target.tracking_uri, TRACKING_ENV))
        return self._client

    # -- Tune hooks -----------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        tracking.set_status(self.client, self._run_id(trial), "running", reason="")
        self._to_optuna(trial, "set_attrs", status="running", reason="")
        resumed = self._paused.pop(trial.trial_id, None)
        self.progress.event(trials, f"{'resume' if resumed else 'start '} {tracking.run_name(trial.config)}"
                            + (f" (kept at the rung of epoch {resumed})" if resumed else ""))

    on_trial_restore = on_trial_start

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.progress.event(trials, f"retry  {tracking.run_name(trial.config)} (its process died; "
                                    f"attempt {trial.run_metadata.num_failures + 1})")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("final"):
            return  # the closing report repeats the last epoch; it is handled at completion
        run_id, epoch = self._run_id(trial), int(result["epoch"])
        replayed = epoch <= self._logged.get(trial.trial_id, 0)
        if not replayed:
            # The epoch's metrics (step = epoch), and the running summary (best so far, epochs run)
            # so that `status` and the report show a trial that is still going, or was interrupted.
            summary = {k: v for k, v in _summary(trial, result).items() if k != WALL_SECONDS}
            tracking.log_epoch(self.client, run_id, epoch, result, summary)
            self._logged[trial.trial_id] = epoch
            if self.role == ROLE_AUDIT:
                milestones.reached("audit_epoch")
        if result.get("node_id") and result["node_id"] != self._nodes.get(trial.trial_id):
            # the first result, and again if a retry moved the trial
            tracking.set_tags(self.client, run_id, {tag: str(result[key]) for key, tag in
                                                    (("node_id", "ray.node_id"), ("hostname", "host"),
                                                     ("gpus", TAG_GPUS))
                                                    if key in result})
            self._nodes[trial.trial_id] = result["node_id"]
        if self.metric in result:  # a full/ objective is scored every few epochs, not every epoch
            self._to_optuna(trial, "report", epoch, result[self.metric])
        self.progress.result(trials, trial, result, replayed)

    def on_step_end(self, iteration, trials, **info):
        """Tune has no hook for a pause: a trial a synchronous schedule paused at a rung shows up
        PAUSED here (once per pause). It is `paused`, not pruned: it may resume from that epoch."""
        for trial in trials:
            epoch = int((trial.last_result or {}).get("epoch", 0))
            if trial.status == "PAUSED" and self._paused.get(trial.trial_id) != epoch:
                self._paused[trial.trial_id] = epoch
                reason = f"waiting at the rung of epoch {epoch}"
                tracking.set_status(self.client, self._run_id(trial), "paused", reason)
                self._to_optuna(trial, "set_attrs", status="paused", reason=reason)
                self.progress.event(trials, f"paused {tracking.run_name(trial.config)} at epoch {epoch}")
                milestones.reached("trial_paused")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial, trials, *closing_status(trial.last_result, self.max_epochs))

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.get_error()
        lines = [line for line in str(error or "").splitlines() if line.strip()]
        reason = f"the trial's process failed {trial.run_metadata.num_failures} time(s)"
        self._close(trial, trials, "failed", f"{reason}: {lines[-1][:300]}" if lines else reason)

    # -- helpers --------------------------------------------------------------------------------
    def _to_optuna(self, trial, method: str, *args, **kwargs) -> None:
        if self.optuna is not None:
            getattr(self.optuna, method)(trial.config[OPTUNA_NUMBER], *args, **kwargs)

    def _run_id(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        t = self.target
        found = tracking.find_trial_run(self.client, t.experiment_id, t.parent_run_id, trial.trial_id)
        if found is not None:  # a resumed study: keep writing into the trial's existing run
            # Tune restores a trial from its last *snapshotted* checkpoint, which can be an epoch
            # behind what was already logged; the replayed epochs are not logged twice.
            run_id, self._logged[trial.trial_id] = found
        else:
            run_id = tracking.create_trial_run(
                self.client, t.experiment_id, t.parent_run_id, t.study_name, trial.trial_id, trial.config,
                tags=({"optuna.trial_number": str(trial.config[OPTUNA_NUMBER])} if self.optuna else {})
                | trial.config.get(AUDIT_KEY, {}).get("tags", {}),
                role=self.role)
        self._runs[trial.trial_id] = run_id
        return run_id

    def _close(self, trial, trials, status: str, reason: str) -> None:
        run_id = self._run_id(trial)
        if tracking.run_status(self.client, run_id) in ENDED:
            # Closed already, by a driver whose last Tune snapshot missed it: the first story stands.
            self.progress.closed(trials, trial, tracking.run_status(self.client, run_id), _summary(trial))
            return
        summary = _summary(trial)
        tracking.log_values(self.client, run_id, summary)
        if status in WITH_WEIGHTS and trial.checkpoint is not None:
            try:
                self._log_artifacts(run_id, trial.checkpoint, int(summary.get("best/epoch", 0)))
            except Exception as exc:  # an artifact problem must not lose the trial's record
                print(f"warning: could not log artifacts of {tracking.run_name(trial.config)}: {exc}",
                      file=sys.stderr)
        self._to_optuna(trial, "finish", status, reason, summary.get(summary_key(self.metric)))
        tracking.set_status(self.client, run_id, status, reason)  # last: the record is complete once it says so
        self.progress.closed(trials, trial, status, summary)
        # The trial removes its own scratch folder; this catches one it could not (a killed process).
        shutil.rmtree(scratch_dir(self.scratch_tag, trial.trial_id), ignore_errors=True)
        milestones.reached("trial_closed")

    def _log_artifacts(self, run_id: str, checkpoint, best_epoch: int) -> None:
        """best.pt, the trial's prediction of the study's comparison crops (MLflow images at its best
        epoch, sr_core.crops) and the samples grid."""
        from search.tune.sample_grid import sample_grid
        from sr_core.crops import study_crops
        with checkpoint.as_directory() as ckpt, tempfile.TemporaryDirectory() as tmp:
            best = Path(ckpt) / BEST_WEIGHTS
            if not best.exists():
                return
            tracking.log_file(self.client, run_id, best)
            tracking.log_val_images(self.client, run_id, _best_images(best))
            tracking.log_trial_crops(self.client, run_id, best, study_crops(self.data_path), step=best_epoch)
            png = Path(tmp) / "samples.png"
            sample_grid(best, self.data_path, png)
            tracking.log_file(self.client, run_id, png)


def _best_images(best: Path) -> dict:
    """The val images' metrics at the best epoch, kept in best.pt (sr_core.checkpoint.BEST_IMAGES)."""
    import torch

    from sr_core.checkpoint import BEST_IMAGES
    # mmap: the weights (up to ~0.8 GB for the widest nets) are mapped, not read, to get at a few floats
    return torch.load(best, map_location="cpu", weights_only=True, mmap=True).get(BEST_IMAGES, {})


def _summary(trial, result: dict | None = None) -> dict[str, float]:
    """best/* as the trainer reported them with its last result; epochs run and Tune's wall time."""
    last = result if result is not None else (trial.last_result or {})
    out = {k: float(v) for k, v in last.items() if k.startswith("best/")}
    out[EPOCHS_RUN] = float(last.get("epoch", 0))
    out[WALL_SECONDS] = float(last.get("time_total_s", 0.0))
    return out
