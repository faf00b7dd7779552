"""The paired bootstrap (reports.noise) against cases whose answer is known."""
import math

import numpy as np
import pytest

from reports.noise import gain, tied_with_best


def test_the_interval_covers_the_true_difference_at_its_stated_rate():
    # Paired differences d ~ N(0.3, 1) on 60 images: the true mean difference is 0.3. Over 200 val sets
    # a 95% interval holds it about 190 times (binomial sd ~3); a wrong pairing or a wrong sign does not.
    rng = np.random.default_rng(1)
    covered, widths = 0, []
    for _ in range(200):
        base = rng.uniform(20, 30, 60)  # each image's own difficulty: the pairing must cancel it
        a = base + 0.3 + rng.normal(0, 1, 60)
        g = gain(a, base, "val/psnr", "max", resamples=1000)
        covered += g.low <= 0.3 <= g.high
        widths.append(g.high - g.low)
    assert 180 <= covered <= 198
    # normal theory: 2 x 1.96 x sd / sqrt(n) = 0.506
    assert np.mean(widths) == pytest.approx(2 * 1.96 / math.sqrt(60), rel=0.1)


def test_mse_gains_are_db_of_the_mean_mse_and_positive_means_better():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.002, 0.004, 56)
    a = b * 10 ** (-0.5 / 10) * rng.uniform(0.98, 1.02, 56)  # A about 0.5 dB better on every image
    g = gain(a, b, "val/mse", "min")
    assert g.value == pytest.approx(10 * np.log10(b.mean() / a.mean()))
    assert g.low < g.value < g.high and g.low > 0.4 and g.high < 0.6
    assert g.verdict == "better" and g.unit == "dB"
    assert gain(b, a).verdict == "worse"


def test_a_difference_smaller_than_its_noise_is_a_tie():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.002, 0.004, 56)
    a = b * rng.uniform(0.9, 1.1, 56)  # no systematic difference, 10% noise per image
    g = gain(a, b)
    assert g.low < 0 < g.high and g.verdict == "tied"
    assert "tied" not in g.text() and g.text().endswith("]")


def test_lower_is_better_metrics_are_signed_so_positive_means_better():
    b = np.linspace(0.5, 0.7, 30)
    a = b - 0.05 + np.linspace(-0.01, 0.01, 30)
    assert gain(a, b, "val/lpips", "min").value == pytest.approx(0.05)
    assert gain(a, b, "val/lpips", "min").verdict == "better"


def test_identical_shifts_give_a_point_interval_and_identical_models_tie():
    b = np.linspace(0.002, 0.004, 20)
    assert gain(b, b).as_dict() | {"images": 20} == {"value": 0.0, "low": 0.0, "high": 0.0, "images": 20,
                                                       "unit": "dB", "verdict": "tied"}
    shifted = gain(b + 1.0, b, "val/psnr", "max")
    assert (shifted.value, shifted.low, shifted.high) == pytest.approx((1.0, 1.0, 1.0))
    assert shifted.verdict == "better"


def test_the_same_inputs_give_the_same_interval():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    assert gain(a, b, "val/ssim", "max") == gain(a, b, "val/ssim", "max")


def test_bad_shapes_name_the_problem():
    with pytest.raises(ValueError, match="paired"):
        gain([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="mode"):
        gain([1.0, 2.0], [1.0, 3.0], "val/psnr", "up")


def test_the_tied_set_holds_the_best_and_those_within_noise_only():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.002, 0.004, 56)
    images = {"best": base,
              "twin": base * rng.uniform(0.97, 1.03, 56),  # tied
              "worse": base * 1.3 * rng.uniform(0.99, 1.01, 56)}  # 1.1 dB worse on every image
    tied = tied_with_best(images, "best")
    assert set(tied) == {"best", "twin"}
    assert tied["best"].value == 0.0 and tied["twin"].verdict == "tied"
