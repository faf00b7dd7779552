"""Run a study with Ray Tune: Optuna samples, a scheduler prunes, MLflow records, Ray places and retries.

    inputs checked (study, URIs, cluster address, data) before anything is written
    data prepared and loaded once in the driver, shipped to trials through Ray's object store
    Tuner(run_trial, StudySearcher, PersistentASHA) (search/tune/) -> one report per epoch (+ checkpoint)
    driver: StudyCallback -> MLflow (parent run = study, child run = trial) and Optuna, one decision each
    then search.run.steps: the pruning audit ([pruner] audit) and the final step ([final]), each its own experiment
    at the end: search.run.closing (statuses, the best trial, actual cost, the report)

Resume: the Tune experiment, the Optuna storage and the MLflow parent run are all named in the study's
folder of the workdir (`state.json`, search.state.StudyState), so `--resume` after a crash (even
kill -9 of the driver) or an interrupt picks up where the last persisted epoch checkpoint of every
trial left off, and trials that ended are never run again. A lock on the study folder keeps a second
driver out. The environment variables the driver sets for Tune are restored when the run ends.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

from search import milestones, redaction, tracking
from search.errors import StudyError
from search.run import steps
from search.run.closing import StudyOutcome, finish
from search.run.cluster import (check_address, final_resources, measure_trial_device, ray_session, reap_orphans,
                                trial_resources)
from search.run.estimate import ASSUMED_GPU_TFLOPS, Estimate, estimate_study, short_epochs
from search.run.estimate import as_json as estimate_json
from search.run.interrupts import interrupt_guard
from search.run.session import Prepared, RunOptions, Session
from search.state import StudyState
from search.study import Study, parse_study
from search.tune.packing import AUTO, Packing, plan_packing
from search.workdir import LOCK_FILE, Workdir, held_lock
from sr_core.contract import ESTIMATE_ARTIFACT
from sr_core.baselines import bicubic_images, bicubic_psnr, bicubic_scores, train_pairs
from sr_core.data import SRData, load_cached, prepare_dataset
from sr_core.photos import Photos
from sr_core.files import remove_stale_temporaries, write_text_atomic
from sr_core.full_val import FullImage, FullVal
from sr_core.full_val import bicubic as full_val_bicubic
from sr_core.memory import GIB, IMAGE_BYTES


def run_study(study: Study, opts: RunOptions, log=print) -> StudyOutcome:
    """Check the inputs, prepare the data, estimate, run the study, summarise and report.

    Raises StudyError (and subclasses) for what a user can fix, before anything is written, and
    `Interrupted` after a Ctrl-C/SIGTERM once the running trials are tagged `interrupted`.
    """
    workdir = Workdir(opts.workdir)
    with interrupt_guard() as guard, contextlib.ExitStack() as stack:
        state = StudyState.load(workdir.study_dir(study.name))
        study, restoring = _study_to_run(study, state, opts, workdir)
        tracking_uri, storage = _check_services(opts, state, workdir)
        prepared = prepare(study, workdir, log)
        env = _driver_env(tracking_uri, storage)
        stack.enter_context(_environment(env))
        # With ray://, Tune's driver loop runs on the head: it gets the same environment.
        cluster = stack.enter_context(ray_session(opts.address, env, log))
        guard.install()  # ray.init replaced the driver's SIGTERM handler with its own
        per_trial, concurrency = trial_resources(study, cluster)
        estimate, device_bytes = _estimate(study, opts, per_trial, concurrency, prepared,
                                           int(final_resources(cluster)["cpu"]))
        packing = _packing(study, cluster, prepared.data, device_bytes)
        if packing is not None:
            concurrency = max(1, min(study.num_trials, int(cluster.gpus / min(packing.fractions.values()))))
            estimate = dataclasses.replace(estimate, concurrency=concurrency)
        _log_header(study, prepared, cluster, tracking_uri, storage, workdir, estimate, log)
        for line in packing.lines() if packing is not None else []:
            log(line)
        outcome = StudyOutcome(study.name, estimate)
        if opts.dry_run:
            return outcome
        if not (opts.yes or restoring) and estimate.wall_hours > TOO_LONG_HOURS:
            raise StudyError(_too_long(study, estimate, cluster))
        stack.enter_context(held_lock(workdir.study_dir(study.name) / LOCK_FILE, f"study {study.name!r}"))
        session = Session(study, opts, workdir, state, tracking_uri, prepared, restoring, packing)
        _open_tracking(session, estimate, storage, log)
        _note_ray_session(session, cluster, log)
        outcome.parent_run_id = session.state.parent_run_id
        steps.fit(session, guard, per_trial, concurrency, log)
        if study.pruner.audit:
            steps.audit(session, guard, per_trial, concurrency, log)
        if study.final.epochs:
            steps.final(session, guard, final_resources(cluster), log)
        return finish(session, outcome, log)


def _log_header(study, prepared, cluster, tracking_uri, storage, workdir, estimate, log) -> None:
    train, n_val = prepared.data.train, len(prepared.data.val)
    log(f"study {study.name}: {study.description}".rstrip(": "))
    shown = (f"{len(train.names)} train photos, random crops ({len(train)} an epoch by default)"
             if isinstance(train, Photos) else f"{len(train)} train")
    log(f"data         : {study.data} ({shown} / {n_val} val patches, cache {prepared.path.name})")
    warning = short_epochs(study, len(train))
    if warning:
        log(f"warning      : {warning}")
    if prepared.full_val is not None:
        sizes = ", ".join(f"{i.name} {i.hr.shape[-2]}x{i.hr.shape[-1]}" for i in prepared.full_val.images)
        log(f"full val     : {study.full_val} ({sizes}), scored every {study.full_val_every} epoch(s) "
            "and at each trial's last: full/psnr_y, full/ssim_y, full/psnr")
    log(f"cluster      : {cluster.nodes} node(s), {cluster.cpus:g} CPU, {cluster.gpus:g} GPU ({cluster.address})")
    log(f"tracking     : MLflow {redaction.mask(tracking_uri)}; Optuna "
        f"{redaction.mask(storage) or 'journal in ' + str(workdir.study_dir(study.name))}")
    for line in estimate.lines():
        log(line)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`env` in os.environ for the block; every variable it set comes back to what it was."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


TOO_LONG_HOURS = 24.0  # "far beyond a working day": past this, `run` starts only with --yes


def _too_long(study: Study, estimate: Estimate, cluster) -> str:
    """Say plainly that this study does not fit this hardware, and what would."""
    hours = estimate.wall_hours
    span = f"{hours:,.0f} h" + (f" (about {hours / 24:,.0f} days)" if hours > 48 else "")
    gpu_hours = estimate.flops_expected / (ASSUMED_GPU_TFLOPS * 1e12) / 3600
    return (f"study {study.name!r} would take about {span} of wall time on what this run found "
            f"({cluster.nodes} node(s), {cluster.cpus:g} CPU, {cluster.gpus:g} GPU; {estimate.device}), "
            f"counting the epochs its {estimate.schedule} schedule trains ({estimate.epochs_fraction:.0%} of every "
            "trial's).\n"
            "  What fits instead:\n"
            "    - the demo, made for a CPU: sr-search run --study demo\n"
            f"    - fewer epochs or trials: --epochs N, --trials N (the estimate scales with both)\n"
            f"    - a GPU: about {gpu_hours:,.1f} GPU-hours at an assumed {ASSUMED_GPU_TFLOPS:g} TFLOP/s "
            "(run there, or estimate here with --tflops T)\n"
            "    - a Ray cluster with GPUs: --address HOST:PORT\n"
            "  Check any of these with --dry-run; pass --yes to start this one anyway.")


def _driver_env(tracking_uri: str, storage: str | None) -> dict[str, str]:
    """What Tune's driver loop needs in its environment: Tune's settings and the real URIs."""
    from search.tune.tuner import TUNE_ENV
    env = {k: os.environ.get(k, v) for k, v in TUNE_ENV.items()}
    env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    env.update({k: v for k, v in ((redaction.TRACKING_ENV, tracking_uri), (redaction.STORAGE_ENV, storage)) if v})
    return env


def _study_to_run(study: Study, state: StudyState | None, opts: RunOptions,
                  workdir: Workdir) -> tuple[Study, bool]:
    """The study as started (its snapshot) when resuming; refuse to start a study over its own runs."""
    study_dir = workdir.study_dir(study.name)
    if state and not opts.resume and not opts.dry_run:
        raise StudyError(f"study {study.name!r} already has runs in {study_dir}: pass --resume to "
                         "continue it, or use another --workdir for a fresh one")
    if not (opts.resume and state):
        return study, False
    snapshot = study_dir / "study.toml"
    resumed = parse_study(snapshot.read_text(), str(snapshot), study.name)
    return resumed.with_overrides(**state.overrides), True


def _check_services(opts: RunOptions, state: StudyState | None, workdir: Workdir) -> tuple[str, str | None]:
    """The tracking URI and Optuna storage URL to use (real, with passwords), each checked to work."""
    from search.tune.optuna_store import check_storage
    tracking_uri = _stored_flag(opts.tracking_uri, state and state.tracking_uri, "--tracking-uri")
    tracking_uri = tracking_uri or workdir.mlflow_uri
    tracking.check_reachable(tracking_uri)
    storage = _stored_flag(opts.storage, state and state.storage, "--storage")
    if storage:
        check_storage(storage)
    check_address(opts.address)
    return tracking_uri, storage


def _stored_flag(given: str | None, stored: str | None, flag: str) -> str | None:
    """A URI flag on --resume: the one the study started with (passwords are never stored, so a
    study whose URI held one needs the flag again, with the same URI)."""
    if given and stored and redaction.mask(given) != stored:
        raise StudyError(f"{flag} {redaction.mask(given)} differs from the {stored} this study started with; "
                         f"resume with the same {flag}")
    if not given and redaction.is_masked(stored):
        raise StudyError(f"this study's {flag} holds a password, which is never stored: pass "
                         f"{flag} {stored} again (with the password) to resume it")
    return given or stored


def prepare(study: Study, workdir: Workdir, log=print) -> Prepared:
    """Validate and cache the study's data, then load it, once.

    Every check happens before the first write; a lock keeps two drivers from preparing at once,
    which also makes it safe to sweep what a killed preparation left behind.
    """
    def progress(line: str) -> None:
        log(line)
        if line.startswith("prepared data"):
            milestones.reached("prepare")

    full_val = full_val_images(study)  # checked before the data cache is written to
    cache = workdir.data_cache
    lock = held_lock(cache / ".lock", f"data cache {cache}") if cache.exists() else contextlib.nullcontext()
    with lock:
        remove_stale_temporaries(cache)
        data_path = prepare_dataset(study.data, cache, progress=progress, val_source=study.val_data or None,
                                    crops=study.crops or None)
    return Prepared(data_path, load_cached(data_path), full_val)


def full_val_images(study: Study) -> FullVal | None:
    """[study].full_val decoded once, as `evaluate` reads a benchmark folder (HR mod-cropped to x4, LR
    by MATLAB's bicubic): a missing folder, no image, an unreadable or too small one is a StudyError
    naming the field and the file, before anything is written."""
    from search.apply.benchmark_folders import benchmark_images
    from sr_core.images import DataError
    if not study.full_val:
        return None
    path, where = Path(study.full_val), f"{study.source or study.name}: [study].full_val"
    if not path.is_dir():
        raise StudyError(f"{where}: folder {path} not found; name a folder of full-size images (e.g. Set5's "
                         "HR PNGs), relative to the current folder, or --full-val DIR")
    try:
        images = benchmark_images(path)
    except DataError as exc:
        raise StudyError(f"{where}: {exc}") from None
    return FullVal(tuple(FullImage(i.name, i.hr, i.lr) for i in images), study.full_val_every)


def _estimate(study: Study, opts: RunOptions, per_trial: dict, concurrency: int,
              prepared: Prepared, final_threads: int = 0) -> tuple[Estimate, int]:
    """The estimate, and the memory of the trials' device in bytes (0: a CPU, or not measured). Priced
    by the cost model fitted to real steps of the study's shapes timed on the trials' device
    (search.run.cost_model); by FLOPs for --tflops (a target GPU that is not here to time)."""
    from search.run.cost_model import fit
    data, full = prepared.data, prepared.full_val
    pixels = (sum(i.lr[0].numel() for i in full.images), sum(i.hr[0].numel() for i in full.images)) if full else (0, 0)
    if opts.tflops:
        device, flops, memory = f"target GPU (--tflops {opts.tflops:g})", opts.tflops * 1e12, 0
        return estimate_study(study, len(data.train), len(data.val), device, flops, concurrency,
                              full_val_pixels=pixels), memory
    shapes = sorted(set(study.nets()), key=str)  # (arch, blocks, channels, a user arch's params)
    device, flops, memory, rows, speedup = measure_trial_device(per_trial, shapes, study.train.batch_size,
                                                                final_threads)
    model = fit(rows, study.train.batch_size, speedup) if rows else None
    return estimate_study(study, len(data.train), len(data.val), device, flops, concurrency, model, pixels), memory


def _packing(study: Study, cluster, data: SRData, measured_bytes: int) -> Packing | None:
    """gpus_per_trial = "auto" on a cluster with GPUs: each config's fraction (search.tune.packing),
    on the stated [resources].gpu_memory_gib or the measured device memory."""
    if study.resources.gpus_per_trial != AUTO or cluster.gpus <= 0:
        return None
    device_bytes = int(study.resources.gpu_memory_gib * GIB) or measured_bytes
    if not device_bytes:
        raise StudyError("[resources].gpus_per_trial = \"auto\" needs the GPUs' memory: the measurement task "
                         "found no CUDA device (or --tflops skipped it), so set [resources].gpu_memory_gib")
    configs = [study.trial_config(p) for p in study.grid()] if study.grid_size else []
    if not configs:
        raise StudyError("[resources].gpus_per_trial = \"auto\" needs a discrete [space] (lists, not ranges)")
    # random crops hold whole photos on the device: counted as the LR/HR pairs of as many bytes
    resident = (-(-data.train.pixels.numel() // IMAGE_BYTES) if isinstance(data.train, Photos) else len(data.train))
    return plan_packing(configs, device_bytes, resident, len(data.val))


def _open_tracking(s: Session, estimate: Estimate, storage: str | None, log) -> None:
    """The MLflow parent run and the Optuna study: made for a new study, reopened for a resumed one.
    Runs a killed driver left RUNNING are repaired to `interrupted` before anything else."""
    from mlflow.tracking import MlflowClient

    from search.tune.tuner import optuna_target, scheduler_rungs
    client = MlflowClient(s.tracking_uri)
    experiment_id = tracking.ensure_experiment(client, s.workdir.artifacts if not s.opts.tracking_uri else None)
    if s.restoring:
        parent = s.state.parent_run_id
        repaired = tracking.mark_unfinished(client, experiment_id, parent, "the driver stopped while it ran")
        if repaired:
            log(f"repaired     : {len(repaired)} run(s) a stopped driver left running: {', '.join(repaired)}")
        tracking.set_status(client, parent, "running", reason="")  # the interruption it resumes from is over
        log(f"resuming     : MLflow run {parent} in {redaction.mask(s.tracking_uri)}")
        return
    s.study_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(s.study_dir / "study.toml", s.study.text)
    data, floor = s.prepared.data, bicubic_images(s.prepared.data.val)
    full_floor, full_images = full_val_bicubic(s.prepared.full_val) if s.prepared.full_val else ({}, {})
    values = {**estimate.as_metrics(), **{f"bicubic/val_{k}": v for k, v in bicubic_scores(data.val).items()},
              **{f"bicubic/{k.replace('/', '_')}": v for k, v in full_floor.items()},
              # LR remade with the val kernel: train and val compared on content alone
              "bicubic/train_psnr": bicubic_psnr(train_pairs(data.train), kernel="sr-search")}
    parent = tracking.start_study_run(client, experiment_id, s.study, values, {
        "device": estimate.device, "data.train_images": len(data.train), "data.val_images": len(data.val)})
    name = f"{s.study.name}-{parent[:8]}"
    s.state = StudyState(
        parent_run_id=parent, experiment_id=experiment_id, tracking_uri=redaction.mask(s.tracking_uri),
        storage=redaction.mask(storage), optuna_study=name,
        # where the Optuna study lives: the (masked) RDB URL, or the journal in the study folder
        optuna=redaction.mask(storage) or str(s.study_dir / "optuna.journal"),
        ray_storage=s.opts.ray_storage or str(s.study_dir / "ray"), overrides=s.opts.overrides,
        estimate_seconds=estimate.wall_hours * 3600)
    from sr_core.crops import study_crops
    tracking.log_study_crops(client, parent, study_crops(str(s.prepared.path)))  # chosen once per study
    tracking.log_val_images(client, parent, {**floor, **full_images})  # the floor, image by image
    if estimate.seconds:  # priced by the measured cost model (not --tflops): what bench estimate reads
        client.log_text(parent, json.dumps(estimate_json(estimate)), ESTIMATE_ARTIFACT)
    target = optuna_target(s.study, s.state)
    target.create_study()
    rungs = scheduler_rungs(s.study, target)
    if rungs:
        tracking.log_params(client, parent, {"pruner.rungs": ",".join(map(str, rungs))})
    s.save_state()


def _note_ray_session(s: Session, cluster, log) -> None:
    """Reap what the last driver's private Ray left behind (after a kill -9), mend the Tune state files
    its kill tore (search.tune.torn_state), and remember this Ray session."""
    from search.tune.torn_state import repair
    from search.tune.tuner import audit_experiment, final_experiment
    reaped = reap_orphans(s.state.ray_session_dir)
    if reaped:
        log(f"cleaned up   : {reaped} process(es) a killed driver's Ray left running")
    for name in (s.state.optuna_study, audit_experiment(s.state), final_experiment(s.state)):
        mended = repair(s.state.experiment_path(name), s.state.ray_session_dir)
        if mended:
            log(f"repaired     : {', '.join(mended)} of Ray experiment {name}, torn by the kill of the last "
                "driver, from its whole copy in that driver's Ray session")
    s.state.ray_session_dir = cluster.session_dir
    s.save_state()
