"""What the [final] step trains (search.run.audit.final_choice): the best configuration known when it
starts, the search's best trial's or an audited trial's that ended better, and the words that say which."""
import math

import pytest

from search.run.audit import config_name, final_choice, final_note
from sr_core.contract import FINAL_FROM_AUDIT, FINAL_FROM_SEARCH

KEY = "best/val_mse"


def row(name: str, value: float, status: str = "completed", **extra) -> dict:
    return {"name": name, "run_id": f"run-{name}", "status": status, KEY: value, **extra}


SEARCH_BEST = row("residual_b1_c32_lr0.002_eta1e-06", 0.0025417)


def test_without_an_audit_the_search_best_is_trained():
    chosen, source = final_choice(SEARCH_BEST, [], "val/mse", "min")
    assert chosen is SEARCH_BEST and source == FINAL_FROM_SEARCH
    assert final_note(chosen, source, SEARCH_BEST, "val/mse") == "(the search's best, val/mse 0.0025417)"


def test_an_audited_trial_that_ended_better_is_trained_and_said_so():
    worse = row("residual_b2_c16_lr0.002_eta1e-06-audit", 0.0031)
    better = row("residual_b4_c32_lr0.0015_eta1e-06-audit", 0.0025367, **{"audit.stopped_at": "2"})
    chosen, source = final_choice(SEARCH_BEST, [worse, better], "val/mse", "min")
    assert chosen is better and source == FINAL_FROM_AUDIT
    assert config_name(chosen) == "residual_b4_c32_lr0.0015_eta1e-06"
    assert final_note(chosen, source, SEARCH_BEST, "val/mse") == (
        "(audited trial pruned at epoch 2, val/mse 0.0025367: better than the search's best "
        "residual_b1_c32_lr0.002_eta1e-06 at 0.0025417)")


@pytest.mark.parametrize("audited", [
    [row("a-audit", 0.0030)],  # worse
    [row("a-audit", 0.0025417)],  # a tie keeps the search's best
    [row("a-audit", 0.0010, status="interrupted")],  # better, but it did not run to its end
    [row("a-audit", 0.0010, status="failed")],
    [row("a-audit", math.nan)],
    [{"name": "a-audit", "run_id": "run-a", "status": "completed"}],  # no value logged
])
def test_an_audited_trial_not_better_or_not_finished_leaves_the_search_best(audited):
    assert final_choice(SEARCH_BEST, audited, "val/mse", "min") == (SEARCH_BEST, FINAL_FROM_SEARCH)


def test_max_mode_prefers_the_higher_value():
    key = "best/val_psnr"
    best = {"name": "s", "run_id": "run-s", "status": "completed", key: 27.1}
    lower = {"name": "lo-audit", "run_id": "run-lo", "status": "completed", key: 26.0}
    higher = {"name": "hi-audit", "run_id": "run-hi", "status": "early_stopped", key: 27.4}
    assert final_choice(best, [lower], "val/psnr", "max") == (best, FINAL_FROM_SEARCH)
    chosen, source = final_choice(best, [lower, higher], "val/psnr", "max")
    assert chosen is higher and source == FINAL_FROM_AUDIT
    assert final_note(chosen, source, best, "val/psnr").endswith("val/psnr 27.4: better than the search's best s at 27.1)")


def test_nothing_finished_means_nothing_to_train_and_an_audit_alone_is_enough():
    assert final_choice(None, [], "val/mse", "min") == (None, FINAL_FROM_SEARCH)
    assert final_choice(None, [row("a-audit", 0.1, status="pruned")], "val/mse", "min") == (None, FINAL_FROM_SEARCH)
    only = row("a-audit", 0.1)
    assert final_choice(None, [only], "val/mse", "min") == (only, FINAL_FROM_AUDIT)
    assert final_note(only, FINAL_FROM_AUDIT, None, "val/mse").endswith(": no trial of the search ran to its end)")
