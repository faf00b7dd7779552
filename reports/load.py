"""MLflow -> pandas. Reads exactly what docs/tracking-schema.md promises, nothing more."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from sr_core.contract import (AUDIT_TAGS, BEST_COLUMNS, CROP_METRICS, EPOCH_METRICS, EPOCHS_RUN, EXPERIMENT,
                              FINAL_FROM_SEARCH, FINISHED, OBJECTIVE, OBJECTIVE_MODE, ROLE_AUDIT, ROLE_FINAL,
                              ROLE_TRIAL, STUDY_METRICS, TAG_FINAL_FROM, TAG_FINAL_FROM_RUN, TAG_GPUS, TAG_STATUS,
                              TAG_STUDY, TAG_TRIAL_ID, VAL_IMAGES, OBJECTIVE_METRICS, WALL_SECONDS, objective_of,
                              summary_key)

CROP_SCORE_COLUMNS = ["run_id", "crop", *CROP_METRICS]
#: One row per audit run (role `audit`): the pruned trial it continued and how it ended.
AUDIT_COLUMNS = ["run_id", "name", "study", "status", *OBJECTIVE_METRICS, "epochs_run", "source_run_id",
                 "stopped_at", "rank", "pruned"]


class ReportError(ValueError):
    """A report cannot be made from what the tracking store holds (unknown or empty study)."""


@dataclass(frozen=True)
class RunData:
    """Everything a report draws from: one row per trial, per-epoch history, one row per study, and
    one row per trial and comparison crop it logged (its PSNRs on the crop, by the crop's key)."""

    trials: pd.DataFrame
    history: pd.DataFrame
    studies: pd.DataFrame
    tracking_uri: str
    crop_scores: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CROP_SCORE_COLUMNS))
    audits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AUDIT_COLUMNS))
    #: run id -> its VAL_IMAGES (each val image's metrics at its best epoch): finished trials, audit
    #: and final runs, and each study run's bicubic baseline (with the images' names)
    images: dict = field(default_factory=dict)

    @property
    def objective(self) -> tuple[str, str]:
        """(metric, mode) the studies optimised ([search] metric and mode, as `run` used them): the
        first study's. Studies that disagree are compared on the default, val/mse."""
        found = {objective_of(params) for params in self.studies.get("params", [])}
        return found.pop() if len(found) == 1 else (OBJECTIVE, OBJECTIVE_MODE)

def _check_store(tracking_uri: str, names: Sequence[str]) -> None:
    # Opening a sqlite URI whose file does not exist would silently create an empty store.
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and ":memory:" not in tracking_uri:
        path = Path(unquote(tracking_uri[len(prefix) :].split("?")[0]))
        if not path.exists():
            raise ReportError(f"study {_names(names)} not found: no MLflow store at {path}")


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, order_by=["attributes.start_time DESC"],
            page_token=token,
        )  # fmt: skip
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _numeric(values: pd.Series) -> pd.Series:
    """Strings -> numbers; integral columns stay integers when nothing is missing."""
    out = pd.to_numeric(values, errors="coerce")
    if len(out) and out.notna().all() and np.all(np.mod(out.to_numpy(dtype=float), 1) == 0):
        return out.astype("int64")
    return out.astype(float)


def _numeric_params(trials: pd.DataFrame, params: set[str]) -> pd.DataFrame:
    """Param columns whose every logged value is a number become numbers; the rest stay strings."""
    trials = trials.copy()
    for col in params:
        given = trials[col].dropna()
        if len(given) and pd.to_numeric(given, errors="coerce").notna().all():
            trials[col] = _numeric(trials[col])
    return trials


def _history(client: MlflowClient, run: Run) -> list[dict]:
    rows: dict[int, dict] = {}
    for key in EPOCH_METRICS:
        if key not in run.data.metrics:
            continue
        # Sorted by timestamp so that a re-logged epoch (resumed trial) keeps its latest value.
        for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.timestamp):
            row = rows.setdefault(int(m.step), {"run_id": run.info.run_id, "epoch": int(m.step)})
            row[key] = m.value
            if key == "val/mse":  # when the epoch ended (the anytime figure orders epochs by it)
                row["logged_at"] = m.timestamp
    return [rows[e] for e in sorted(rows) if e >= 1]


def _crop_scores(run: Run) -> list[dict]:
    """One row per comparison crop the trial logged metrics for (crops/KEY/psnr, crops/KEY/psnr_y)."""
    rows: dict[str, dict] = {}
    for name, value in run.data.metrics.items():
        head, _, metric = name.rpartition("/")
        if name.startswith("crops/") and metric in CROP_METRICS:
            key = head[len("crops/"):]
            rows.setdefault(key, {"run_id": run.info.run_id, "crop": key})[metric] = value
    return list(rows.values())


def _trial_row(run: Run, parent: Run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    row = {
        "run_id": run.info.run_id,
        "name": run.info.run_name or run.info.run_id,
        "study": parent.data.tags.get(TAG_STUDY, parent.info.run_name),
        "arch": tags.get("arch", params.get("arch", "?")),
        "status": tags.get(TAG_STATUS, run.info.status.lower()),
        "trial_id": tags.get(TAG_TRIAL_ID),
        "parent_run_id": parent.info.run_id,
        "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
        # the share of a GPU Ray placed it with (0 on a CPU); NaN for runs from before the tag
        "gpus": pd.to_numeric(tags.get(TAG_GPUS), errors="coerce"),
    }
    # Every param the trial logged: its hyperparameters (search derives them from TrialConfig's
    # fields) and its shape figures (contract.TRIAL_SHAPE_PARAMS). The arch comes from its tag.
    row.update({k: v for k, v in params.items() if k not in row})
    row["max_epochs"] = row.pop("epochs", None)
    for src, dst in BEST_COLUMNS.items():
        row[dst] = metrics.get(src, math.nan)
    row["epochs_run"] = metrics.get(EPOCHS_RUN, math.nan)
    wall = metrics.get(WALL_SECONDS, math.nan)
    if not np.isfinite(wall) and run.info.end_time and run.info.start_time:
        wall = (run.info.end_time - run.info.start_time) / 1000.0
    row["runtime_s"] = wall if wall >= 0 else math.nan
    return row


def _fill_from_history(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Summary metrics a trial did not log (still running, killed) are taken from its history."""
    if history.empty:
        return trials
    trials = trials.copy()
    epochs = history.groupby("run_id")["epoch"].max()
    trials["epochs_run"] = trials["epochs_run"].fillna(trials["run_id"].map(epochs).astype(float))
    scored = history[np.isfinite(history["val/mse"])]
    if scored.empty:
        return trials
    best = scored.loc[scored.groupby("run_id")["val/mse"].idxmin()].set_index("run_id")
    known = trials["run_id"].isin(best.index)
    for col in BEST_COLUMNS.values():
        src = "epoch" if col == "best_epoch" else col
        missing = trials[col].isna() & known
        if missing.any():
            trials.loc[missing, col] = trials.loc[missing, "run_id"].map(best[src]).astype(float)
    return trials


def _study_row(parent: Run, n_trials: int, final: Run | None = None) -> dict:
    params = dict(parent.data.params)
    row = {
        "study": parent.data.tags.get(TAG_STUDY, parent.info.run_name),
        "run_id": parent.info.run_id,
        "status": parent.data.tags.get(TAG_STATUS, parent.info.status.lower()),
        "start_time": pd.to_datetime(parent.info.start_time, unit="ms", utc=True),
        "device": params.get("device"),
        "train_images": pd.to_numeric(params.get("data.train_images"), errors="coerce"),
        "val_images": pd.to_numeric(params.get("data.val_images"), errors="coerce"),
        "grace_period": pd.to_numeric(params.get("pruner.grace_period"), errors="coerce"),
        "reduction_factor": pd.to_numeric(params.get("pruner.reduction_factor"), errors="coerce"),
        "n_trials": n_trials,
        "params": params,
    }
    row.update({k: parent.data.metrics.get(k, math.nan) for k in STUDY_METRICS})
    # The final step (role `final`): the best configuration known when it started (the search's best,
    # or an audited trial's that ended better: final/from) trained longer, not a trial.
    metrics = final.data.metrics if final is not None else {}
    tags = final.data.tags if final is not None else {}
    row.update({"final/name": final.info.run_name if final is not None else None,
                "final/run_id": final.info.run_id if final is not None else None,
                "final/status": tags.get(TAG_STATUS) if final is not None else None,
                # a final run without the tag (older studies) trained the search's best
                "final/from": (tags.get(TAG_FINAL_FROM) or FINAL_FROM_SEARCH) if final is not None else None,
                "final/from_run": tags.get(TAG_FINAL_FROM_RUN) if final is not None else None,
                "final/val_psnr": metrics.get("best/val_psnr", math.nan),
                "final/val_mse": metrics.get("best/val_mse", math.nan),
                "final/epochs": metrics.get(EPOCHS_RUN, math.nan)})
    return row


def _children(client: MlflowClient, experiment_id: str,
              parent_run_id: str) -> tuple[list[Run], Run | None, list[Run]]:
    """A study run's trials (role `trial`), its final step's run (role `final`) if any, and its
    pruning audit's runs (role `audit`)."""
    def role(name: str) -> list[Run]:
        return _search(client, experiment_id,
                       f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`sr.role` = '{name}'")
    finals = role(ROLE_FINAL)
    return role(ROLE_TRIAL), finals[0] if finals else None, role(ROLE_AUDIT)


def _audit_row(run: Run, parent: Run) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    of, stopped, rank, pruned = (tags.get(t) for t in AUDIT_TAGS)
    return {"run_id": run.info.run_id, "name": run.info.run_name, "study": parent.data.tags.get(TAG_STUDY),
            "status": tags.get(TAG_STATUS, ""), "epochs_run": metrics.get(EPOCHS_RUN, math.nan),
            **{m: metrics.get(summary_key(m), math.nan) for m in OBJECTIVE_METRICS},  # every objective a study may have
            "source_run_id": of, "stopped_at": pd.to_numeric(stopped, errors="coerce"),
            "rank": pd.to_numeric(rank, errors="coerce"), "pruned": pd.to_numeric(pruned, errors="coerce")}


def load_runs(tracking_uri: str, studies: Sequence[str]) -> RunData:
    """Read the named studies (most recent parent run of each) into DataFrames.

    Raises ReportError naming the study when a study is unknown or has no trials.
    """
    names = list(dict.fromkeys([studies] if isinstance(studies, str) else studies))
    if not names:
        raise ReportError("no study given: name at least one study")
    _check_store(tracking_uri, names)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise ReportError(
            f"study {_names(names)} not found: {tracking_uri} has no experiment {EXPERIMENT!r}"
        )
    parents: dict[str, Run] = {}
    for run in _search(client, experiment.experiment_id, "tags.`sr.role` = 'study'"):
        parents.setdefault(run.data.tags.get(TAG_STUDY, run.info.run_name), run)  # newest first
    unknown = [n for n in names if n not in parents]
    if unknown:
        known = ", ".join(sorted(parents)) or "none"
        raise ReportError(
            f"study {_names(unknown)} not found in {tracking_uri} (studies there: {known})"
        )

    trial_rows, history_rows, study_rows, crop_rows, audit_rows, empty = [], [], [], [], [], []
    param_names: set[str] = set()
    for name in names:
        parent = parents[name]
        children, final, audits = _children(client, experiment.experiment_id, parent.info.run_id)
        audit_rows.extend(_audit_row(run, parent) for run in audits)
        if not children:
            empty.append(name)
        study_rows.append(_study_row(parent, len(children), final))
        if final is not None:
            crop_rows.extend(_crop_scores(final))  # the comparison shows the final model first
        for run in children:
            param_names.update(run.data.params)
            trial_rows.append(_trial_row(run, parent))
            history_rows.extend(_history(client, run))
            crop_rows.extend(_crop_scores(run))
    if empty:
        raise ReportError(f"study {_names(empty)} has no trials in {tracking_uri}")

    trials = pd.DataFrame(trial_rows)
    trials = _numeric_params(trials, (param_names - {"epochs", "arch"}) | {"max_epochs"})
    history = pd.DataFrame(history_rows, columns=["run_id", "epoch", *EPOCH_METRICS, "logged_at"])
    history = history.astype({k: float for k in (*EPOCH_METRICS, "logged_at")})
    trials = _fill_from_history(trials, history)
    meta = trials[["run_id", "name", "study", "arch", "status"]]
    history = meta.merge(history, on="run_id", how="inner")
    history = history.sort_values(["study", "name", "epoch"], kind="stable").reset_index(drop=True)
    trials = trials.reset_index(drop=True)
    crops = pd.DataFrame(crop_rows, columns=CROP_SCORE_COLUMNS).astype({m: float for m in CROP_METRICS})
    studies_df, audits_df = pd.DataFrame(study_rows), pd.DataFrame(audit_rows, columns=AUDIT_COLUMNS)
    full = [*trials.loc[trials["status"].isin(FINISHED), "run_id"], *audits_df.loc[audits_df["status"].isin(FINISHED),
            "run_id"], *studies_df["run_id"], *studies_df["final/run_id"].dropna()]
    return RunData(trials=trials, history=history, studies=studies_df, tracking_uri=tracking_uri,
                   crop_scores=crops, audits=audits_df, images=_val_images(client, full))


def _val_images(client: MlflowClient, run_ids: Sequence[str]) -> dict[str, dict]:
    """Each run's VAL_IMAGES that has one (older runs have none: their comparisons carry no interval)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
        for run_id in dict.fromkeys(run_ids):
            if not any(a.path == VAL_IMAGES for a in client.list_artifacts(run_id)):
                continue
            local = client.download_artifacts(run_id, VAL_IMAGES, str(Path(tmp) / run_id))
            try:
                out[run_id] = json.loads(Path(local).read_text())
            except (OSError, ValueError):
                continue
    return out


def load_artifact(tracking_uri: str, run_id: str, path: str) -> bytes | None:
    """Bytes of one run artifact, or None when the run has no such artifact."""
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = str(Path(path).parent) if Path(path).parent != Path(".") else None
    if path not in {a.path for a in client.list_artifacts(run_id, parent)}:
        return None
    with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()


def load_artifact_folder(tracking_uri: str, run_id: str, folder: str) -> dict[str, bytes]:
    """Every file under one artifact folder of a run, by its path relative to the folder, fetched in
    one download; empty when the run has no such folder."""
    client = MlflowClient(tracking_uri=tracking_uri)
    if not client.list_artifacts(run_id, folder):
        return {}
    with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
        local = Path(client.download_artifacts(run_id, folder, tmp))
        return {p.relative_to(local).as_posix(): p.read_bytes() for p in sorted(local.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def _no_progress_bar():
    """MLflow draws a download progress bar on stderr; a report has nothing to show for it."""
    key, old = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
