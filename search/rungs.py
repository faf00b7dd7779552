"""The epochs a synchronous schedule compares trials at: arithmetic the study, its scheduler and the
estimate share."""
from __future__ import annotations


def halving_rungs(first_rung: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs synchronous successive halving compares trials at: the first rung, then each the
    last times the reduction factor, capped at max_epochs (as Ray's HyperBand bracket computes them)."""
    rungs = [first_rung]
    while rungs[-1] < max_epochs:
        rungs.append(int(min(rungs[-1] * reduction_factor, max_epochs)))
    return rungs
