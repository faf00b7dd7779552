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


def planned_epochs(study) -> int:
    """Every trial-epoch the study's search trains: its schedule's (`schedule_epochs`), plus what its
    questions carry past the rungs (each cell's configs to the choosing rung, its chosen one to the end,
    less what the schedule trains them anyway): what the progress line's ETA counts down."""
    from search.questions import choose_epoch, slice_configs
    steps = schedule_epochs(study)
    planned = sum(k * e for k, e in steps)
    if study.schedule != "halving" or not study.questions.active or study.grid_size is None:
        return planned
    epochs = study.train.epochs
    choose = min(choose_epoch(study.questions, study.rungs()), epochs)
    cells = slice_configs(study.questions, study.grid())
    members = {study.trial_config(c).run_name for ms in cells.values() for c in ms}
    carried = len(members) * choose + len(cells) * (epochs - choose)
    fraction = planned / max(study.num_trials * epochs, 1)
    return planned + max(round(carried - len(members) * epochs * fraction), 0)
