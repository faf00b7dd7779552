import dataclasses

from _resume import killed_then_resumed

import pytest
import torch

from sr_core.pixels import to_float
from sr_core.resize import bicubic_upscale
from sr_core import metrics
from sr_core.train import CHECKPOINT_FILE, TrialConfig, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=3,
                   batch_size=8, patience=5, seed=1)
HISTORY_KEYS = {"epoch", "train/mse", "val/mse", "val/psnr", "val/ssim", "val/psnr_y", "val/ssim_y", "lr",
                "epoch_seconds", "images_per_s"}
BEST_KEYS = {"epoch", "train/mse", "val/mse", "val/psnr", "val/ssim", "val/psnr_y", "val/ssim_y"}


def _metrics_only(history):
    """History without the wall-clock fields, which legitimately differ run to run."""
    return [{k: v for k, v in h.items() if k not in ("epoch_seconds", "images_per_s")} for h in history]


def test_result_carries_history_best_and_weights(tiny_data):
    result = train_trial(FAST, tiny_data)
    assert result.status == "completed"
    assert result.epochs == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all(set(h) == HISTORY_KEYS for h in result.history)
    best_h = min(result.history, key=lambda h: h["val/mse"])
    assert result.best == {k: best_h[k] for k in BEST_KEYS}  # the paper metrics come along
    assert result.seconds > 0 and result.weights is not None
    assert set(result.weights) == set(
        __import__("sr_core.models", fromlist=["x"]).build_model("residual", 1, 8).state_dict())


def test_same_seed_twice_in_one_process_is_identical_and_inputs_untouched(tiny_data):
    lr_before, hr_before = tiny_data.train.lr.clone(), tiny_data.train.hr.clone()
    rng_before = torch.get_rng_state()
    a, b = train_trial(FAST, tiny_data), train_trial(FAST, tiny_data)
    assert _metrics_only(a.history) == _metrics_only(b.history)
    assert torch.equal(tiny_data.train.lr, lr_before) and torch.equal(tiny_data.train.hr, hr_before)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's global RNG is not consumed
    c = train_trial(dataclasses.replace(FAST, seed=2), tiny_data)
    assert _metrics_only(c.history) != _metrics_only(a.history)


def test_resumed_trial_matches_an_uninterrupted_one(tiny_data, tmp_path):
    config = dataclasses.replace(FAST, epochs=4)
    reference = train_trial(config, tiny_data, checkpoint_dir=tmp_path / "ref")

    seen = []
    resumed = killed_then_resumed(config, tiny_data, tmp_path / "run", lambda r: seen.append(r["epoch"]) or True)
    assert seen == [3, 4]  # only the remaining epochs ran
    assert resumed.status == "completed"
    assert _metrics_only(resumed.history) == _metrics_only(reference.history)
    for k, v in reference.weights.items():
        assert torch.equal(resumed.weights[k], v), k


def test_resume_of_a_finished_trial_runs_nothing(tiny_data, tmp_path):
    done = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path)
    again = train_trial(FAST, tiny_data, checkpoint_dir=tmp_path,
                        on_epoch=lambda r: pytest.fail("no epoch should run"))
    assert again.status == "completed" and again.history == done.history


def test_checkpoint_of_another_config_is_refused(tiny_data, tmp_path):
    train_trial(dataclasses.replace(FAST, epochs=1), tiny_data, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_FILE).exists()
    with pytest.raises(ValueError, match="another config"):
        train_trial(dataclasses.replace(FAST, epochs=1, channels=4), tiny_data, checkpoint_dir=tmp_path)


def test_falsy_on_epoch_prunes(tiny_data):
    result = train_trial(FAST, tiny_data, on_epoch=lambda report: None)
    assert result.status == "pruned" and result.epochs == 1


def test_diverging_lr_ends_as_diverged_without_raising(tiny_data):
    config = dataclasses.replace(FAST, lr=10.0, eta_min=0.0, grad_clip=1e6, epochs=3)
    result = train_trial(dataclasses.replace(config, arch="residual", blocks=2, channels=16), tiny_data)
    assert result.status == "diverged"
    assert result.epochs < 3


def test_early_stopping_on_val_mse(tiny_data):
    # lr 1e-30 moves no weight by a representable amount: val mse is flat, so with patience 1
    # the trial stops after the first epoch that fails to improve (epoch 2).
    config = dataclasses.replace(FAST, lr=1e-30, eta_min=0.0, epochs=6, patience=1)
    result = train_trial(config, tiny_data)
    assert result.status == "early_stopped"
    assert result.epochs == 2 and result.best["epoch"] == 1


@pytest.mark.parametrize("arch", ["residual", "refiner"])
def test_training_learns_beyond_bicubic(tiny_data, arch):
    """The nets start as exactly bicubic; a few epochs must fit the photos better than bicubic."""
    seen = dataclasses.replace(tiny_data, val=tiny_data.train)  # evaluate on the images it trains on
    config = dataclasses.replace(FAST, arch=arch, epochs=6, batch_size=4, lr=1e-3, eta_min=1e-5)
    result = train_trial(config, seen)
    bicubic = metrics.mse(bicubic_upscale(to_float(seen.val.lr)), to_float(seen.val.hr)).mean().item()
    assert result.best["val/mse"] < bicubic
    assert result.history[-1]["val/mse"] < result.history[0]["val/mse"]


def test_epoch_samples_limits_an_epoch(tiny_data, monkeypatch):
    """epoch_samples=8 with batch 8 is one optimisation step per epoch (full set: 24/8 = 3)."""
    import sr_core.train as train_mod
    calls = []
    real = train_mod.augment_batch
    monkeypatch.setattr(train_mod, "augment_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    train_trial(dataclasses.replace(FAST, epochs=2, epoch_samples=8), tiny_data)
    assert len(calls) == 2
    calls.clear()
    train_trial(dataclasses.replace(FAST, epochs=2), tiny_data)
    assert len(calls) == 6
