"""The Ray internals search/tune/ray_internals.py relies on, checked against the installed Ray: this
fails loudly (naming what moved) when a Ray upgrade changes them. pyproject pins Ray's minor version
to the one this suite runs, so an upgrade is a deliberate change that runs this first."""
from importlib.metadata import version
from types import SimpleNamespace

from ray.tune.schedulers import AsyncHyperBandScheduler

from search.tune import ray_internals


def _asha():
    return AsyncHyperBandScheduler(time_attr="epoch", metric="val/mse", mode="min", max_t=8, grace_period=2,
                                   reduction_factor=2, brackets=1)


def test_ray_is_the_minor_version_the_pin_names():
    assert version("ray").startswith("2.60."), version("ray")


def test_the_asha_rungs_are_a_list_of_milestones_and_value_dicts():
    asha = _asha()
    rungs = ray_internals.asha_rungs(asha)
    assert sorted(m for m, _ in rungs) == [2, 4, 8] and all(isinstance(d, dict) for _, d in rungs)
    assert ray_internals.asha_sign(asha) == -1.0


def test_a_recorded_value_is_what_asha_compares_with():
    asha = _asha()
    for milestone, recorded in ray_internals.asha_rungs(asha):
        if milestone == 2:
            recorded["earlier"] = -0.01  # Ray records metric_op * value: -val/mse when minimising
    trial = SimpleNamespace(trial_id="t")
    asha.on_trial_add(None, trial)
    assert ray_internals.asha_knows(asha, "t")
    assert asha.on_trial_result(None, trial, {"epoch": 2, "val/mse": 0.5}) == "STOP"  # worse than 0.01
    ray_internals.asha_forget(asha, "t")
    assert not ray_internals.asha_knows(asha, "t")
    ray_internals.asha_adopt(asha, "t")
    assert ray_internals.asha_knows(asha, "t")

