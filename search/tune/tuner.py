"""The Ray Tune `Tuner` of a study: made new, or restored from the study's Tune experiment.

Everything it needs comes in one typed `TuneSetup` from the engine (the data already loaded in the
driver, which goes into Ray's object store once, here). It writes nothing itself: the driver's
callback writes MLflow and Optuna (search.tune.callback).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray import tune

from search.rungs import planned_epochs, schedule_epochs
from search.state import StudyState
from search.study import Study
from search.tune import state_upload
from search.tune.callback import StudyCallback, TrackingTarget
from search.tune.optuna_store import OptunaTarget
from search.tune.packing import Packing, resources_fn
from search.tune.progress import Progress
from search.tune.scheduler import OptunaRungRecord, PersistentASHA, SyncHalving
from search.tune.searcher import ListSearcher, StudySearcher, make_sampler, optuna_space
from search.tune.trainable import AUDIT_KEY, CPUS_KEY, SCRATCH_KEY, data_arrays, full_val_arrays, run_trial
from sr_core.contract import ROLE_AUDIT, ROLE_FINAL, ROLE_TRIAL
from sr_core.data import SRData
from sr_core.full_val import FullVal
from sr_core.trial_config import fold_point

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
    full_val: FullVal | None = None  # [study].full_val, decoded once by the driver


def optuna_target(study: Study, state: StudyState) -> OptunaTarget:
    return OptunaTarget(state.optuna_study, state.optuna,
                        "minimize" if study.search.direction == "min" else "maximize")


def make_scheduler(study: Study, target: OptunaTarget) -> tune.schedulers.TrialScheduler:
    p, metric, mode = study.pruner, study.search.metric, study.search.direction
    if study.schedule == "halving":
        return SyncHalving(OptunaRungRecord(target), study.num_trials, study.train.epochs, p.grace_period,
                           p.reduction_factor, metric=metric, mode=mode, insure_by=p.insure,
                           questions=study.questions)
    if study.schedule == "asha":
        return PersistentASHA(target, study.train.epochs, p.grace_period, p.reduction_factor, metric=metric,
                              mode=mode)
    return tune.schedulers.FIFOScheduler()


def scheduler_rungs(study: Study, target: OptunaTarget) -> list[int]:
    """The epochs at which the study's scheduler compares trials (none without a pruner)."""
    scheduler = make_scheduler(study, target)
    return list(getattr(scheduler, "milestones", []))


def make_tuner(setup: TuneSetup) -> tune.Tuner:
    """The search: restored on --resume of a study that has a Tune experiment, else made new."""
    trainable = _trainable(setup, setup.study, setup.packing)
    if setup.restoring and (restored := _restored(setup, setup.state.optuna_study, trainable)):
        return restored
    study, state = setup.study, setup.state
    target = optuna_target(study, state)
    searcher = StudySearcher(target, optuna_space(study), make_sampler(study), study.search.metric,
                             study.search.direction)
    steps = schedule_epochs(study)
    full = sum(k for k, e in steps if e >= study.train.epochs) / max(study.num_trials, 1)
    progress = Progress(study.num_trials, study.train.epochs, state.estimate_seconds,
                        planned_epochs=planned_epochs(study), full_share=full)
    callback = _callback(setup, study, target, state.optuna_study, progress, ROLE_TRIAL)
    return _tuner(setup, study, state.optuna_study, trainable, callback,
                  {CPUS_KEY: min(study.resources.cpus_per_trial, setup.per_trial["cpu"])},
                  search_alg=searcher, scheduler=make_scheduler(study, target), num_samples=study.num_trials,
                  # Tune's concurrency limiter counts paused trials as running, so a synchronous
                  # schedule would wait forever for trials it never makes: there the trials'
                  # resources bound how many run at once.
                  max_concurrent_trials=None if study.schedule == "halving" else setup.concurrency,
                  # One worker process serves trial after trial: no process start and no torch import
                  # per trial (measured: 10.5 -> 2.3 slot-seconds of overhead per trial, `sr-search
                  # bench overhead`).
                  reuse_actors=True)


def final_experiment(state: StudyState) -> str:
    """The Tune experiment (and scratch tag) of a study's final step."""
    return f"{state.optuna_study}-final"


def make_final_tuner(setup: TuneSetup, point: dict) -> tune.Tuner:
    """The final step: one trial of `setup.study.final_study(point)`, with the search's trainable and
    callback (role `final`, no Optuna), made new or restored from its own experiment on --resume."""
    study, name = setup.study.final_study(point), final_experiment(setup.state)
    trainable = _trainable(setup, study)
    if restored := _restored(setup, name, trainable):
        return restored
    progress = Progress(1, study.train.epochs, None)
    return _tuner(setup, study, name, trainable, _callback(setup, study, None, name, progress, ROLE_FINAL),
                  {**fold_point(point), CPUS_KEY: setup.per_trial["cpu"]}, num_samples=1)


def audit_experiment(state: StudyState) -> str:
    """The Tune experiment (and scratch tag) of a study's pruning audit."""
    return f"{state.optuna_study}-audit"


def restore_audit_tuner(setup: TuneSetup) -> tune.Tuner | None:
    """The audit's Tuner restored from its experiment (a --resume after the audit started), or None."""
    return _restored(setup, audit_experiment(setup.state), _trainable(setup, setup.study.audit_study(), setup.packing))


def make_audit_tuner(setup: TuneSetup, audits: list[dict]) -> tune.Tuner:
    """The pruning audit (search.run.audit): one trial per pruned trial in `audits`
    (search.run.audit.audit_config), each resuming from that trial's checkpoint to the search's full
    budget, role `audit`, no Optuna."""
    study, name = setup.study.audit_study(), audit_experiment(setup.state)
    # One trial per audited config: its [space] point, and the rest (checkpoint, tags) under AUDIT_KEY.
    configs = [{**fold_point({k: a[k] for k in study.space}), AUDIT_KEY: a} for a in audits]
    progress = Progress(len(audits), study.train.epochs, None)
    return _tuner(setup, study, name, _trainable(setup, study, setup.packing),
                  _callback(setup, study, None, name, progress, ROLE_AUDIT),
                  {CPUS_KEY: min(study.resources.cpus_per_trial, setup.per_trial["cpu"])},
                  search_alg=ListSearcher(configs, study.search.metric, study.search.direction),
                  num_samples=len(configs), max_concurrent_trials=setup.concurrency, reuse_actors=True)


# -- the one factory the three Tune runs share ---------------------------------------------------------
def _trainable(setup: TuneSetup, study: Study, packing: Packing | None = None):
    """run_trial with the data and the full-size val images (into Ray's object store once), the study,
    and each trial's resources."""
    resources = resources_fn(setup.per_trial["cpu"], packing) if packing else setup.per_trial
    full_val = full_val_arrays(setup.full_val)
    return tune.with_resources(
        tune.with_parameters(run_trial, data=data_arrays(setup.data), study=study, packing=packing,
                             full_val=full_val), resources)


def _restored(setup: TuneSetup, name: str, trainable) -> tune.Tuner | None:
    """The experiment `name` restored from the study's Ray storage, or None when there is none.
    Errored trials stay errored (their process died more often than FailureConfig allows); every
    trial that ended is TERMINATED; only unfinished ones run again."""
    state_upload.install()
    path = setup.state.experiment_path(name)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False)


def _callback(setup: TuneSetup, study: Study, target: OptunaTarget | None, name: str, progress: Progress,
              role: str) -> StudyCallback:
    """The driver's callback of experiment `name` (also its trials' scratch tag): MLflow always, Optuna
    for the search's trials only (`target`)."""
    state = setup.state
    return StudyCallback(TrackingTarget(state.tracking_uri, state.experiment_id, state.parent_run_id, study.name),
                         target, str(setup.data_path), study.train.epochs, study.search.metric,
                         name, progress, role=role)


def _trial_dirname(trial) -> str:
    return trial.trial_id


def _tuner(setup: TuneSetup, study: Study, name: str, trainable, callback: StudyCallback,
           param_space: dict, **tune_config) -> tune.Tuner:
    """A new Tune experiment `name` in the study's Ray storage, wired as every run of a study is."""
    state_upload.install()
    return tune.Tuner(
        trainable,
        param_space={**study.trial_constants(), **param_space, SCRATCH_KEY: name},
        tune_config=tune.TuneConfig(trial_dirname_creator=_trial_dirname, **tune_config),
        run_config=tune.RunConfig(
            name=name, storage_path=setup.state.ray_storage, verbose=0, callbacks=[callback],
            # Retries are for processes that died (a node lost, the OS's OOM killer): they resume
            # from the last epoch checkpoint. A trial's own exception is reported, not retried.
            failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
            # Two, not one: Tune deletes a trial's older checkpoint as soon as a newer one is
            # registered but snapshots the experiment at the end of the step, so after a kill -9 in
            # between the snapshot names the older one (seen with one kept: "Could not recover from
            # checkpoint as it does not exist on storage anymore" for a trial paused at a rung).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))
