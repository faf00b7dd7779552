"""How a trial ends under faults: injected through the trainer's own test hook, handled by the real paths."""
import dataclasses
import json

import pytest
import torch

from sr_core.data import SRData, SRPairs
from sr_core.faults import parse_fault
from sr_core.train import BEST_FILE, CHECKPOINT_FILE, ENDED_FILE, TrialConfig, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=3,
                   batch_size=8, patience=5, seed=1)


@pytest.mark.parametrize("fault,epochs_done", [("oom@2", 1), ("oom:eval@1", 0), ("oom:to_device", 0)])
def test_out_of_memory_anywhere_ends_the_trial_as_oom_with_a_reason(tiny_data, fault, epochs_done):
    result = train_trial(dataclasses.replace(FAST, fault=fault), tiny_data)
    assert result.status == "oom"
    assert "out of memory" in result.reason and "simulated" in result.reason
    assert result.epochs == epochs_done
    assert (result.weights is not None) == (epochs_done > 0)  # the best epoch so far is kept


def test_nan_loss_ends_the_trial_as_diverged_and_keeps_the_good_epochs(tiny_data):
    result = train_trial(dataclasses.replace(FAST, fault="nan@2"), tiny_data)
    assert result.status == "diverged" and result.reason == "non-finite train MSE at epoch 2"
    assert [h["epoch"] for h in result.history] == [1] and result.best["epoch"] == 1


def test_an_exception_inside_the_trial_propagates(tiny_data):
    with pytest.raises(RuntimeError, match="injected fault 'raise@2'"):
        train_trial(dataclasses.replace(FAST, fault="raise@2"), tiny_data)


def test_a_perfect_image_psnr_of_inf_is_not_a_divergence():
    black = torch.zeros((8, 3, 128, 128), dtype=torch.uint8)
    pairs = SRPairs(torch.zeros((8, 3, 32, 32), dtype=torch.uint8), black, tuple(f"g{i}" for i in range(8)))
    flat = SRData(train=pairs, val=pairs, test=None, source="test")
    # lr 1e-30 moves no weight: the net stays exactly bicubic, which reproduces a black image exactly.
    result = train_trial(dataclasses.replace(FAST, epochs=2, lr=1e-30, eta_min=0.0), flat)
    assert result.status == "completed", result.reason
    assert result.history[0]["val/psnr"] == float("inf") and result.history[0]["val/mse"] == 0.0


@pytest.mark.parametrize("fault,status", [("", "completed"), ("nan@2", "diverged"), ("oom@2", "oom")])
def test_an_ended_trial_is_not_run_again_on_resume(tiny_data, tmp_path, fault, status):
    config = dataclasses.replace(FAST, fault=fault)
    first = train_trial(config, tiny_data, checkpoint_dir=tmp_path)
    assert first.status == status
    assert json.loads((tmp_path / ENDED_FILE).read_text())["status"] == status
    again = train_trial(config, tiny_data, checkpoint_dir=tmp_path,
                        on_epoch=lambda r: pytest.fail("no epoch may run again"))
    assert (again.status, again.reason, again.history) == (first.status, first.reason, first.history)


def test_a_pruned_trial_is_recorded_as_ended(tiny_data, tmp_path):
    first = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path, on_epoch=lambda r: False)
    assert first.status == "pruned" and first.epochs == 1
    again = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path, on_epoch=lambda r: pytest.fail("ran"))
    assert again.status == "pruned" and again.epochs == 1


def test_checkpoints_load_with_weights_only(tiny_data, tmp_path):
    train_trial(dataclasses.replace(FAST, epochs=1), tiny_data, checkpoint_dir=tmp_path)
    for name in (CHECKPOINT_FILE, BEST_FILE):
        assert torch.load(tmp_path / name, map_location="cpu", weights_only=True)
    assert not list(tmp_path.glob(".*.tmp"))  # every write was atomic and finished


@pytest.mark.parametrize("spec", ["boom@1", "oom:disk@1", "nan:eval@1", "oom:to_device@2", "raise", "nan@x"])
def test_a_malformed_fault_spec_names_the_field(spec):
    with pytest.raises(ValueError, match="fault"):
        parse_fault(spec)
    with pytest.raises(ValueError, match="fault"):
        dataclasses.replace(FAST, fault=spec)
