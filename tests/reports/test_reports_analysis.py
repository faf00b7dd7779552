"""Pure analysis functions, checked against references and hand-computed numbers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports import analysis as an


def test_pareto_front_keeps_exactly_the_undominated_points():
    df = pd.DataFrame({"cost": [1, 2, 3, 4, 2, 5], "err": [5, 3, 4, 1, 3, 1]}, index=list("abcdef"))
    mask = an.pareto_front(df, "cost", "err")
    # c is beaten by b; f ties d on err but costs more; b and e are identical and both stay.
    assert list(mask[mask].index) == ["a", "b", "d", "e"]


def test_pareto_front_never_includes_missing_values():
    df = pd.DataFrame({"cost": [1.0, np.nan, 3.0], "err": [2.0, 0.1, np.nan]})
    assert an.pareto_front(df, "cost", "err").tolist() == [True, False, False]


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.015, 0.014, 0.013, 0.012], [0.01, 0.009, 0.0092, 0.007]),
        ([1, 2, 2, 3, 5, 4, 7], [2, 1, 4, 4, 6, 9, 8]),  # ties on both sides
        (list(np.random.default_rng(0).normal(size=30)), list(np.random.default_rng(1).normal(size=30))),
    ],
)
def test_spearman_equals_scipy_and_pandas(a, b):
    expected = stats.spearmanr(a, b).statistic
    assert an.spearman(a, b) == pytest.approx(expected, abs=1e-12)
    frame = pd.DataFrame({"a": a, "b": b})
    assert an.spearman(a, b) == pytest.approx(frame.corr(method="spearman").loc["a", "b"], abs=1e-12)


def test_spearman_is_nan_when_it_cannot_be_defined():
    assert math.isnan(an.spearman([1, 2], [2, 1]))
    assert math.isnan(an.spearman([1, 1, 1], [1, 2, 3]))
    assert an.spearman([1, 2, np.nan, 3], [1, 2, 5, 3]) == pytest.approx(1.0)


def test_power_law_fit_recovers_the_exponent_of_synthetic_data():
    params = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
    fit = an.fit_power_law(params, 0.3 * params**-0.2)
    assert fit.slope == pytest.approx(-0.2, abs=1e-9)
    assert fit.coef == pytest.approx(0.3, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0)
    noisy = 0.3 * params**-0.2 * np.exp(np.random.default_rng(0).normal(0, 0.01, size=5))
    assert an.fit_power_law(params, noisy).slope == pytest.approx(-0.2, abs=0.03)


def test_power_law_fit_needs_three_points_with_different_x():
    assert an.fit_power_law([1, 2], [1, 2]) is None
    assert an.fit_power_law([5, 5, 5], [1, 2, 3]) is None


def test_doubling_width_statement_states_mse_change_and_psnr_equivalent():
    fit = an.PowerLaw(slope=-0.2, coef=1.0, r2=0.9, n=5)
    text = an.doubling_width_statement("residual", fit)
    ratio = 4**-0.2  # doubling width ~ 4x params
    assert f"{ratio:.3f}" in text and f"{(ratio - 1) * 100:+.1f}%" in text
    assert f"{-10 * math.log10(ratio):+.2f} dB" in text  # +1.20 dB


def test_default_width_and_depth_pick_the_most_coverage():
    trials = pd.DataFrame(
        {
            "blocks": [8, 16, 24, 8, 16, 8, 8],
            "channels": [64, 64, 64, 128, 128, 256, 512],
            "val/mse": [0.01] * 7,
            "status": ["completed"] * 6 + ["pruned"],  # the pruned one does not count
        }
    )
    assert an.default_width(trials) == 64  # three depths
    assert an.default_depth(trials) == 8  # three finished widths
    assert an.default_width(trials[trials["channels"] == 128].iloc[:1]) is None


def test_rung_epochs_follow_asha():
    assert an.rung_epochs(2, 2, 20) == [2, 4, 8, 16]
    assert an.rung_epochs(5, 3, 4) == []


def test_rung_check_calls_a_scrambled_ranking_untrustworthy():
    trials = pd.DataFrame(
        {"run_id": list("abcde"), "name": list("abcde"), "study": "s", "status": "completed",
         "val/mse": [1.0, 2.0, 3.0, 4.0, 5.0]}  # fmt: skip
    )
    history = pd.DataFrame(
        {"run_id": list("abcde"), "study": "s", "epoch": 3, "val/mse": [5.0, 4.0, 3.0, 2.0, 1.0]}
    )
    check = an.rung_check("s", trials, history, grace_period=3, reduction_factor=2)
    assert check.rho == pytest.approx(-1.0)
    assert "the rung ranking said little of the final one (Spearman ρ = -1.000 over 5 trials at epoch 3)" in check.verdict
    assert "no audit ran, so a miss cannot be ruled out" in check.verdict
    assert "ranked 5 of 5" in check.verdict and "outside the top 3" in check.verdict


def _finished_and_rungs():
    trials = pd.DataFrame(
        {"run_id": list("abcd"), "name": list("abcd"), "study": "s", "status": "completed",
         "val/mse": [1.0, 2.0, 3.0, 4.0]}  # fmt: skip
    )
    history = pd.DataFrame(
        {"run_id": list("abcdxy"), "study": "s", "epoch": 2, "val/mse": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
    )  # x and y: pruned at the rung, worse than every finished trial there
    return trials, history


def _audits(values):
    return pd.DataFrame({"run_id": ["ax", "ay"], "name": ["x-audit", "y-audit"], "study": "s",
                         "status": "completed", "val/mse": values, "source_run_id": ["x", "y"],
                         "stopped_at": [2, 2], "rank": [1, 2], "pruned": [2, 2]})


def test_an_audited_trial_that_beats_the_winner_is_a_miss_noise_unknown_without_per_image_values():
    trials, history = _finished_and_rungs()
    check = an.rung_check("s", trials, history, grace_period=2, reduction_factor=2, audits=_audits([0.8, 5.0]))
    assert list(check.table["kind"]) == ["finished"] * 4 + ["audited"] * 2 and check.n == 6
    assert "(4 finished, 2 audited)" in check.verdict
    assert ("a pruning miss, noise unknown: the best of 2 audited trial(s), x-audit (cut at the epoch-2 rung, "
            "ranked 1 of 2 pruned; resumed)") in check.audit
    assert "the rung ranking missed it" in check.verdict and "predicted" not in check.verdict
    assert check.audit in check.verdict


def test_with_per_image_values_an_audited_trial_within_noise_of_the_winner_is_no_miss():
    trials, history = _finished_and_rungs()
    rng = np.random.default_rng(0)
    base = rng.uniform(0.9, 1.1, 40)
    images = {"a": {"val/mse": list(base)}, "ax": {"val/mse": list(base * rng.uniform(0.9, 1.08, 40))},
              "ay": {"val/mse": list(base * 5)}}
    check = an.rung_check("s", trials, history, grace_period=2, audits=_audits([0.99, 5.0]), images=images)
    assert "no pruning miss: the best of 2 audited trial(s), x-audit" in check.verdict
    assert "ended tied with the winner a (" in check.verdict and " dB [" in check.verdict
    assert check.verdict.count(". ") <= 1  # one verdict sentence, then where the winner ranked


def test_anytime_accumulates_each_epoch_s_device_share_in_the_order_epochs_ended():
    trials = pd.DataFrame({"run_id": ["a", "b"], "name": ["a", "b"], "study": "s", "gpus": [0.25, np.nan],
                           "max_epochs": [4.0, 4.0]})
    history = pd.DataFrame({"run_id": ["a", "b", "a", "b"], "epoch": [1, 1, 2, 2],
                            "logged_at": [1.0, 2.0, 3.0, 4.0], "epoch_seconds": [3600.0] * 4,
                            "val/mse": [0.5, 0.3, 0.4, 0.35]})
    found = an.anytime("s", trials, history)
    # a holds a quarter GPU, b (no GPU tag) a whole slot
    assert list(found.curve["device_hours"]) == [0.25, 1.25, 1.5, 2.5]
    assert list(found.curve["best_val_mse"]) == [0.5, 0.3, 0.3, 0.3]
    assert found.spent_hours == 2.5 and found.full_hours == pytest.approx(4 * 0.25 + 4 * 1.0)
    assert an.anytime("other", trials, history) is None
