"""The tracking contract, in one place, at the bottom of the import graph: what `search` writes to
MLflow and Optuna and `reports` reads back (docs/tracking-schema.md is the prose of it): the statuses
and their Optuna and MLflow states, the metric names and the objective, tag, summary and artifact
names, the run name and the best-trial rule, the workdir's file names. sr_core, search and reports all
import these names, so a writer and its reader cannot drift apart. Plain Python, importing nothing of
the project (and `sr_core/__init__` imports nothing): reports may import this module and no other
part of sr_core (tests/test_layering.py).
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

EXPERIMENT = "sr-search"
# MLflow 3 opens an experiment on its GenAI overview unless it is marked as model training.
#: Tag `sr.role` of a run: the study (parent), a search trial, or the final step (a child of the
#: study run trained from the best configuration known when it starts, the search's or an audited
#: trial's: TAG_FINAL_FROM; never counted among the trials).
ROLE_STUDY, ROLE_TRIAL, ROLE_FINAL = "study", "trial", "final"
FINAL_SUFFIX = "-final"  # the final run's name: the trial's run name + this
#: The pruning audit ([pruner] audit = K): a pruned trial resumed from its last checkpoint to the full
#: budget, as a child run of its own (never counted among the trials; the pruned trial stays pruned).
ROLE_AUDIT, AUDIT_SUFFIX = "audit", "-audit"
#: Tags of an audit run: the pruned trial's run id, the epoch it was stopped at, its place in the rung
#: ranking (1 = the best pruned trial) and how many pruned trials were ranked.
AUDIT_TAGS = ("audit.of", "audit.stopped_at", "audit.rank", "audit.pruned")
#: Tags of the final run: where the configuration it trains came from, FINAL_FROM_SEARCH (the search's
#: best trial) or FINAL_FROM_AUDIT (an audit run that ended better than it: the final step trains the
#: best configuration known when it starts), and the run id of that trial or audit run. A final run
#: without them (before these tags) trained the search's best.
TAG_FINAL_FROM, TAG_FINAL_FROM_RUN = "final.from", "final.from_run"
FINAL_FROM_SEARCH, FINAL_FROM_AUDIT = "search", "audit"

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

# -- tag, summary and artifact names ---------------------------------------------------------------
#: Tags of every run: its role (ROLE_*), its status (STATUSES) and why it ended (empty when nothing
#: needs explaining), the study's name; a trial's Tune id and the GPU share Ray placed it with.
TAG_ROLE, TAG_STATUS, TAG_REASON, TAG_STUDY = "sr.role", "status", "reason", "study"
TAG_TRIAL_ID, TAG_GPUS = "trial_id", "ray.gpus"
#: Summary metrics of a trial besides its best epoch's (`summary_key`): epochs it ran, seconds it took.
EPOCHS_RUN, WALL_SECONDS = "epochs_run", "wall_seconds"
#: A trial's weights at its best epoch (the artifact, and the file in its checkpoint folder), and the
#: grid of its predictions.
BEST_WEIGHTS, SAMPLES_IMAGE = "best.pt", "samples.png"
#: Each val image's metrics, {"val/mse": [per image], ...} in the val set's order: a trial's, audit's or
#: final run's at its best epoch, and bicubic's on the study run (with "names"). What every comparison's
#: paired bootstrap (reports.noise) resamples.
VAL_IMAGES = "val_images.json"
#: The study run's cost estimate: device-seconds by part, the wall, each config's predicted epoch
#: (search.run.estimate.as_json), what `bench estimate` sets against what the study spent.
ESTIMATE_ARTIFACT = "estimate.json"

# -- the workdir -------------------------------------------------------------------------------------
#: `--workdir` unless given; inside it the MLflow store (unless --tracking-uri), one folder per study
#: and the reports.
DEFAULT_WORKDIR, MLFLOW_DB, STUDIES_DIR, REPORTS_DIR = "sr-runs", "mlflow.db", "studies", "reports"

#: The val metrics of every epoch: the study's own (RGB, no border crop) and the papers' (Y of BT.601
#: YCbCr, `scale` pixels cropped from each border); see docs/tracking-schema.md.
VAL_METRICS = ("val/mse", "val/psnr", "val/ssim", "val/psnr_y", "val/ssim_y")
#: The papers' figures on a folder of full-size images ([study].full_val), scored in the loop every
#: [study].full_val_every epochs and at a trial's last epoch, as `sr-search evaluate` scores a folder
#: (sr_core.full_val): full/<one of EVAL_METRICS>. Logged (step = epoch) only at the epochs scored.
FULL_VAL_PREFIX = "full/"
FULL_METRICS = ("full/psnr_y", "full/ssim_y", "full/psnr")
#: What a study may choose as its objective ([search] metric): the val metrics, and the full/ ones
#: when it names a full-size val folder.
OBJECTIVE_METRICS = (*VAL_METRICS, *FULL_METRICS)
#: Logged every epoch of a trial, with step = epoch (1-based); FULL_METRICS at the epochs scored.
EPOCH_METRICS = ("train/mse", *VAL_METRICS, *FULL_METRICS, "lr", "epoch_seconds", "images_per_s")
#: The study run's own metrics (no step).
STUDY_METRICS = (
    "estimate/grid_size", "estimate/trials", "estimate/flops_total", "estimate/device_hours",
    "estimate/wall_hours", "estimate/epochs_fraction", "estimate/flops_expected", "bicubic/val_mse", "bicubic/val_psnr", "bicubic/val_ssim", "bicubic/train_psnr",
    "bicubic/full_psnr_y", "bicubic/full_ssim_y", "bicubic/full_psnr",  # with [study].full_val
    "actual/device_hours", "actual/wall_hours",
    "outside/sr-search/gain_db", "outside/pil/gain_db", "outside/opencv/gain_db",
    # beside a final step, outside/* is the final model's and these are the search's best's
    "outside_search/sr-search/gain_db", "outside_search/pil/gain_db", "outside_search/opencv/gain_db",
)  # fmt: skip
#: A trial's params besides its hyperparameters (which are TrialConfig's logged fields).
TRIAL_SHAPE_PARAMS = ("n_params", "flops_per_image")
#: A user arch's trial (sr_core.archs): the names of its other [space] parameters, comma-separated; each
#: is also a param of its own. The report draws their effects as it draws blocks' and channels'.
ARCH_PARAMS = "arch_params"

# -- comparison crops (sr_core.crops chooses them, reports.comparison lines them up) ----------------
#: On the study run: the crops' identity (name, key, photo, bicubic PSNRs) and the rule that chose them.
CROPS_MANIFEST = "crops.json"
#: Per crop of a trial, logged at its best epoch's weights (step = that epoch).
CROP_METRICS = ("psnr", "psnr_y")


def crop_image(key: str, kind: str = "sr") -> str:
    """Artifact path of a crop's image: a trial's prediction ("sr", crops/KEY.png, one path in every
    trial so MLflow's run comparison lines them up), or the study run's "hr" and "bicubic" ones."""
    if kind not in ("sr", "hr", "bicubic"):
        raise ValueError(f"kind must be 'sr', 'hr' or 'bicubic', got {kind=}")
    return f"crops/{key}.png" if kind == "sr" else f"crops/{kind}/{key}.png"


def crop_metric(key: str, metric: str) -> str:
    """A trial's metric on one crop: crops/KEY/psnr, crops/KEY/psnr_y."""
    return f"crops/{key}/{metric}"


# -- statuses: one story in every store ----------------------------------------------------------
#: Ran to their end: their best value is a final value. Only these can be "the best trial".
FINISHED = ("completed", "early_stopped")
#: Ended with weights worth keeping (best.pt and samples.png are logged for these).
WITH_WEIGHTS = FINISHED + ("pruned",)
#: Ended for good: a resume never runs them again.
ENDED = WITH_WEIGHTS + ("diverged", "oom", "failed")
#: Not ended: `running` while a driver runs it, `paused` while it waits at a rung of a synchronous
#: schedule (it resumes from that epoch if it is among the best there), `interrupted` when the driver
#: stopped (resumable).
UNFINISHED = ("running", "paused", "interrupted")
STATUSES = UNFINISHED + ENDED
#: How the trainer itself ends a trial (sr_core.train); the search adds failed, interrupted, running
#: and paused.
TRAINER_STATUSES = ("completed", "early_stopped", "pruned", "diverged", "oom")
#: Optuna's state for each ended status (the Optuna trial also carries user attrs status and reason);
#: a trial not ended is RUNNING there.
OPTUNA_STATE = {"completed": "COMPLETE", "early_stopped": "COMPLETE", "pruned": "PRUNED",
                "diverged": "FAIL", "oom": "FAIL", "failed": "FAIL"}
#: MLflow's run state for each status.
MLFLOW_STATE = {**{s: "FINISHED" for s in ENDED}, "failed": "FAILED", "interrupted": "KILLED",
                "running": "RUNNING", "paused": "SCHEDULED"}

# -- the best trial ------------------------------------------------------------------------------
#: The search objective unless a study names another logged metric ([search] metric, mode).
OBJECTIVE, OBJECTIVE_MODE = "val/mse", "min"
#: The study run's params that hold its objective (search.study.Study.flat_params writes them).
OBJECTIVE_PARAM, MODE_PARAM = "search.metric", "search.mode"


def objective_of(params: Mapping[str, str]) -> tuple[str, str]:
    """(metric, mode) a study optimised, from its study run's params; the default for older runs."""
    return params.get(OBJECTIVE_PARAM) or OBJECTIVE, params.get(MODE_PARAM) or OBJECTIVE_MODE


#: Summary metric of a trial (its best epoch's value) -> the report's column for it.
BEST_COLUMNS = {**{f"best/{m.replace('/', '_')}": m for m in ("train/mse", *OBJECTIVE_METRICS)},
                "best/epoch": "best_epoch"}


def summary_key(metric: str) -> str:
    """The summary metric holding a trial's value of `metric` at its best epoch: val/mse -> best/val_mse."""
    return "best/" + metric.replace("/", "_")


def best_position(statuses: Sequence[str], values: Sequence[float], mode: str = OBJECTIVE_MODE) -> int | None:
    """The rule for the best trial, over trials listed in start order: among those that ran to their
    end (FINISHED) with a finite value, the lowest value ("min") or the highest ("max"); ties go to
    the trial listed first. None when no trial finished. Pruned trials are never best: their value
    is that of a shorter training."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode=}")
    sign = 1.0 if mode == "min" else -1.0
    best, best_value = None, math.inf
    for i, (status, value) in enumerate(zip(statuses, values)):
        if status not in FINISHED or value is None or not math.isfinite(float(value)):
            continue
        if sign * float(value) < best_value:
            best, best_value = i, sign * float(value)
    return best


def pruning_regret(winner: float, audited: float, mode: str = OBJECTIVE_MODE) -> float:
    """The pruning regret: how much better a pruned trial resumed to the full budget (`audited`) ended
    than the search's winner, relative to the winner's value; 0 when it is not better. `run`'s audit
    line and the report's verdict both use it."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode=}")
    better = winner - audited if mode == "min" else audited - winner
    return max(better, 0.0) / abs(winner)


# -- evaluation on benchmark folders (`sr-search evaluate`) -----------------------------------------
#: Each the mean over a folder's images of a per-image figure: PSNR and SSIM on Y (BT.601, `scale`
#: pixels cropped from each border), PSNR on RGB (no crop); the SR output rounded to 8 bits first.
EVAL_METRICS = ("psnr_y", "ssim_y", "psnr")
#: Figures besides a trial's own forward: the bicubic baseline (on the study run) and the x8
#: self-ensemble (on the trial run). Papers print the ensemble with a "+" suffix, which MLflow refuses
#: in a metric name: the key says `self_ensemble`, tables and the report say "+".
BICUBIC, SELF_ENSEMBLE = "bicubic", "self_ensemble"
ENSEMBLE_SUFFIX = "+"
#: Forwards of the x8 self-ensemble (sr_core.dihedral.NUM_OPS): its FLOPs per image are 8 forwards'.
ENSEMBLE_FORWARDS = 8
#: Tags on each run evaluated on a folder: the LR kernel, the image count and whether the latest
#: evaluation made the ensemble figures ("true"/"false"; older ones may linger as metrics).
EVAL_TAGS = ("lr_kernel", "images", SELF_ENSEMBLE)
#: What a folder may be called: its name is part of metric keys (MLflow allows letters, digits, _ . - /).
EVAL_FOLDER_PATTERN = r"[A-Za-z0-9_.-]+"
#: The fields of each row of a run's per-image artifact (`eval_artifact`); variant is "" for the
#: trial's own forward.
PER_IMAGE_FIELDS = ("image", "height", "width", "variant", *EVAL_METRICS)


def eval_key(folder: str, metric: str, variant: str | None = None) -> str:
    """eval/<folder>/<metric>, or eval/<folder>/<variant>/<metric> for bicubic and self_ensemble."""
    return "/".join(["eval", folder, *([variant] if variant else []), metric])


def parse_eval_key(key: str) -> tuple[str, str | None, str] | None:
    """(folder, variant or None, metric) of an `eval_key`; None for any other key."""
    parts = key.split("/")
    if parts[0] != "eval" or parts[-1] not in EVAL_METRICS:
        return None
    if len(parts) == 3:
        return parts[1], None, parts[2]
    if len(parts) == 4 and parts[2] in (BICUBIC, SELF_ENSEMBLE):
        return parts[1], parts[2], parts[3]
    return None


def eval_tag(folder: str, what: str) -> str:
    """eval/<folder>/<what> for `what` in EVAL_TAGS."""
    if what not in EVAL_TAGS:
        raise ValueError(f"what must be one of {EVAL_TAGS}, got {what=}")
    return f"eval/{folder}/{what}"


def eval_artifact(folder: str) -> str:
    """The run's per-image figures on a folder: a JSON list of PER_IMAGE_FIELDS rows."""
    return f"eval/{folder}.json"


def eval_label(run_name: str, variant: str | None) -> str:
    """How tables name a row: `bicubic`, the run name, or the run name with papers' "+" for the ensemble."""
    if variant == BICUBIC:
        return BICUBIC
    return run_name + (ENSEMBLE_SUFFIX if variant == SELF_ENSEMBLE else "")


# -- files others read, and URLs others see ---------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """The one way sr-search writes a file that someone else may read (a report, a cache, a state
    file): yield a temporary sibling that replaces `path` only if the block succeeds, so a reader sees
    the old file or the new one, never half of one; a kill mid-write leaves at most a hidden
    `.NAME.*.tmp` beside it. The parent folder must exist. The file gets the permissions any new file
    of the user's gets (0666 less the umask), as other tools' files do, not mkstemp's owner-only 0600.

        with atomic_path(out) as tmp:
            torch.save(obj, tmp)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc/self/status): setting
    it to read it would, for an instant, give files other threads create (the checkpoint writer's) 0666."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    current = os.umask(0)  # elsewhere reading the umask means setting it: set it straight back
    os.umask(current)
    return current


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


#: What a password in a URL shown to anyone (a log line, a report, a tag) is replaced by.
MASK = "***"


def mask(url: str | None) -> str | None:
    """The URL with any password replaced by ***; URLs without one are returned unchanged."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
