"""The study's Tune runs, each under the interrupt guard: the search (`fit`), then the pruning audit
(`audit`, search.run.audit) and the final step (`final`), each in a Tune experiment of its own that a
--resume restores. search.run.engine prepares the session and calls them in that order.
"""
from __future__ import annotations

import contextlib
import time

from search import tracking
from search.run.cluster import local_scratch_cleanup
from search.run.interrupts import Interrupted
from search.run.session import Session
from sr_core.contract import ROLE_AUDIT, ROLE_FINAL, TAG_FINAL_FROM, TAG_FINAL_FROM_RUN, TAG_ROLE


def fit(s: Session, guard, per_trial: dict, concurrency: int, log) -> None:
    """Build (or restore) the search's Tuner and run it (`_run_tuner`)."""
    from search.tune.tuner import TuneSetup, make_tuner
    local_scratch_cleanup(s.state.optuna_study)  # what a killed driver's trials left on this node
    tuner = make_tuner(TuneSetup(s.study, s.state, s.prepared.data, s.prepared.path, s.restoring,
                                 per_trial, concurrency, s.packing, s.prepared.full_val))
    gpu = "auto (per config)" if s.packing else f"{per_trial['gpu']:g}"
    log(f"running      : {per_trial['cpu']:g} CPU + {gpu} GPU per trial, "
        f"{concurrency} at a time, Ray experiment {s.state.ray_storage}")
    _run_tuner(s, guard, tuner, s.state.optuna_study, log)


def audit(s: Session, guard, per_trial: dict, concurrency: int, log) -> None:
    """The pruning audit (search.run.audit): [pruner].audit pruned trials, spread over the rung ranking,
    resumed from their checkpoints to the full budget, in an experiment of their own (restored on
    --resume: the trials picked when it started are the ones audited)."""
    from mlflow.tracking import MlflowClient

    from search.run import audit as pruning
    from search.tune.tuner import TuneSetup, audit_experiment, make_audit_tuner, restore_audit_tuner
    setup = TuneSetup(s.study, s.state, s.prepared.data, s.prepared.path, s.restoring, per_trial, concurrency,
                      s.packing, s.prepared.full_val)
    tag = audit_experiment(s.state)
    tuner = restore_audit_tuner(setup)
    if tuner is None:
        client = MlflowClient(s.tracking_uri)
        pruned = pruning.pruned_trials(client, s.state.experiment_id, s.state.parent_run_id, s.study.search.metric,
                                        s.study.space)
        checkpoints = pruning.latest_checkpoints(s.state.experiment_path(s.state.optuna_study))
        resumable = [p for p in pruned if p.trial_id in checkpoints]
        if len(resumable) < len(pruned):
            log(f"audit        : {len(pruned) - len(resumable)} pruned trial(s) left no checkpoint to resume from")
        chosen = pruning.picks(resumable, s.study.pruner.audit, s.study.search.direction)
        if not chosen:
            log("audit        : skipped: the search pruned no trial that can be resumed")
            return
        log(f"audit        : {len(chosen)} of {len(resumable)} pruned trials resumed to epoch "
            f"{s.study.train.epochs}, spread over the rung ranking: "
            + ", ".join(f"{p.name} (rank {rank}, stopped at epoch {p.stopped_at})" for rank, p in chosen))
        tuner = make_audit_tuner(setup, [pruning.audit_config(rank, len(resumable), p, checkpoints[p.trial_id])
                                         for rank, p in chosen])
    local_scratch_cleanup(tag)
    _run_tuner(s, guard, tuner, tag, log)


def final(s: Session, guard, per_trial: dict, log) -> None:
    """The final step: the best configuration known when it starts trained for [final].epochs as one
    more Tune trial (its own experiment and MLflow run, role `final`), restored on --resume like the
    search. That is the search's best trial's, or an audit run's that ended better (search.run.audit.
    final_choice); the console line and the final run's tags (TAG_FINAL_FROM, TAG_FINAL_FROM_RUN) say which."""
    from mlflow.tracking import MlflowClient

    from search.run.audit import config_name, final_choice, final_note, space_point
    from search.tune.tuner import TuneSetup, final_experiment, make_final_tuner
    client = MlflowClient(s.tracking_uri)
    metric, mode = s.study.search.metric, s.study.search.direction
    state = s.state
    best = tracking.best_of(tracking.study_trials(client, state.experiment_id, state.parent_run_id), metric, mode)
    audited = tracking.study_trials(client, state.experiment_id, state.parent_run_id, ROLE_AUDIT)
    chosen, source = final_choice(best, audited, metric, mode)
    if chosen is None:
        log("final        : skipped: no trial of the search, nor of its audit, ran to its end")
        return
    point = space_point(chosen, s.study.space)
    tag = final_experiment(state)
    local_scratch_cleanup(tag)
    tuner = make_final_tuner(TuneSetup(s.study, state, s.prepared.data, s.prepared.path, s.restoring,
                                       per_trial, 1, full_val=s.prepared.full_val), point)
    log(f"final        : {config_name(chosen)} {final_note(chosen, source, best, metric)} trained "
        f"{s.study.final.epochs} epochs from scratch on {per_trial['cpu']:g} CPU + {per_trial['gpu']:g} GPU, "
        f"Ray experiment {tag}")
    tags = {TAG_FINAL_FROM: source, TAG_FINAL_FROM_RUN: chosen["run_id"]}
    try:
        _run_tuner(s, guard, tuner, tag, log)
    except BaseException:
        with contextlib.suppress(Exception):  # the interruption is what the user must see
            _tag_final(client, s, tags)
        raise
    _tag_final(client, s, tags)


def _tag_final(client, s: Session, tags: dict[str, str]) -> None:
    """Where the final run's configuration came from, on the final run: the driver's callback makes the
    run when its trial starts, so it is tagged here once it exists (also when the step is interrupted).
    A run tagged already keeps its tags: the driver that made it chose its configuration."""
    for run in tracking.study_runs(client, s.state.experiment_id, s.state.parent_run_id):
        if run.data.tags.get(TAG_ROLE) == ROLE_FINAL and TAG_FINAL_FROM not in run.data.tags:
            tracking.set_tags(client, run.info.run_id, tags)


def _run_tuner(s: Session, guard, tuner, scratch_tag: str, log) -> None:
    """fit() under the interrupt guard: on a signal, tag what ran `interrupted` and re-raise; the
    wall time counted and the trials' node-local scratch swept however it ends."""
    t0 = time.monotonic()
    try:
        with guard.tune():
            tuner.fit()
    except Interrupted as exc:
        _mark_interrupted(s, f"interrupted by {exc}; resumable", log)
        raise
    finally:
        s.state.wall_seconds += time.monotonic() - t0
        s.save_state()
        local_scratch_cleanup(scratch_tag)


def _mark_interrupted(s: Session, reason: str, log) -> None:
    from mlflow.tracking import MlflowClient
    names = tracking.mark_unfinished(MlflowClient(s.tracking_uri), s.state.experiment_id,
                                     s.state.parent_run_id, reason)
    log(f"interrupted  : {len(names)} running trial(s) stopped and tagged interrupted"
        + (f": {', '.join(names)}" if names else ""))
