"""`bench search`'s replay: Ray's own schedulers deciding on given learning curves, driven as Tune
drives them (search/bench/replay.py), and what it reports of a schedule."""
import pytest

from search.bench.replay import Curve, Replay, summarise
from search.bench.schedules import Schedule


def _curves(finals: dict, epochs: int = 9) -> list[Curve]:
    """Straight lines from 1.0 down to each config's final val/mse, 1 s per epoch; weight = blocks + 1."""
    return [Curve(name, {"blocks": blocks}, [1.0 + (final - 1.0) * e / epochs for e in range(1, epochs + 1)],
                  [1.0] * epochs, float(blocks + 1)) for name, (blocks, final) in finals.items()]


FINALS = {f"t{i}": (i % 3, final) for i, final in enumerate([0.9, 0.5, 0.7, 0.1, 0.8, 0.6, 0.95, 0.3, 0.85])}


def test_halving_trains_every_config_to_the_first_rung_then_a_third_of_them_further():
    curves = _curves(FINALS)
    outcome = Replay(Schedule("h", "halving", 1, 3).make(9, 9), curves, slots=2).run()
    # rungs at 1, 3, 9: 9 trials x 1 epoch, the best 3 to epoch 3, the best 1 to the end
    assert sorted(outcome.trained.values()) == [1] * 6 + [3, 3, 9]
    assert outcome.trained["t3"] == 9 and outcome.ended["t3"] == "finished"  # the grid's winner
    figures = summarise(curves, outcome)
    assert figures["epochs_fraction"] == pytest.approx((6 + 6 + 9) / 81)
    weights = {c.name: c.weight for c in curves}
    spent = sum(outcome.trained[n] * weights[n] for n in weights)
    assert figures["compute_fraction"] == pytest.approx(spent / sum(9 * w for w in weights.values()))
    assert figures["regret"] == 0.0 and figures["winner_finished"] and figures["winner_rank_among_finished"] == 1


def test_the_insured_variant_keeps_the_best_of_each_depth_at_every_rung():
    outcome = Replay(Schedule("h", "halving", 1, 3, "blocks").make(9, 9), _curves(FINALS), slots=1).run()
    at_three = {n for n, k in outcome.trained.items() if k >= 3}
    best_per_depth = {"t3", "t1", "t5"}  # depth 0: t3 (0.1); depth 1: t1 (0.5); depth 2: t5 (0.6)
    assert best_per_depth <= at_three and outcome.trained["t7"] >= 3  # t7 (0.3) is in the top third


def test_a_late_bloomer_cut_at_a_rung_is_regret_against_the_full_grid():
    curves = _curves({"a": (0, 0.5), "b": (1, 0.4), "late": (2, 0.5)})
    curves[2].val_mse = [2.0] * 7 + [0.2, 0.1]  # worst early, best at the end
    figures = summarise(curves, Replay(Schedule("h", "halving", 3, 3).make(3, 9), curves, slots=1).run())
    assert figures["winner"] == "late" and not figures["winner_finished"]
    assert figures["found"] == "b" and figures["regret"] == pytest.approx(0.4 / 0.1 - 1)


def test_asha_promotes_whoever_reaches_a_rung_first_and_never_pauses():
    curves = _curves(FINALS)
    outcome = Replay(Schedule("a", "asha", 1, 3).make(9, 9), curves, slots=1).run()
    assert set(outcome.ended.values()) <= {"finished", "pruned"} and outcome.trained["t0"] == 9  # first: it goes on


def test_wall_time_shrinks_with_slots_and_decisions_do_not_change():
    curves = _curves(FINALS)
    one = Replay(Schedule("h", "halving", 1, 3).make(9, 9), curves, slots=1).run()
    four = Replay(Schedule("h", "halving", 1, 3).make(9, 9), curves, slots=4).run()
    assert one.trained == four.trained and one.wall_s == sum(one.trained.values())
    assert four.wall_s < one.wall_s


def test_the_projection_counts_each_trained_epoch_at_its_real_configs_hours():
    curves = _curves(FINALS)
    for c in curves:
        c.epoch_hours = 0.1 * (c.config["blocks"] + 1)
    outcome = Replay(Schedule("h", "halving", 1, 3).make(9, 9), curves, slots=1).run()
    figures = summarise(curves, outcome)
    assert figures["projected_gpu_hours"] == pytest.approx(sum(outcome.trained[c.name] * c.epoch_hours for c in curves))
    assert figures["full_grid_gpu_hours"] == pytest.approx(9 * sum(c.epoch_hours for c in curves))
    assert "projected_gpu_hours" not in summarise(_curves(FINALS), outcome)  # no hours: no projection


def test_the_h100_model_meets_its_two_measured_anchors():
    from search.bench.projection import epoch_hours
    # b24 c612 is compute-bound at the measured 211 images/s; b8 c64 launch-bound at 1492 images/s
    train_only = lambda b, c: epoch_hours("residual", b, c, train_images=7000, val_images=0) * 3600 / 7000
    assert 1 / train_only(24, 612) == pytest.approx(211.1, rel=0.01)
    assert 1 / train_only(8, 64) == pytest.approx(1492, rel=1e-6)
    assert train_only(24, 64) == pytest.approx(3 * train_only(8, 64))  # launches grow with the depth
