"""Every use of Ray Tune's private scheduler state, in one place (the version pin in pyproject.toml
and tests/search/tune/test_ray_internals.py guard it: they fail loudly when Ray changes it).

Ray's `AsyncHyperBandScheduler` keeps its rungs in `_brackets[k]._rungs` (a list of (milestone,
{trial_id: metric_op * value})), the bracket of each trial in `_trial_info`, and its mode in `_mode`.
Ray offers no public way to refill rungs after `Tuner.restore`, which rebuilds the scheduler from the
pickle written at the start (ray-project/ray#30838), so the persistent scheduler needs these.
"""
from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler


def asha_rungs(scheduler: AsyncHyperBandScheduler) -> list[tuple[int, dict[str, float]]]:
    """(milestone epoch, {trial_id: recorded value}) of the scheduler's single bracket; the dicts are
    Ray's own, so writing into them records a value."""
    return [(int(milestone), recorded) for milestone, recorded in scheduler._brackets[0]._rungs]  # noqa: SLF001


def asha_sign(scheduler: AsyncHyperBandScheduler) -> float:
    """What Ray multiplies a value by before recording it (-1 when minimising)."""
    return -1.0 if scheduler._mode == "min" else 1.0  # noqa: SLF001


def asha_knows(scheduler: AsyncHyperBandScheduler, trial_id: str) -> bool:
    return trial_id in scheduler._trial_info  # noqa: SLF001


def asha_adopt(scheduler: AsyncHyperBandScheduler, trial_id: str) -> None:
    """Put a restored trial that Ray did not re-add into the single bracket."""
    scheduler._trial_info[trial_id] = scheduler._brackets[0]  # noqa: SLF001


def asha_forget(scheduler: AsyncHyperBandScheduler, trial_id: str) -> None:
    scheduler._trial_info.pop(trial_id, None)  # noqa: SLF001
