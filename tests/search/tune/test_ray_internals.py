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



# -- Ray's HyperBandScheduler and its _Bracket, as SyncHalving reaches them -----------------------------
def _bracket(n=4, rule=None):
    from search.tune.scheduler import survivors
    return ray_internals.RungBracket(n, first_rung=1, max_epochs=4, reduction_factor=2,
                                     rule=rule or (lambda ranked, keep, milestone=0: survivors(ranked, keep)))


def _trial(trial_id, **config):
    from ray.tune.experiment import Trial
    return Trial("__fake", stub=True, config=config, trial_id=trial_id)


def test_every_private_name_of_rays_bracket_and_hyperband_that_the_accessors_touch_exists():
    from ray.tune.schedulers import HyperBandScheduler
    from ray.tune.schedulers.hyperband import _Bracket
    bracket = _bracket()
    for name in ("_live_trials", "_all_trials", "_n", "_n0", "_r", "_cumul_r", "_max_t_attr", "_halves", "_eta",
                 "_time_attr", "trials_to_unpause"):
        assert hasattr(bracket, name), f"Ray's _Bracket lost {name}: search/tune/ray_internals.py needs a look"
    for name in ("_get_result_time", "cur_iter_done", "update_trial_stats", "continue_trial", "cleanup_trial",
                 "add_trial"):
        assert callable(getattr(_Bracket, name, None)), f"Ray's _Bracket lost {name}()"
    hyperband = HyperBandScheduler(time_attr="epoch", metric="val/mse", mode="min", max_t=4)
    for name in ("_trial_info", "_metric_op", "_num_stopped"):
        assert hasattr(hyperband, name), f"Ray's HyperBandScheduler lost {name}"
    assert ray_internals.hyperband_metric_op(hyperband) == -1.0 and ray_internals.hyperband_map(hyperband) == {}


def test_the_bracket_waits_for_all_n_then_halves_by_the_value_at_the_milestone():
    bracket, trials = _bracket(), [_trial(f"t{i}") for i in range(4)]
    for i, t in enumerate(trials[:3]):
        bracket.admit(t, None)
        bracket.update_trial_stats(t, {"epoch": 1, "val/mse": 0.1 * (i + 1)})
        bracket.note(t, {"epoch": 1, "val/mse": 0.1 * (i + 1)}, "val/mse")
    assert bracket.milestone == 1 and not bracket.cur_iter_done()  # 3 of 4 added: no decision yet
    bracket.admit(trials[3], None)
    bracket.update_trial_stats(trials[3], {"epoch": 1, "val/mse": 0.05})
    bracket.note(trials[3], {"epoch": 1, "val/mse": 0.05}, "val/mse")
    bracket.note(trials[3], {"epoch": 3, "val/mse": 0.9}, "val/mse")  # later epochs don't move its rung value
    assert bracket.cur_iter_done()
    good, bad = bracket.successive_halving("val/mse", -1.0)
    assert [t.trial_id for t in good] == ["t3", "t0"] and [t.trial_id for t in bad] == ["t1", "t2"]
    assert bracket.decisions == [(1, ["t3", "t0"], ["t1", "t2"])] and bracket.milestone == 2


def test_hold_restored_pauses_a_trial_so_tune_leaves_it_to_the_scheduler():
    from ray.tune.experiment import Trial
    trial = _trial("t")
    assert trial.status == Trial.PENDING
    ray_internals.hold_restored(trial)
    assert trial.status == Trial.PAUSED == ray_internals.PAUSED
