"""The training losses against their references, and a trial trained on each."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sr_core.errors import ConfigError
from sr_core.losses import CHARBONNIER_EPS, LOSSES, charbonnier, loss_fn
from sr_core.train import TrialConfig, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=2, batch_size=8, seed=1)


def _pair():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 16, 16, generator=gen), torch.rand(4, 3, 16, 16, generator=gen)


def test_each_loss_equals_its_reference_written_out_in_numpy():
    pred, target = _pair()
    d = (pred - target).double().numpy()
    reference = {"mse": np.mean(d ** 2), "l1": np.mean(np.abs(d)), "charbonnier": np.mean(np.sqrt(d ** 2 + 1e-12))}
    assert set(LOSSES) == set(reference)
    for name, value in reference.items():
        assert loss_fn(name)(pred, target).item() == pytest.approx(value, rel=1e-5), name


def test_charbonnier_is_l1_within_a_micro_unit_yet_has_a_finite_gradient_where_l1_has_none():
    pred, target = _pair()
    assert abs(charbonnier(pred, target).item() - F.l1_loss(pred, target).item()) < 1e-6
    same = target.clone().requires_grad_(True)  # prediction == target: |d| has no derivative at 0
    charbonnier(same, target).backward()
    assert torch.isfinite(same.grad).all() and same.grad.abs().max().item() == 0.0
    assert CHARBONNIER_EPS == 1e-12  # BasicSR's CharbonnierLoss eps, the value the docs cite


def test_an_unknown_loss_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        loss_fn("l2")
    with pytest.raises(ConfigError, match="loss must be one of"):
        TrialConfig(loss="l2")


def test_a_trial_trains_on_each_loss_and_still_reports_train_mse(tiny_data):
    results = {name: train_trial(dataclasses.replace(FAST, loss=name), tiny_data) for name in LOSSES}
    assert all(r.status == "completed" for r in results.values())
    # one seed, one init, one data order: only the loss differs, so the weights (and MSEs) do too
    assert len({r.history[-1]["train/mse"] for r in results.values()}) == 3
    for name, result in results.items():
        assert all(0 < h["train/mse"] < 0.1 for h in result.history), name  # MSE of [0, 1] pixels, not L1
    # the names of MSE trials are what they were; the others carry their loss
    assert FAST.run_name.endswith("_eta1e-05") and dataclasses.replace(FAST, loss="l1").run_name.endswith("_l1")
