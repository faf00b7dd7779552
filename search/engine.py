"""Run a study with Ray Tune: Optuna samples, ASHA prunes, MLflow records, Ray places and retries.

    inputs checked (study, URIs, cluster address, data) before anything is written
    data prepared once in the driver (cache file), shipped to trials through Ray's object store
    Tuner(run_trial, StudySearcher, PersistentASHA) -> one report per epoch (+ checkpoint)
    driver: StudyCallback -> MLflow (parent run = study, child run = trial) and Optuna, one decision each

Resume: the Tune experiment, the Optuna storage and the MLflow parent run are all named in the study's
folder of the workdir (`state.json`), so `--resume` after a crash (even kill -9 of the driver) or an
interrupt picks up where the last persisted epoch checkpoint of every trial left off, and trials that
ended are never run again. A lock on the study folder keeps a second driver out.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from search import secrets
from search.cluster import (check_address, local_scratch_cleanup, measure_trial_device, ray_session,
                            reap_orphans, trial_resources)
from search.estimate import Estimate, estimate_study
from search.interrupts import Interrupted, interrupt_guard
from search.outcome import best_of
from search.study import Study, StudyError, parse_study
from search.testhooks import pause_point
from search.workdir import LOCK_FILE, STATE_FILE, Workdir, held_lock
from sr_core import metrics
from sr_core.data import bicubic_psnr, bicubic_upscale, load_cached, prepare_dataset, to_float
from sr_core.files import remove_stale_temporaries, write_text_atomic


@dataclass(frozen=True)
class RunOptions:
    workdir: Path = Path("sr-runs")
    tracking_uri: str | None = None
    address: str | None = None  # an existing Ray cluster ("auto", HOST:PORT or ray://HOST:PORT)
    storage: str | None = None  # Optuna storage URL (postgresql://... across machines)
    ray_storage: str | None = None  # Tune's storage_path (a shared folder or URI across machines)
    resume: bool = False
    dry_run: bool = False
    tflops: float | None = None  # estimate for another device's effective TFLOP/s
    report: bool = True
    yes: bool = False  # start even when the estimate is far beyond a working day
    overrides: dict = field(default_factory=dict)  # CLI flags over the study file, replayed on --resume
    resume_command: str = ""  # the exact command that resumes this study, for messages


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


@dataclass
class _Session:
    """A study being run: what its steps share."""
    study: Study
    opts: RunOptions
    workdir: Workdir
    state: dict
    tracking_uri: str  # the real one (may hold a password: never print it, use state's)
    data_path: Path
    restoring: bool

    @property
    def study_dir(self) -> Path:
        return self.workdir.study_dir(self.study.name)

    def save_state(self) -> None:
        write_text_atomic(self.study_dir / STATE_FILE, json.dumps(self.state, indent=2))


def run_study(study: Study, opts: RunOptions, log=print) -> StudyOutcome:
    """Check the inputs, prepare the data, estimate, run the study, summarise and report.

    Raises StudyError (and subclasses) for what a user can fix, before anything is written, and
    `Interrupted` after a Ctrl-C/SIGTERM once the running trials are tagged `interrupted`.
    """
    workdir = Workdir(opts.workdir)
    with interrupt_guard() as guard, contextlib.ExitStack() as stack:
        state = _load_state(workdir.study_dir(study.name) / STATE_FILE)
        study, restoring = _study_to_run(study, state, opts, workdir)
        tracking_uri, storage = _check_services(opts, state, workdir)
        data_path, n_train, n_val = prepare(study, workdir, log)
        env = _driver_env(tracking_uri, storage)
        os.environ.update(env)
        # With ray://, Tune's driver loop runs on the cluster's head: it gets the same environment.
        cluster = stack.enter_context(ray_session(opts.address, env, log))
        guard.install()  # ray.init replaced the driver's SIGTERM handler with its own
        per_trial, concurrency = trial_resources(study, cluster)
        estimate = _estimate(study, opts, per_trial, concurrency, n_train, n_val)
        log(f"study {study.name}: {study.description}".rstrip(": "))
        log(f"data         : {study.data} ({n_train} train / {n_val} val patches, cache {data_path.name})")
        log(f"cluster      : {cluster.nodes} node(s), {cluster.cpus:g} CPU, {cluster.gpus:g} GPU ({cluster.address})")
        log(f"tracking     : MLflow {secrets.mask(tracking_uri)}; Optuna "
            f"{secrets.mask(storage) or 'journal in ' + str(workdir.study_dir(study.name))}")
        for line in estimate.lines():
            log(line)
        outcome = StudyOutcome(study.name, estimate)
        if opts.dry_run:
            return outcome
        if not (opts.yes or restoring) and estimate.wall_hours > TOO_LONG_HOURS:
            raise StudyError(_too_long(study, estimate, cluster))
        stack.enter_context(held_lock(workdir.study_dir(study.name) / LOCK_FILE, f"study {study.name!r}"))
        session = _Session(study, opts, workdir, state, tracking_uri, data_path, restoring)
        _open_tracking(session, estimate, storage, log)
        _note_ray_session(session, cluster, log)
        outcome.parent_run_id = session.state["parent_run_id"]
        _fit(session, guard, per_trial, concurrency, log)
        return _finish(session, outcome, log)


TOO_LONG_HOURS = 24.0  # "far beyond a working day": past this, `run` starts only with --yes


def _too_long(study: Study, estimate: Estimate, cluster) -> str:
    """Say plainly that this study does not fit this hardware, and what would."""
    from search.estimate import ASSUMED_GPU_TFLOPS
    hours = estimate.wall_hours
    span = f"{hours:,.0f} h" + (f" (about {hours / 24:,.0f} days)" if hours > 48 else "")
    gpu_hours = estimate.flops_total / (ASSUMED_GPU_TFLOPS * 1e12) / 3600
    return (f"study {study.name!r} would take about {span} of wall time on what this run found "
            f"({cluster.nodes} node(s), {cluster.cpus:g} CPU, {cluster.gpus:g} GPU; {estimate.device}), "
            "counting every epoch of every trial (ASHA prunes part of that).\n"
            "  What fits instead:\n"
            "    - the demo, made for a CPU: sr-search run --study demo\n"
            f"    - fewer epochs or trials: --epochs N, --trials N (the estimate scales with both)\n"
            f"    - a GPU: about {gpu_hours:,.1f} GPU-hours at an assumed {ASSUMED_GPU_TFLOPS:g} TFLOP/s "
            "(run there, or estimate here with --tflops T)\n"
            "    - a Ray cluster with GPUs: --address HOST:PORT\n"
            "  Check any of these with --dry-run; pass --yes to start this one anyway.")


def _driver_env(tracking_uri: str, storage: str | None) -> dict[str, str]:
    """What Tune's driver loop needs in its environment: Tune's settings and the real URIs."""
    from search.tuner import TUNE_ENV
    env = {k: os.environ.get(k, v) for k, v in TUNE_ENV.items()}
    env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    env.update({k: v for k, v in ((secrets.TRACKING_ENV, tracking_uri), (secrets.STORAGE_ENV, storage)) if v})
    return env


def _load_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _study_to_run(study: Study, state: dict, opts: RunOptions, workdir: Workdir) -> tuple[Study, bool]:
    """The study as started (its snapshot) when resuming; refuse to start a study over its own runs."""
    study_dir = workdir.study_dir(study.name)
    if state and not opts.resume and not opts.dry_run:
        raise StudyError(f"study {study.name!r} already has runs in {study_dir}: pass --resume to "
                         "continue it, or use another --workdir for a fresh one")
    if not (opts.resume and state):
        return study, False
    snapshot = study_dir / "study.toml"
    resumed = parse_study(snapshot.read_text(), str(snapshot), study.name)
    return resumed.with_overrides(**state.get("overrides", {})), True


def _check_services(opts: RunOptions, state: dict, workdir: Workdir) -> tuple[str, str | None]:
    """The tracking URI and Optuna storage URL to use (real, with passwords), each checked to work."""
    from search.optuna_link import check_storage
    from search.tracking import check_reachable
    tracking = _stored_flag(opts.tracking_uri, state.get("tracking_uri"), "--tracking-uri") or workdir.mlflow_uri
    check_reachable(tracking)
    storage = _stored_flag(opts.storage, state.get("storage"), "--storage")
    if storage:
        check_storage(storage)
    check_address(opts.address)
    return tracking, storage


def _stored_flag(given: str | None, stored: str | None, flag: str) -> str | None:
    """A URI flag on --resume: the one the study started with (passwords are never stored, so a
    study whose URI held one needs the flag again, with the same URI)."""
    if given and stored and secrets.mask(given) != stored:
        raise StudyError(f"{flag} {secrets.mask(given)} differs from the {stored} this study started with; "
                         f"resume with the same {flag}")
    if not given and secrets.is_masked(stored):
        raise StudyError(f"this study's {flag} holds a password, which is never stored: pass "
                         f"{flag} {stored} again (with the password) to resume it")
    return given or stored


def prepare(study: Study, workdir: Workdir, log=print) -> tuple[Path, int, int]:
    """Validate and cache the study's data once; (cache path, train images, val images).

    Every check happens before the first write; a lock keeps two drivers from preparing at once,
    which also makes it safe to sweep what a killed preparation left behind.
    """
    def progress(line: str) -> None:
        log(line)
        if line.startswith("prepared data"):
            pause_point("prepare")

    cache = workdir.data_cache
    lock = held_lock(cache / ".lock", f"data cache {cache}") if cache.exists() else contextlib.nullcontext()
    with lock:
        remove_stale_temporaries(cache)
        data_path = prepare_dataset(study.data, cache, progress=progress)
    data = load_cached(data_path)
    return data_path, len(data.train), len(data.val)


def _estimate(study: Study, opts: RunOptions, per_trial: dict, concurrency: int, n_train: int,
              n_val: int) -> Estimate:
    if opts.tflops:
        device, flops = f"target GPU (--tflops {opts.tflops:g})", opts.tflops * 1e12
    else:
        device, flops = measure_trial_device(per_trial)
    return estimate_study(study, n_train, n_val, device, flops, concurrency)


def bicubic_baseline(pairs) -> dict[str, float]:
    sums = {"val_mse": 0.0, "val_psnr": 0.0, "val_ssim": 0.0}
    for start in range(0, len(pairs), 256):
        lr, hr = to_float(pairs.lr[start:start + 256]), to_float(pairs.hr[start:start + 256])
        pred = bicubic_upscale(lr)
        sums["val_mse"] += metrics.mse(pred, hr).sum().item()
        sums["val_psnr"] += metrics.psnr(pred, hr).sum().item()
        sums["val_ssim"] += metrics.ssim(pred, hr).sum().item()
    return {f"bicubic/{k}": v / len(pairs) for k, v in sums.items()}


def _open_tracking(s: _Session, estimate: Estimate, storage: str | None, log) -> None:
    """The MLflow parent run and the Optuna study: made for a new study, reopened for a resumed one.
    Runs a killed driver left RUNNING are repaired to `interrupted` before anything else."""
    from mlflow.tracking import MlflowClient

    from search.optuna_link import OptunaTarget
    from search.tracking import ensure_experiment, mark_unfinished, set_status, start_study_run
    client = MlflowClient(s.tracking_uri)
    experiment_id = ensure_experiment(client, s.workdir.artifacts if not s.opts.tracking_uri else None)
    if s.restoring:
        parent = s.state["parent_run_id"]
        repaired = mark_unfinished(client, experiment_id, parent, "the driver stopped while it ran")
        if repaired:
            log(f"repaired     : {len(repaired)} run(s) a stopped driver left running: {', '.join(repaired)}")
        set_status(client, parent, "running")
        log(f"resuming     : MLflow run {parent} in {secrets.mask(s.tracking_uri)}")
        return
    s.study_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(s.study_dir / "study.toml", s.study.text)
    data = load_cached(s.data_path)
    values = {**estimate.as_metrics(), **bicubic_baseline(data.val),
              # LR remade with the val kernel: train and val compared on content alone
              "bicubic/train_psnr": bicubic_psnr(data.train, kernel="sr-search")}
    parent = start_study_run(client, experiment_id, s.study, values, {
        "device": estimate.device, "data.train_images": len(data.train), "data.val_images": len(data.val)})
    name = f"{s.study.name}-{parent[:8]}"
    s.state = {"parent_run_id": parent, "experiment_id": experiment_id,
               "tracking_uri": secrets.mask(s.tracking_uri),
               "storage": secrets.mask(storage), "optuna_study": name,
               # where the Optuna study lives: the (masked) RDB URL, or the journal in the study folder
               "optuna": secrets.mask(storage) or str(s.study_dir / "optuna.journal"),
               "ray_storage": s.opts.ray_storage or str(s.study_dir / "ray"),
               "wall_seconds": 0.0, "overrides": s.opts.overrides,
               "estimate_seconds": estimate.wall_hours * 3600}
    OptunaTarget(name, s.state["optuna"]).create_study()
    s.save_state()


def _note_ray_session(s: _Session, cluster, log) -> None:
    """Reap what the last driver's private Ray left behind (after a kill -9), and remember this one."""
    reaped = reap_orphans(s.state.get("ray_session_dir"))
    if reaped:
        log(f"cleaned up   : {reaped} process(es) a killed driver's Ray left running")
    s.state["ray_session_dir"] = cluster.session_dir
    s.save_state()


def _fit(s: _Session, guard, per_trial: dict, concurrency: int, log) -> None:
    """Build (or restore) the Tuner and run it; on a signal, tag what ran `interrupted` and re-raise."""
    from search.tuner import make_tuner
    local_scratch_cleanup(s.state["optuna_study"])  # what a killed driver's trials left on this node
    tuner = make_tuner(s, per_trial, concurrency, log)
    log(f"running      : {per_trial['cpu']:g} CPU + {per_trial['gpu']:g} GPU per trial, "
        f"{concurrency} at a time, Ray experiment {s.state['ray_storage']}")
    t0 = time.monotonic()
    try:
        with guard.tune():
            tuner.fit()
    except Interrupted as exc:
        _mark_interrupted(s, f"interrupted by {exc}; resumable", log)
        raise
    finally:
        s.state["wall_seconds"] = s.state.get("wall_seconds", 0.0) + time.monotonic() - t0
        s.save_state()
        local_scratch_cleanup(s.state["optuna_study"])


def _mark_interrupted(s: _Session, reason: str, log) -> None:
    from mlflow.tracking import MlflowClient

    from search.tracking import mark_unfinished
    names = mark_unfinished(MlflowClient(s.tracking_uri), s.state["experiment_id"], s.state["parent_run_id"],
                            reason)
    log(f"interrupted  : {len(names)} running trial(s) stopped and tagged interrupted"
        + (f": {', '.join(names)}" if names else ""))


def _finish(s: _Session, outcome: StudyOutcome, log) -> StudyOutcome:
    """Statuses, the best trial (one rule: search.outcome.best_of), actual cost, the report."""
    from mlflow.tracking import MlflowClient

    from search.tracking import log_values, set_status, study_trials
    client = MlflowClient(s.tracking_uri)
    parent = s.state["parent_run_id"]
    trials = study_trials(client, s.state["experiment_id"], parent)
    outcome.statuses = dict(Counter(t["status"] for t in trials))
    outcome.best = best_of(trials)
    outcome.wall_seconds = s.state["wall_seconds"]
    outcome.baseline_psnr = client.get_run(parent).data.metrics.get("bicubic/val_psnr")
    gpu_weight = s.study.resources.gpus_per_trial or 1.0
    log_values(client, parent, {
        "actual/device_hours": sum(float(t.get("wall_seconds") or 0) for t in trials) * gpu_weight / 3600,
        "actual/wall_hours": outcome.wall_seconds / 3600})
    if outcome.best:
        client.set_tag(parent, "best_run_id", outcome.best["run_id"])
        outcome.outside = _outside_photos(client, parent, outcome.best["run_id"], log)
    client.set_tag(parent, "mlflow.note.content", _description(s.study, trials, outcome))
    set_status(client, parent, "completed")
    if s.opts.report:
        pause_point("report")
        outcome.report_path = write_report(s.tracking_uri, [s.study.name], s.workdir.report_path(s.study.name), log)
        if outcome.report_path is not None:
            client.log_artifact(parent, str(outcome.report_path))
    return outcome


def _outside_photos(client, parent: str, best_run_id: str, log) -> dict[str, float]:
    """The best model on photos from outside scikit-image, per LR kernel (search.generalise): what a
    user's own photos will see. Logged on the study run as outside/<kernel>/{gain_db,model_psnr,
    bicubic_psnr}; a few seconds on a CPU."""
    import tempfile

    from search.generalise import generalisation
    from search.tracking import log_values
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scores = generalisation(client.download_artifacts(best_run_id, "best.pt", tmp))
    except Exception as exc:  # a missing optional photo package must not fail a finished study
        log(f"warning: outside-photo check skipped ({type(exc).__name__}: {exc})")
        return {}
    log_values(client, parent, {f"outside/{k}/{m}": getattr(v, m) for k, v in scores.items()
                                for m in ("gain_db", "model_psnr", "bicubic_psnr")})
    gains = {k: v.gain_db for k, v in scores.items()}
    log("outside      : best model vs bicubic on photos outside scikit-image, by LR kernel: "
        + ", ".join(f"{k} {g:+.2f} dB" for k, g in gains.items()))
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
        text += (f"\n\nBest: **{b['name']}**, val/psnr {float(b.get('best/val_psnr', float('nan'))):.2f} dB"
                 f"{gain} (val/mse {float(b['best/val_mse']):.5f}).")
        if outcome.outside:
            text += (" On photos from outside scikit-image: "
                     + ", ".join(f"{g:+.2f} dB ({k} LR)" for k, g in outcome.outside.items()) + ".")
    return text


def write_report(tracking_uri: str, studies: list[str], out: Path, log=print) -> Path | None:
    try:
        from reports import build_report
    except ImportError:  # the reports package is optional at this stage of the project
        return None
    path = build_report(tracking_uri, studies, out)
    log(f"report       : {path}")
    return path
