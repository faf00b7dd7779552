"""`bench search`'s replay: Ray's own ASHA scheduler deciding on given learning curves."""
import pytest

from search.bench.schedules import replay
from search.study import parse_study

GRID = """
[study]
name = "replay"
[search]
sampler = "grid"
seed = 0
[space]
arch = "residual"
blocks = [1, 2]
channels = [4, 8]
lr = [1e-3]
eta_min = 1e-5
[train]
epochs = 8
[pruner]
kind = "asha"
grace_period = 2
reduction_factor = 2
[resources]
cpus_per_trial = 1
gpus_per_trial = 0
"""


def _curves(study, finals: dict) -> dict:
    """Straight-line curves from 1.0 down to each config's final val/mse, 1 s per epoch."""
    names = [study.trial_config(c).run_name for c in study.grid()]
    return {n: {"val_mse": [1.0 + (finals[n] - 1.0) * e / 8 for e in range(1, 9)], "seconds": [1.0] * 8,
                "status": "completed"} for n in names}


def test_replay_prunes_the_losers_and_keeps_the_winner():
    study = parse_study(GRID, "test", "replay")
    finals = {"residual_b1_c4_lr0.001_eta1e-05": 0.9, "residual_b1_c8_lr0.001_eta1e-05": 0.5,
              "residual_b2_c4_lr0.001_eta1e-05": 0.7, "residual_b2_c8_lr0.001_eta1e-05": 0.1}
    out = replay(study, _curves(study, finals), seed=0, grace=2, rf=2, concurrency=1)
    assert out["grid_best"] == pytest.approx(0.1)
    assert out["asha_best"] == pytest.approx(0.1) and out["regret"] == pytest.approx(0.0)
    assert out["epochs_fraction"] < 1.0  # some epochs saved: at least one loser stopped at a rung
    assert 1 <= out["finished"] < 4


def test_replay_regret_counts_a_pruned_winner():
    """A late bloomer (worst early, best at the end) that ASHA cuts: regret against the full grid."""
    study = parse_study(GRID, "test", "replay")
    curves = _curves(study, {"residual_b1_c4_lr0.001_eta1e-05": 0.5, "residual_b1_c8_lr0.001_eta1e-05": 0.5,
                             "residual_b2_c4_lr0.001_eta1e-05": 0.5, "residual_b2_c8_lr0.001_eta1e-05": 0.5})
    late = "residual_b2_c8_lr0.001_eta1e-05"
    curves[late]["val_mse"] = [2.0] * 6 + [0.2, 0.1]
    out = replay(study, curves, seed=0, grace=2, rf=2, concurrency=1)
    assert out["grid_best"] == pytest.approx(0.1)
    if out["asha_best"] > 0.1:  # the late bloomer was cut at a rung
        assert out["regret"] == pytest.approx(out["asha_best"] / 0.1 - 1)
