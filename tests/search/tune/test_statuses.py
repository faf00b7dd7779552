"""search.tune.statuses: how a trial ended, decided once from Tune's last result."""
import pytest

from search.tune.statuses import closing_status
from sr_core.contract import ENDED, OPTUNA_STATE


@pytest.mark.parametrize("last,expected", [
    ({"final": True, "final_status": "diverged", "final_reason": "non-finite train MSE at epoch 2", "epoch": 2},
     ("diverged", "non-finite train MSE at epoch 2")),
    ({"final": True, "final_status": "completed", "epoch": 6}, ("completed", "")),
    ({"epoch": 3, "val/mse": 0.01}, ("pruned", "stopped by the scheduler at epoch 3")),  # stopped from outside
    ({"epoch": 6, "val/mse": 0.01}, ("completed", "")),  # stopped at its last epoch: it ran to the end
    (None, ("pruned", "stopped by the scheduler at epoch 0")),
])
def test_the_closing_report_decides_and_a_missing_one_means_the_scheduler_stopped_it(last, expected):
    assert closing_status(last, max_epochs=6) == expected


def test_every_ended_status_has_one_optuna_state():
    assert set(OPTUNA_STATE) == set(ENDED)
    assert {s for s, state in OPTUNA_STATE.items() if state == "COMPLETE"} == {"completed", "early_stopped"}
