"""Run a study with Ray Tune: Optuna samples, ASHA prunes, MLflow records, Ray places and retries.

    data prepared once in the driver (cache file) -> Tuner(trainable, OptunaSearch, PersistentASHA)
    each trial: train_trial(...) with one tune.report per epoch (+ checkpoint) and a closing report
    driver: TrackingCallback -> MLflow (parent run = study, child run = trial)

Resume: the Tune experiment, the Optuna storage, the ASHA rungs and the MLflow parent run all live
in the study's folder of the workdir, so `--resume` after a crash (even kill -9 of the driver) picks
up where the last persisted epoch checkpoint of every trial left off.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from search.estimate import Estimate, estimate_study, measure_device_flops
from search.study import Study, StudyError, parse_study
from search.workdir import Workdir
from sr_core import metrics
from sr_core.data import bicubic_upscale, load_cached, prepare_dataset, to_float

TRIAL_KEYS = ("arch", "blocks", "channels", "lr", "eta_min", "epochs", "batch_size", "grad_clip",
              "patience", "seed", "augment", "epoch_samples")
TUNE_NAME = "tune"


@dataclass(frozen=True)
class RunOptions:
    workdir: Path = Path("sr-runs")
    tracking_uri: str | None = None
    address: str | None = None  # an existing Ray cluster ("auto" or "ray://host:port")
    storage: str | None = None  # Optuna storage URL (postgresql://... across machines)
    resume: bool = False
    dry_run: bool = False
    tflops: float | None = None  # estimate for another device's effective TFLOP/s
    report: bool = True
    overrides: dict = field(default_factory=dict)  # CLI flags over the study file, replayed on --resume


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


# -- the trial, run by a Ray worker ----------------------------------------------------------------
def _trainable(config: dict) -> None:
    from ray import tune

    from sr_core.train import config_from_dict, train_trial

    torch.set_num_threads(max(1, int(config["_cpus"])))
    trial_config = config_from_dict({k: config[k] for k in TRIAL_KEYS})
    data = load_cached(config["_data_path"])
    device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray hides GPUs a trial did not get
    ckpt_dir = Path(tempfile.mkdtemp(prefix="sr-trial-"))
    restored = tune.get_checkpoint()
    if restored is not None:  # a retry or a resumed study: continue from the last reported epoch
        with restored.as_directory() as src:
            shutil.copytree(src, ckpt_dir, dirs_exist_ok=True)

    def on_epoch(report: dict) -> bool:
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
        return True  # ASHA stops a trial from outside; nothing to decide here

    result = train_trial(trial_config, data, device=device, on_epoch=on_epoch, checkpoint_dir=ckpt_dir)
    # The closing report tells the driver how the trial ended (early_stopped, diverged...). It repeats
    # the last epoch number, so ASHA (time attribute = epoch) sees nothing new. diverged and oom
    # carry no val/mse: Optuna then records the trial as pruned rather than as a good result.
    closing = {"final": True, "final_status": result.status, "epoch": result.epochs}
    if result.status in ("completed", "early_stopped") and result.best:
        closing["val/mse"] = result.best["val/mse"]
    from sr_core.train import best_metrics
    closing.update(best_metrics(result.best))
    tune.report(closing, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
    shutil.rmtree(ckpt_dir, ignore_errors=True)


# -- driver-side pieces ----------------------------------------------------------------------------
def bicubic_baseline(data_path: Path) -> dict[str, float]:
    val = load_cached(data_path).val
    sums = {"bicubic/val_mse": 0.0, "bicubic/val_psnr": 0.0, "bicubic/val_ssim": 0.0}
    for start in range(0, len(val), 256):
        lr, hr = to_float(val.lr[start:start + 256]), to_float(val.hr[start:start + 256])
        pred = bicubic_upscale(lr)
        sums["bicubic/val_mse"] += metrics.mse(pred, hr).sum().item()
        sums["bicubic/val_psnr"] += metrics.psnr(pred, hr).sum().item()
        sums["bicubic/val_ssim"] += metrics.ssim(pred, hr).sum().item()
    return {k: v / len(val) for k, v in sums.items()}


def _optuna_space(study: Study) -> dict:
    import optuna
    from search.study import Range
    space = {}
    for key, value in study.space.items():
        if isinstance(value, Range):
            space[key] = optuna.distributions.FloatDistribution(value.low, value.high, log=value.log)
        else:
            space[key] = optuna.distributions.CategoricalDistribution(list(value))
    return space


def _sampler(study: Study):
    import optuna
    seed = study.search.seed
    if study.search.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(v) for k, v in study.space.items()}, seed=seed)
    if study.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _optuna_storage(url: str | None, study_dir: Path):
    import optuna
    if url:
        # Heartbeats: a trial whose process died is marked failed instead of RUNNING forever.
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / "optuna.journal")))


def _local_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def _resources(study: Study, cluster: dict[str, float]) -> tuple[dict[str, float], int]:
    cpus, gpus = cluster.get("CPU", 1.0), cluster.get("GPU", 0.0)
    per_trial = {"cpu": min(study.resources.cpus_per_trial, cpus),
                 "gpu": study.resources.gpus_per_trial if gpus > 0 else 0.0}
    fits = int(cpus // per_trial["cpu"])
    if per_trial["gpu"] > 0:
        fits = min(fits, int(gpus // per_trial["gpu"]))
    concurrency = study.resources.max_concurrent or max(fits, 1)
    return per_trial, min(concurrency, max(study.num_trials, 1))


def _load_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def prepare(study: Study, workdir: Workdir, log=print) -> tuple[Path, int, int]:
    """Validate and cache the study's data once; (cache path, train images, val images)."""
    data_path = prepare_dataset(study.data, workdir.data_cache, progress=log)
    data = load_cached(data_path)
    return data_path, len(data.train), len(data.val)


def run_study(study: Study, opts: RunOptions, log=print) -> StudyOutcome:
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune

    from search.tracking import (TrackingCallback, check_reachable, ensure_experiment,
                                 finish_study_run, start_study_run)

    workdir = Workdir(opts.workdir)
    study_dir = workdir.study_dir(study.name)
    state_path = study_dir / "state.json"
    exp_path = study_dir / "ray" / TUNE_NAME
    state = _load_state(state_path)
    restoring = opts.resume and bool(state) and (exp_path / "tuner.pkl").exists()
    if state and not opts.resume and not opts.dry_run:
        raise StudyError(f"study {study.name!r} already has runs in {study_dir}: pass --resume to "
                         "continue it, or use another --workdir for a fresh one")
    if restoring:  # the snapshot taken at the start is the study being resumed
        snapshot = study_dir / "study.toml"
        study = parse_study(snapshot.read_text(), str(snapshot), study.name)
        study = study.with_overrides(**state.get("overrides", {}))
    tracking_uri = opts.tracking_uri or state.get("tracking_uri") or workdir.mlflow_uri
    check_reachable(tracking_uri)

    data_path, n_train, n_val = prepare(study, workdir, log)
    device = _local_device()
    cpu_threads = max(1, int(study.resources.cpus_per_trial))
    device_flops = opts.tflops * 1e12 if opts.tflops else measure_device_flops(device, cpu_threads)
    _, local_concurrency = _resources(study, {"CPU": float(os.cpu_count() or 1),
                                              "GPU": float(torch.cuda.device_count())})
    device_label = f"target GPU (--tflops {opts.tflops:g})" if opts.tflops else _device_name(device)
    estimate = estimate_study(study, n_train, n_val, device_label, device_flops, local_concurrency)
    outcome = StudyOutcome(study.name, estimate)
    log(f"study {study.name}: {study.description}".rstrip(": "))
    log(f"data         : {study.data} ({n_train} train / {n_val} val patches, cache {data_path.name})")
    for line in estimate.lines():
        log(line)
    if opts.dry_run:
        return outcome

    # Tune reads these when the Tuner is made: save the experiment state often (so a kill -9 loses
    # at most a couple of seconds of bookkeeping) and accept the closing report without val/mse.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # num_to_keep=1 makes Tune snapshot the experiment after every checkpoint, which is what a
    # crash-safe resume wants; its warning about that would print once per epoch.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, workdir.artifacts if not opts.tracking_uri else None)
    baseline = bicubic_baseline(data_path)
    outcome.baseline_psnr = baseline["bicubic/val_psnr"]
    if restoring:
        parent_run_id = state["parent_run_id"]
        client.set_tag(parent_run_id, "status", "running")
        log(f"resuming     : MLflow run {parent_run_id} in {tracking_uri}")
    else:
        study_dir.mkdir(parents=True, exist_ok=True)
        (study_dir / "study.toml").write_text(study.text)
        parent_run_id = start_study_run(client, experiment_id, study, estimate.as_metrics(), baseline, {
            "device": _device_name(device), "data.train_images": n_train,
            "data.val_images": n_val})
        state = {"parent_run_id": parent_run_id, "experiment_id": experiment_id, "tracking_uri": tracking_uri,
                 "optuna_study": f"{study.name}-{parent_run_id[:8]}", "wall_seconds": 0.0,
                 "overrides": opts.overrides}
        _save_state(state_path, state)
    outcome.parent_run_id = parent_run_id

    t0 = time.monotonic()
    ray.init(address=opts.address, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING", ignore_reinit_error=True)
    try:
        per_trial, concurrency = _resources(study, ray.cluster_resources())
        trainable = tune.with_resources(_trainable, per_trial)
        asha_state = study_dir / "asha.json"
        if restoring:
            tuner = tune.Tuner.restore(str(exp_path), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = _new_tuner(study, trainable, per_trial, concurrency, data_path, asha_state, exp_path,
                               TrackingCallback(tracking_uri, experiment_id, parent_run_id, study.name,
                                                str(asha_state), str(data_path)),
                               _optuna_storage(opts.storage, study_dir), state["optuna_study"])
            if study.pruner.kind == "asha":
                milestones = tuner._local_tuner._tune_config.scheduler.milestones
                client.log_param(parent_run_id, "pruner.rungs", ",".join(map(str, milestones)))
        log(f"running      : {per_trial['cpu']:g} CPU + {per_trial['gpu']:g} GPU per trial, "
            f"{concurrency} at a time, Ray experiment {exp_path}")
        results = tuner.fit()
    finally:
        state["wall_seconds"] = state.get("wall_seconds", 0.0) + time.monotonic() - t0
        _save_state(state_path, state)
        ray.shutdown()

    outcome.wall_seconds = state["wall_seconds"]
    from search.tracking import study_trials
    trials = study_trials(client, experiment_id, parent_run_id)
    for t in trials:
        outcome.statuses[t["status"]] = outcome.statuses.get(t["status"], 0) + 1
    finished = [t for t in trials if t["status"] in ("completed", "early_stopped", "pruned")
                and t.get("best/val_mse") is not None]
    outcome.best = min(finished, key=lambda t: t["best/val_mse"]) if finished else None
    gpu_weight = per_trial["gpu"] if per_trial["gpu"] > 0 else 1.0
    actual = {"actual/device_hours": sum(t.get("wall_seconds") or 0 for t in trials) * gpu_weight / 3600,
              "actual/wall_hours": outcome.wall_seconds / 3600}
    errored = results.errors
    finish_study_run(client, parent_run_id, "failed" if errored and not finished else "completed", actual)
    if opts.report:
        outcome.report_path = write_report(tracking_uri, [study.name], workdir.report_path(study.name), log)
    return outcome


def _new_tuner(study, trainable, per_trial, concurrency, data_path, asha_state, exp_path, callback,
               storage, optuna_study):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from search.asha import PersistentASHA

    searcher = OptunaSearch(space=_optuna_space(study), metric="val/mse", mode="min",
                            sampler=_sampler(study), storage=storage, study_name=optuna_study)
    scheduler = (PersistentASHA(asha_state, study.train.epochs, study.pruner.grace_period,
                                study.pruner.reduction_factor)
                 if study.pruner.kind == "asha" else tune.schedulers.FIFOScheduler())
    constants = {"epochs": study.train.epochs, "batch_size": study.train.batch_size,
                 "grad_clip": study.train.grad_clip, "patience": study.train.patience,
                 "seed": study.search.seed, "augment": study.train.augment,
                 "epoch_samples": study.train.epoch_samples or None,
                 "_data_path": str(data_path), "_cpus": per_trial["cpu"]}
    return tune.Tuner(
        trainable,
        param_space=constants,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, metric="val/mse" if
                                    study.pruner.kind != "asha" else None,
                                    mode="min" if study.pruner.kind != "asha" else None,
                                    num_samples=study.num_trials, max_concurrent_trials=concurrency,
                                    trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=TUNE_NAME, storage_path=str(exp_path.parent), verbose=0, callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def write_report(tracking_uri: str, studies: list[str], out: Path, log=print) -> Path | None:
    try:
        from reports import build_report
    except ImportError:  # the reports package is optional at this stage of the project
        return None
    path = build_report(tracking_uri, studies, out)
    log(f"report       : {path}")
    return path
