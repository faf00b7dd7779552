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
    assert "not trustworthy" in check.verdict
    assert "ranked 5 of 5" in check.verdict and "outside the top 3" in check.verdict
