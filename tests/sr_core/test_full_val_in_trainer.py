"""Full-size validation in the loop (sr_core.full_val): scored every N epochs and at the last, and the
trial's best epoch, best metrics and early stopping following a full/ objective."""
import dataclasses

import pytest
import torch
from skimage import data as skdata

from sr_core.contract import FULL_METRICS
from sr_core.full_val import FullImage, FullVal, bicubic, score
from sr_core.matlab_resize import matlab_downscale, mod_crop
from sr_core.models import build_model
from sr_core.train import TrialConfig, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=5,
                   batch_size=8, patience=10, seed=1)


def _image(name: str, photo, h: int, w: int) -> FullImage:
    hr = mod_crop(torch.from_numpy(photo[:h, :w]).permute(2, 0, 1).contiguous()).contiguous()
    return FullImage(name, hr, matlab_downscale(hr))


@pytest.fixture(scope="module")
def full_val() -> FullVal:
    """Two real photos cut to sizes that are neither multiples of 128 nor of 4 (mod-cropped to 4)."""
    return FullVal((_image("chelsea", skdata.chelsea(), 101, 147), _image("coffee", skdata.coffee(), 90, 133)),
                   every=2)


def test_full_metrics_are_logged_every_n_epochs_and_at_the_last(tiny_data, full_val):
    result = train_trial(FAST, tiny_data, full_val=full_val)
    scored = [h["epoch"] for h in result.history if "full/psnr_y" in h]
    assert scored == [2, 4, 5]
    assert all(set(FULL_METRICS) <= set(h) for h in result.history if h["epoch"] in scored)
    assert 15 < result.history[-1]["full/psnr_y"] < 40 and 0 < result.history[-1]["full/ssim_y"] < 1


def test_the_best_epoch_follows_a_full_objective_among_the_epochs_that_scored_it(tiny_data, full_val):
    result = train_trial(FAST, tiny_data, full_val=full_val, objective=("full/psnr_y", "max"))
    scored = [h for h in result.history if "full/psnr_y" in h]
    best = max(scored, key=lambda h: h["full/psnr_y"])
    assert result.best["epoch"] == best["epoch"]
    assert result.best["full/psnr_y"] == best["full/psnr_y"] and result.best["val/mse"] == best["val/mse"]
    assert len(result.best_images["full/psnr_y"]) == 2  # per image, for the paired bootstrap
    # The weights kept are that epoch's: scored again, they give the logged figure.
    model = build_model("residual", 1, 8)
    model.load_state_dict(result.weights)
    assert score(model, full_val)[0]["full/psnr_y"] == pytest.approx(best["full/psnr_y"], abs=1e-9)


def test_early_stopping_on_a_full_objective_is_decided_at_the_epochs_that_score_it(tiny_data, full_val):
    # patience 1 with lr so high that the scored figure cannot keep improving: every stop lands on a scored epoch
    config = dataclasses.replace(FAST, lr=5e-2, eta_min=5e-2, epochs=12, patience=1)
    result = train_trial(config, tiny_data, full_val=full_val, objective=("full/psnr_y", "max"))
    assert result.status == "early_stopped", [h.get("full/psnr_y") for h in result.history]
    assert result.epochs % 2 == 0 and "full/psnr_y" in result.history[-1]
    assert result.reason == "full/psnr_y did not improve for 1 epochs"


def test_a_full_objective_without_the_images_is_a_bug_named_at_once(tiny_data):
    with pytest.raises(ValueError, match="full_val"):
        train_trial(FAST, tiny_data, objective=("full/psnr_y", "max"))


def test_due_every_n_epochs_and_at_the_last():
    images = (FullImage("a", torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(3, 8, 8, dtype=torch.uint8)),)
    assert [e for e in range(1, 8) if FullVal(images, 3).due(e, 7)] == [3, 6, 7]
    with pytest.raises(ValueError, match="every"):
        FullVal(images, 0)


def test_the_bicubic_floor_is_scored_as_the_nets_are(tiny_data, full_val):
    floor, per_image = bicubic(full_val)
    assert set(floor) == set(FULL_METRICS) and len(per_image["full/psnr_y"]) == 2
    assert 20 < floor["full/psnr_y"] < 35
    # The residual net starts as exactly bicubic (zero-initialised last convs; its bicubic is torch's,
    # not MATLAB's, so only close): scored before any training, it is bicubic's figure within 0.2 dB.
    model = build_model("residual", 1, 8)
    assert score(model, full_val)[0]["full/psnr_y"] == pytest.approx(floor["full/psnr_y"], abs=0.2)


def test_a_net_that_does_not_declare_its_receptive_radius_is_scored_on_each_image_whole(full_val):
    """A user's arch (sr_core.archs) need not declare receptive_radius(): the full val then runs each
    image whole, as evaluate does, instead of failing the trial."""
    import math

    from torch import nn

    from sr_core.full_val import score_image
    from sr_core.infer import WHOLE_IMAGE, upscale_image
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.PixelShuffle(4)).eval()
    assert not hasattr(plain, "receptive_radius")
    figures, per_image = score(plain, full_val)
    whole = [upscale_image(plain, i.lr, tile=WHOLE_IMAGE, overlap=0) for i in full_val.images]
    assert per_image["full/psnr_y"] == pytest.approx([score_image(sr, i.hr)[0] for sr, i in zip(whole, full_val.images)])
    assert all(math.isfinite(v) for v in figures.values())
