"""The study's Tune runs, each under the interrupt guard: the search (`fit`), then the pruning audit
(`audit`, search.run.audit) and the final step (`final`), each in a Tune experiment of its own that a
--resume restores. search.run.engine prepares the session and calls them in that order.
"""
from __future__ import annotations

import time

from search import tracking
from search.run.cluster import local_scratch_cleanup
from search.run.interrupts import Interrupted
from search.run.session import Session


def fit(s: Session, guard, per_trial: dict, concurrency: int, log) -> None:
    """Build (or restore) the search's Tuner and run it (`_run_tuner`)."""
    from search.tune.tuner import TuneSetup, make_tuner
    local_scratch_cleanup(s.state.optuna_study)  # what a killed driver's trials left on this node
    tuner = make_tuner(TuneSetup(s.study, s.state, s.prepared.data, s.prepared.path, s.restoring,
                                 per_trial, concurrency, s.packing))
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
                      s.packing)
    tag = audit_experiment(s.state)
    tuner = restore_audit_tuner(setup)
    if tuner is None:
        client = MlflowClient(s.tracking_uri)
        pruned = pruning.pruned_trials(client, s.state.experiment_id, s.state.parent_run_id, s.study.search.metric)
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
    """The final step: the search's best configuration trained for [final].epochs as one more Tune
    trial (its own experiment and MLflow run, role `final`), restored on --resume like the search."""
    from mlflow.tracking import MlflowClient

    from search.run.audit import space_point
    from search.tune.tuner import TuneSetup, final_experiment, make_final_tuner
    client = MlflowClient(s.tracking_uri)
    best = tracking.best_of(tracking.study_trials(client, s.state.experiment_id, s.state.parent_run_id),
                            s.study.search.metric, s.study.search.direction)
    if best is None:
        log("final        : skipped: no trial of the search ran to its end")
        return
    point = space_point(best)
    tag = final_experiment(s.state)
    local_scratch_cleanup(tag)
    tuner = make_final_tuner(TuneSetup(s.study, s.state, s.prepared.data, s.prepared.path, s.restoring,
                                       per_trial, 1), point)
    log(f"final        : {best['name']} (the search's best) trained {s.study.final.epochs} epochs from "
        f"scratch on {per_trial['cpu']:g} CPU + {per_trial['gpu']:g} GPU, Ray experiment {tag}")
    _run_tuner(s, guard, tuner, tag, log)


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
