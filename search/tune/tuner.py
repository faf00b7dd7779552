"""The Ray Tune `Tuner` of a study: made new, or restored from the study's Tune experiment.

Everything it needs comes in one typed `TuneSetup` from the engine (the data already loaded in the
driver, which goes into Ray's object store once, here). It writes nothing itself: the driver's
callback writes MLflow and Optuna (search.tune.callback).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray import tune

from search.state import StudyState
from search.study import SPACE_KEYS, Study
from search.tune import state_upload
from search.tune.callback import StudyCallback, TrackingTarget
from search.tune.optuna_store import OptunaTarget
from search.tune.packing import Packing, resources_fn
from search.tune.progress import Progress
from search.tune.scheduler import PersistentASHA, SyncHalving
from search.tune.searcher import ListSearcher, StudySearcher, make_sampler, optuna_space
from search.tune.trainable import AUDIT_KEY, CPUS_KEY, SCRATCH_KEY, data_arrays, run_trial
from sr_core.contract import ROLE_AUDIT, ROLE_FINAL
from sr_core.data import SRData

# Tune reads these when the Tuner is made (the engine puts them in the driver's environment).
TUNE_ENV = {
    # Snapshot the experiment state every step of Tune's loop. A kill -9 then loses at most one step
    # of bookkeeping, and never a trial that already ran an epoch (with a 2 s period, trials created
    # in the last 2 s were lost and re-created with duplicate configs), nor the checkpoint the
    # snapshot names (Tune deletes a superseded checkpoint at once: with two kept and a snapshot
    # every step, the one named is always still there).
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
    # The closing report (how a trial ended) carries no val/mse, on purpose.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    # CheckpointConfig(num_to_keep) makes Tune snapshot the experiment after every checkpoint, which is what a
    # crash-safe resume wants; its warning about that would print once per epoch.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # search.run.interrupts is the only SIGINT listener of the driver (Tune's would print Tuner.restore).
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}


@dataclass(frozen=True)
class TuneSetup:
    """What a study's Tuner is made from."""
    study: Study
    state: StudyState
    data: SRData  # loaded once by the driver
    data_path: Path  # its cache file (the sample grids read their val images from it)
    restoring: bool  # a --resume of a study that already has a Tune experiment
    per_trial: dict[str, float]  # Ray resources of one trial: {"cpu": ..., "gpu": ...}
    concurrency: int
    packing: Packing | None = None  # gpus_per_trial = "auto": each config's GPU fraction


def optuna_target(study: Study, state: StudyState) -> OptunaTarget:
    return OptunaTarget(state.optuna_study, state.optuna,
                        "minimize" if study.search.direction == "min" else "maximize")


def make_scheduler(study: Study, target: OptunaTarget) -> tune.schedulers.TrialScheduler:
    p, metric, mode = study.pruner, study.search.metric, study.search.direction
    if study.schedule == "halving":
        return SyncHalving(target, study.num_trials, study.train.epochs, p.grace_period, p.reduction_factor,
                           metric=metric, mode=mode, insure_by=p.insure)
    if study.schedule == "asha":
        return PersistentASHA(target, study.train.epochs, p.grace_period, p.reduction_factor, metric=metric,
                              mode=mode)
    return tune.schedulers.FIFOScheduler()


def scheduler_rungs(study: Study, target: OptunaTarget) -> list[int]:
    """The epochs at which the study's scheduler compares trials (none without a pruner)."""
    scheduler = make_scheduler(study, target)
    return list(getattr(scheduler, "milestones", []))


def make_tuner(setup: TuneSetup) -> tune.Tuner:
    state_upload.install()
    resources = resources_fn(setup.per_trial["cpu"], setup.packing) if setup.packing else setup.per_trial
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data_arrays(setup.data), study=setup.study, packing=setup.packing),
        resources)
    path = f"{setup.state.ray_storage.rstrip('/')}/{setup.state.optuna_study}"
    if setup.restoring and tune.Tuner.can_restore(path):
        # Errored trials stay errored (their process died more often than FailureConfig allows);
        # every trial that ended is TERMINATED; only unfinished ones run again.
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    return _new_tuner(setup, trainable)


def final_experiment(state: StudyState) -> str:
    """The Tune experiment (and scratch tag) of a study's final step."""
    return f"{state.optuna_study}-final"


def make_final_tuner(setup: TuneSetup, point: dict) -> tune.Tuner:
    """The final step: one trial of `setup.study.final_study(point)`, with the search's trainable and
    callback (role `final`, no Optuna), made new or restored from its own experiment on --resume."""
    state_upload.install()
    study, state, name = setup.study.final_study(point), setup.state, final_experiment(setup.state)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data_arrays(setup.data), study=study), setup.per_trial)
    path = f"{state.ray_storage.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    callback = StudyCallback(TrackingTarget(state.tracking_uri, state.experiment_id, state.parent_run_id, study.name),
                             None, str(setup.data_path), study.train.epochs, study.search.metric, name,
                             Progress(1, study.train.epochs, None), role=ROLE_FINAL)
    return tune.Tuner(
        trainable,
        param_space={**study.trial_constants(), **point, CPUS_KEY: setup.per_trial["cpu"], SCRATCH_KEY: name},
        tune_config=tune.TuneConfig(num_samples=1, trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(name=name, storage_path=state.ray_storage, verbose=0, callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def audit_experiment(state: StudyState) -> str:
    """The Tune experiment (and scratch tag) of a study's pruning audit."""
    return f"{state.optuna_study}-audit"


def restore_audit_tuner(setup: TuneSetup) -> tune.Tuner | None:
    """The audit's Tuner restored from its experiment (a --resume after the audit started), or None."""
    path = f"{setup.state.ray_storage.rstrip('/')}/{audit_experiment(setup.state)}"
    if not tune.Tuner.can_restore(path):
        return None
    state_upload.install()
    return tune.Tuner.restore(path, _audit_trainable(setup), resume_unfinished=True, resume_errored=False,
                              restart_errored=False)


def _audit_trainable(setup: TuneSetup):
    study = setup.study.audit_study()
    resources = resources_fn(setup.per_trial["cpu"], setup.packing) if setup.packing else setup.per_trial
    return tune.with_resources(
        tune.with_parameters(run_trial, data=data_arrays(setup.data), study=study, packing=setup.packing),
        resources)


def make_audit_tuner(setup: TuneSetup, audits: list[dict]) -> tune.Tuner:
    """The pruning audit (search.run.audit): one trial per pruned trial in `audits` (search.run.audit.audit_config),
    each resuming from that trial's checkpoint to the search's full budget, role `audit`, no Optuna."""
    state_upload.install()
    study, state, name = setup.study.audit_study(), setup.state, audit_experiment(setup.state)
    callback = StudyCallback(TrackingTarget(state.tracking_uri, state.experiment_id, state.parent_run_id, study.name),
                             None, str(setup.data_path), study.train.epochs, study.search.metric, name,
                             Progress(len(audits), study.train.epochs, None), role=ROLE_AUDIT)
    # One trial per audited config: its [space] point, and the rest (checkpoint, tags) under AUDIT_KEY.
    configs = [{**{k: a[k] for k in SPACE_KEYS}, AUDIT_KEY: a} for a in audits]
    return tune.Tuner(
        _audit_trainable(setup),
        param_space={**study.trial_constants(),
                     CPUS_KEY: min(study.resources.cpus_per_trial, setup.per_trial["cpu"]), SCRATCH_KEY: name},
        tune_config=tune.TuneConfig(search_alg=ListSearcher(configs, study.search.metric, study.search.direction),
                                    num_samples=len(configs), max_concurrent_trials=setup.concurrency,
                                    reuse_actors=True, trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(name=name, storage_path=state.ray_storage, verbose=0, callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def _new_tuner(setup: TuneSetup, trainable) -> tune.Tuner:
    study, state = setup.study, setup.state
    target = optuna_target(study, state)
    searcher = StudySearcher(target, optuna_space(study), make_sampler(study), study.search.metric,
                             study.search.direction)
    callback = StudyCallback(TrackingTarget(state.tracking_uri, state.experiment_id, state.parent_run_id, study.name),
                             target, str(setup.data_path), study.train.epochs, study.search.metric,
                             state.optuna_study,
                             Progress(study.num_trials, study.train.epochs, state.estimate_seconds))
    return tune.Tuner(
        trainable,
        param_space={**study.trial_constants(), CPUS_KEY: min(study.resources.cpus_per_trial, setup.per_trial["cpu"]),
                     SCRATCH_KEY: state.optuna_study},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(study, target),
                                    num_samples=study.num_trials,
                                    # Tune's concurrency limiter counts paused trials as running, so a
                                    # synchronous schedule would wait forever for trials it never makes:
                                    # there the trials' resources bound how many run at once.
                                    max_concurrent_trials=None if study.schedule == "halving" else setup.concurrency,
                                    # One worker process serves trial after trial: no process start and
                                    # no torch import per trial (measured: 10.5 -> 2.3 slot-seconds of
                                    # overhead per trial, `sr-search bench overhead`).
                                    reuse_actors=True,
                                    trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=state.optuna_study, storage_path=state.ray_storage, verbose=0,
            callbacks=[callback],
            # Retries are for processes that died (a node lost, the OS's OOM killer): they resume
            # from the last epoch checkpoint. A trial's own exception is reported, not retried.
            failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
            # Two, not one: Tune deletes a trial's older checkpoint as soon as a newer one is
            # registered but snapshots the experiment at the end of the step, so after a kill -9 in
            # between the snapshot names the older one (seen with one kept: "Could not recover from
            # checkpoint as it does not exist on storage anymore" for a trial paused at a rung).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
