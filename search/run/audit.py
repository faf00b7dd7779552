"""The pruning audit (`[pruner] audit = K`): was the pruning right to stop what it stopped?

After the search, K of its pruned trials, spread over the rung ranking (the best pruned one, the
worst, and evenly between: not only the near-misses), resume from their last checkpoint (the epoch a
synchronous schedule paused them at) to the search's full budget. Each is a Tune trial of its own
experiment (`<study>-audit`, restored on --resume like the search) and a child run of role `audit`
named `<run name>-audit`, tagged with the pruned trial it continues (sr_core.contract.AUDIT_TAGS). The
pruned trial itself stays `pruned` in MLflow and Optuna: the search's decision is what is audited.

The report (reports.figures.pruning_validity) then says whether an audited trial beat the search's
winner and by how much (the pruning regret), and the rung-vs-final rank correlation over audited and
finished trials together. When one did, the final step ([final]) trains its configuration rather than the
search's best (`final_choice`): the best configuration known when the final step starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sr_core.contract import AUDIT_SUFFIX, AUDIT_TAGS, FINAL_FROM_AUDIT, FINAL_FROM_SEARCH, best_position, summary_key


@dataclass(frozen=True)
class Pruned:
    """A pruned trial of the search, as the audit ranks it."""
    run_id: str
    name: str
    trial_id: str
    stopped_at: int  # the last epoch it trained (the rung it was stopped at)
    value: float  # the objective at that epoch
    point: dict  # its [space] values


def rung_ranking(pruned: list[Pruned], mode: str) -> list[Pruned]:
    """Best first, as the schedule saw them: a trial stopped at a later rung survived more rungs and
    ranks above one stopped earlier; within a rung, by the objective there (NaN last, then by name)."""
    sign = 1.0 if mode == "min" else -1.0

    def key(p: Pruned):
        value = sign * p.value if math.isfinite(p.value) else math.inf
        return (-p.stopped_at, value, p.name)
    return sorted(pruned, key=key)


def spread(n: int, k: int) -> list[int]:
    """k positions of a ranking of n, spread evenly with both ends in (k = 1: the best alone)."""
    if k <= 0 or n <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    # consecutive targets are (n-1)/(k-1) > 1 apart, so the rounded positions are distinct
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]


def picks(pruned: list[Pruned], k: int, mode: str) -> list[tuple[int, Pruned]]:
    """The audited trials: (1-based rank in the rung ranking, trial), best first."""
    ranked = rung_ranking(pruned, mode)
    return [(i + 1, ranked[i]) for i in spread(len(ranked), k)]


def pruned_trials(client, experiment_id: str, parent_run_id: str, metric: str,
                  space: dict | None = None) -> list[Pruned]:
    """The search's pruned trials, with the objective at the epoch each was stopped at."""
    from search import tracking
    out = []
    for row in tracking.study_trials(client, experiment_id, parent_run_id):
        if row["status"] != "pruned":
            continue
        history = {m.step: m.value for m in client.get_metric_history(row["run_id"], metric)}
        stopped = max(history, default=0)
        out.append(Pruned(row["run_id"], row["name"], row.get("trial_id", ""), int(stopped),
                          float(history.get(stopped, math.nan)),
                          space_point(row, space)))
    return out


def space_point(row: dict, space: dict | None = None) -> dict:
    """A run's [space] values (MLflow params are strings) typed as TrialConfig declares them; a user
    arch's parameters (the study's other `space` keys) as the study's own value that they print as."""
    from sr_core.trial_config import fields_in
    point = {f.name: {"int": int, "float": float}.get(f.type, str)(row[f.name]) for f in fields_in("space")}
    extras = [k for k in space or {} if k not in point]
    return {**point, **{k: next(v for v in space[k] if str(v) == str(row[k])) for k in extras}}


def checkpoint_uri(checkpoint) -> str:
    """A Tune checkpoint as a string another trial can open with tune.Checkpoint(uri): its path on
    local (or shared) storage, SCHEME://path on a remote filesystem (s3, gcs)."""
    import pyarrow.fs
    fs = checkpoint.filesystem
    if fs is None or isinstance(fs, pyarrow.fs.LocalFileSystem):
        return str(checkpoint.path)
    return f"{fs.type_name}://{checkpoint.path}"


def audit_config(rank: int, total: int, trial: Pruned, checkpoint: str) -> dict:
    """One audit trial's `search.tune.trainable.AUDIT_KEY` value: the point, where it resumes from and its run's tags."""
    tags = dict(zip(AUDIT_TAGS, (trial.run_id, str(trial.stopped_at), str(rank), str(total))))
    return {**trial.point, "checkpoint": checkpoint, "source": trial.name, "tags": tags}


def latest_checkpoints(experiment_path: str) -> dict[str, str]:
    """trial id -> its latest checkpoint (checkpoint_uri) in a Tune experiment's folder."""
    from ray.tune import ExperimentAnalysis
    analysis = ExperimentAnalysis(experiment_path)
    return {t.trial_id: checkpoint_uri(t.checkpoint) for t in analysis.trials if t.checkpoint is not None}


def final_choice(search_best: dict | None, audited: list[dict], metric: str,
                 mode: str) -> tuple[dict | None, str]:
    """What the final step trains: (run row, FINAL_FROM_SEARCH or FINAL_FROM_AUDIT). The search's best
    trial (`search.tracking.best_of`'s row, None when no trial finished) unless an audit run
    (`study_trials` rows of role `audit`) ran to its end with a strictly better value of the objective
    (`metric`, `mode`): then the best of those. The one rule (sr_core.contract.best_position) with the
    search's best listed first, so a tie keeps it. (None, FINAL_FROM_SEARCH) when nothing finished."""
    rows = ([search_best] if search_best is not None else []) + list(audited)
    key = summary_key(metric)
    at = best_position([r.get("status", "") for r in rows], [r.get(key, math.nan) for r in rows], mode)
    if at is None:
        return None, FINAL_FROM_SEARCH
    chosen = rows[at]
    return chosen, (FINAL_FROM_SEARCH if chosen is search_best else FINAL_FROM_AUDIT)


def final_note(chosen: dict, source: str, search_best: dict | None, metric: str) -> str:
    """Why the final step trains `chosen` (`final_choice`), for its console line: "(the search's best,
    val/mse 0.0025417)" or "(audited trial pruned at epoch 2, val/mse 0.0025367: better than the
    search's best residual_b1_c32_lr0.002_eta1e-06 at 0.0025417)"."""
    key = summary_key(metric)
    value = f"{metric} {float(chosen[key]):.5g}"
    if source != FINAL_FROM_AUDIT:
        return f"(the search's best, {value})"
    stopped = chosen.get(AUDIT_TAGS[1])
    than = ("no trial of the search ran to its end" if search_best is None else
            f"better than the search's best {search_best['name']} at {float(search_best[key]):.5g}")
    return f"(audited trial{f' pruned at epoch {stopped}' if stopped else ''}, {value}: {than})"


def config_name(row: dict) -> str:
    """The configuration's name of a trial's or an audit run's row: the trial's run name."""
    return str(row["name"]).removesuffix(AUDIT_SUFFIX)
