"""The Ray Tune `Tuner` of a study: made new, or restored from the study's Tune experiment."""
from __future__ import annotations

import dataclasses

from ray import tune

from search.asha import PersistentASHA
from search.callback import Progress, StudyCallback
from search.optuna_link import OptunaTarget, StudySearcher
from search.study import Range, Study
from search.trainable import CPUS_KEY, FAULTS_KEY, SCRATCH_KEY, data_arrays, run_trial
from sr_core.data import load_cached
from sr_core.train import TrialConfig


# Tune reads these when the Tuner is made.
TUNE_ENV = {
    # Save the experiment state often, so a kill -9 loses at most a couple of seconds of bookkeeping.
    "TUNE_GLOBAL_CHECKPOINT_S": "2",
    # The closing report (how a trial ended) carries no val/mse, on purpose.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    # num_to_keep=1 makes Tune snapshot the experiment after every checkpoint, which is what a
    # crash-safe resume wants; its warning about that would print once per epoch.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # search.interrupts is the only SIGINT listener of the driver (Tune's would print Tuner.restore).
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}


def make_tuner(s, per_trial: dict[str, float], concurrency: int, log) -> tune.Tuner:
    """`s` is the engine's session (whose driver environment holds TUNE_ENV). The data goes into Ray's
    object store once, here."""
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data_arrays(load_cached(s.data_path))), per_trial)
    path = f"{s.state['ray_storage'].rstrip('/')}/{s.state['optuna_study']}"
    if s.restoring and tune.Tuner.can_restore(path):
        # Errored trials stay errored (their process died more often than FailureConfig allows);
        # every trial that ended is TERMINATED; only unfinished ones run again.
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    return _new_tuner(s, trainable, per_trial, concurrency, log)


def _new_tuner(s, trainable, per_trial, concurrency, log) -> tune.Tuner:
    from mlflow.tracking import MlflowClient
    study: Study = s.study
    target = OptunaTarget(s.state["optuna_study"], s.state["optuna"])
    searcher = StudySearcher(target, optuna_space(study), sampler(study))
    scheduler: tune.schedulers.TrialScheduler = tune.schedulers.FIFOScheduler()
    if study.pruner.kind == "asha":
        scheduler = PersistentASHA(target, study.train.epochs, study.pruner.grace_period,
                                   study.pruner.reduction_factor)
        MlflowClient(s.tracking_uri).log_param(s.state["parent_run_id"], "pruner.rungs",
                                               ",".join(map(str, scheduler.milestones)))
    callback = StudyCallback(s.state["tracking_uri"], s.state["experiment_id"], s.state["parent_run_id"],
                             study.name, target, str(s.data_path), study.train.epochs,
                             s.state["optuna_study"],
                             Progress(study.num_trials, study.train.epochs, s.state.get("estimate_seconds", 0.0)))
    return tune.Tuner(
        trainable,
        param_space=trial_constants(study, per_trial, s.state["optuna_study"]),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=study.num_trials,
                                    max_concurrent_trials=concurrency,
                                    # One worker process serves trial after trial: no process start and
                                    # no torch import per trial (measured: 10.5 -> 2.3 slot-seconds of
                                    # overhead per trial, `sr-search bench overhead`).
                                    reuse_actors=True,
                                    trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=s.state["optuna_study"], storage_path=s.state["ray_storage"], verbose=0,
            callbacks=[callback],
            # Retries are for processes that died (a node lost, the OS's OOM killer): they resume
            # from the last epoch checkpoint. A trial's own exception is reported, not retried.
            failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def trial_constants(study: Study, per_trial: dict[str, float], scratch_tag: str) -> dict:
    """The config every trial shares: TrialConfig's fields from the study, plus the search's own."""
    fields = {f.name for f in dataclasses.fields(TrialConfig)}
    constants = {k: v for k, v in dataclasses.asdict(study.train).items() if k in fields}
    constants.update(seed=study.search.seed, epoch_samples=study.train.epoch_samples or None)
    return {**constants, CPUS_KEY: per_trial["cpu"], SCRATCH_KEY: scratch_tag, FAULTS_KEY: dict(study.faults)}


def optuna_space(study: Study) -> dict:
    import optuna
    space = {}
    for key, value in study.space.items():
        if isinstance(value, Range):
            space[key] = optuna.distributions.FloatDistribution(value.low, value.high, log=value.log)
        else:
            space[key] = optuna.distributions.CategoricalDistribution(list(value))
    return space


def sampler(study: Study):
    import optuna
    seed = study.search.seed
    if study.search.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(v) for k, v in study.space.items()}, seed=seed)
    if study.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)
