"""sr_core.contract: the tracking vocabulary's rule for the best trial, which search and the report share."""
import math

import pytest

from sr_core.contract import FINISHED, best_position, summary_key


def test_the_best_is_the_lowest_value_among_finished_trials_ties_to_the_first():
    statuses = ["pruned", "completed", "early_stopped", "completed", "diverged"]
    values = [0.001, 0.010, 0.005, 0.005, math.nan]
    assert best_position(statuses, values) == 2  # pruned 0.001 is never best; 0.005 twice: the first


def test_max_mode_takes_the_highest_and_non_finite_values_never_win():
    statuses = ["completed"] * 4
    assert best_position(statuses, [30.1, math.inf, 31.5, math.nan], mode="max") == 2
    assert best_position(statuses, [None, 0.2, 0.1, 0.3]) == 2


def test_no_finished_trial_means_no_best_and_a_bad_mode_is_named():
    assert best_position(["pruned", "oom", "running"], [0.1, 0.2, 0.3]) is None
    assert best_position([], []) is None
    with pytest.raises(ValueError, match="mode='lowest'"):
        best_position(["completed"], [0.1], mode="lowest")


def test_summary_keys_and_finished_statuses():
    assert summary_key("val/mse") == "best/val_mse" and summary_key("val/psnr_y") == "best/val_psnr_y"
    assert FINISHED == ("completed", "early_stopped")
