"""The epochs a synchronous schedule compares trials at: arithmetic the study, its scheduler and the
estimate share."""
from __future__ import annotations

import math


def halving_rungs(first_rung: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs synchronous successive halving compares trials at: the first rung, then each the
    last times the reduction factor, capped at max_epochs (as Ray's HyperBand bracket computes them)."""
    rungs = [first_rung]
    while rungs[-1] < max_epochs:
        rungs.append(int(min(rungs[-1] * reduction_factor, max_epochs)))
    return rungs


def schedule_epochs(study) -> list[tuple[int, int]]:
    """(trials, epochs each) of the study's schedule: how many trials stop at each rung, and how many
    run every epoch. Exact for synchronous halving over a grid; ASHA's expectation."""
    n, epochs, rf = study.num_trials, study.train.epochs, study.pruner.reduction_factor
    if study.schedule == "none" or n == 0:
        return [(n, epochs)]
    if study.schedule == "halving":
        rungs = study.rungs()[:-1]
    else:
        rungs = [r for r in (study.pruner.grace_period * rf ** k for k in range(64)) if r < epochs]
    insured = len(study.space[study.pruner.insure]) if study.pruner.insure else 0
    out = []
    for rung in rungs:
        keep = min(n, max(math.ceil(n / rf), insured))
        out.append((n - keep, rung))
        n = keep
    out.append((n, epochs))
    return [(k, e) for k, e in out if k]


def carried_cells(study) -> tuple[int, dict[tuple, list[dict]]] | None:
    """(the rung where cells choose their lr, each cell's configs) of a halving study's questions: the
    configs its questions carry past the schedule; None when it asks none or does not halve (without
    pruning every config reaches the full budget anyway)."""
    from search.questions import choose_epoch, slice_configs
    if study.schedule != "halving" or not study.questions.active or study.grid_size is None:
        return None
    choose = min(choose_epoch(study.questions, study.rungs()), study.train.epochs)
    return choose, slice_configs(study.questions, study.grid())


def question_cost(study, cost, fraction: float) -> tuple[int, float]:
    """(cells, cost) the questions add, by `cost(config, epochs)`: every config of a cell to the choosing
    rung, the cell's chosen one (the costliest, an upper bound) on to the full budget, less what the
    schedule trains those configs anyway (`fraction` of their epochs). (0, 0.0) without questions."""
    carried = carried_cells(study)
    if carried is None:
        return 0, 0.0
    choose, cells = carried
    epochs = study.train.epochs
    members = {study.trial_config(c).run_name: c for ms in cells.values() for c in ms}
    total = sum(cost(c, choose) for c in members.values())
    total += sum(max(cost(c, epochs - choose) for c in ms) for ms in cells.values())
    return len(cells), max(total - sum(cost(c, epochs) for c in members.values()) * fraction, 0.0)


def planned_epochs(study) -> int:
    """Every trial-epoch the study's search trains: its schedule (`schedule_epochs`), with the configs its
    questions protect at each rung (every config of a cell before the choosing rung, then one per cell)
    kept too, assuming they overlap the rung's best as far as they can (a lower bound of the union):
    what the progress line's ETA counts down."""
    carried = carried_cells(study)
    if carried is None:
        return sum(k * e for k, e in schedule_epochs(study))
    choose, cells = carried
    n, epochs, rf = study.num_trials, study.train.epochs, study.pruner.reduction_factor
    members = len({study.trial_config(c).run_name for ms in cells.values() for c in ms})
    insured = len(study.space[study.pruner.insure]) if study.pruner.insure else 0
    total = 0
    for rung in study.rungs()[:-1]:
        protected = members if rung < choose else len(cells)
        keep = min(n, max(math.ceil(n / rf), insured, protected))
        total += (n - keep) * rung
        n = keep
    return total + n * epochs
