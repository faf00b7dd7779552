"""Random crops from full-size photos (sr_core.photos) and a trial that trains on them."""
import dataclasses

import numpy as np
import torch
from skimage import data as skdata

from _resume import killed_then_resumed

from sr_core.augment import apply_ops, make_generator
from sr_core.data import SRData
from sr_core.photos import Photos, crop_draws, crop_lr, cut_crops, from_images, photo_views
from sr_core.resize import _downscale_pil, downscale_with
from sr_core.train import TrialConfig, train_trial

FAST = TrialConfig(arch="residual", blocks=1, channels=8, lr=1e-3, eta_min=1e-5, epochs=3, batch_size=8, seed=1)


def _photos(sizes, seed=0) -> tuple[Photos, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    return from_images(images, [f"p{i}" for i in range(len(images))]), images


def test_every_crop_position_is_drawn_equally_often_and_none_falls_outside_its_photo():
    photos, _ = _photos([(130, 131), (128, 129), (128, 128)])  # 3x4 + 1x2 + 1 = 15 positions
    assert photos.positions.tolist() == [12, 2, 1] and len(photos) == 3
    photo, top, left, ops = crop_draws(make_generator(torch.device("cpu"), 0), photos, 15_000, augment=False)
    assert ops is None
    h, w = photos.sizes[photo, 0], photos.sizes[photo, 1]
    assert (top >= 0).all() and (left >= 0).all() and (top + 128 <= h).all() and (left + 128 <= w).all()
    counts = {}
    for key in zip(photo.tolist(), top.tolist(), left.tolist()):
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 15  # every position reached
    # uniform over positions: each count ~ Binomial(15000, 1/15), mean 1000, sd 31; 5 sd either side
    assert all(845 < c < 1155 for c in counts.values()), counts


def test_a_crop_is_the_photo_slice_turned_by_its_op_and_channel_order():
    photos, images = _photos([(200, 333), (517, 140)])
    photo, top, left, ops = crop_draws(make_generator(torch.device("cpu"), 3), photos, 64, True, rgb_permute=True)
    assert ops.min() >= 0 and ops.max() >= 8  # channel orders too (ops 8..47), not only dihedral ones
    got = cut_crops(photo_views(photos), photo.tolist(), top.tolist(), left.tolist(), ops, rgb_permute=True)
    plain = torch.stack([torch.from_numpy(images[p][y:y + 128, x:x + 128]).permute(2, 0, 1)
                         for p, y, x in zip(photo.tolist(), top.tolist(), left.tolist())])
    assert torch.equal(got, apply_ops(plain, ops, rgb_permute=True))


def test_crop_lr_mixes_the_three_kernels_and_pillows_twin_is_within_one_gray_level_of_pillow():
    hr = torch.from_numpy(skdata.astronaut()[:384, :512]).permute(2, 0, 1).unfold(1, 128, 128).unfold(2, 128, 128)
    hr = hr.permute(1, 2, 0, 3, 4).reshape(-1, 3, 128, 128).contiguous()  # 12 real 128x128 patches
    lr = crop_lr(hr)
    for j, kernel in enumerate(["sr-search", "pil", "opencv"] * 4):
        reference = downscale_with(hr[j:j + 1], kernel, on_device=True)[0]
        off = (lr[j].int() - reference.int()).abs()
        assert off.max().item() <= (1 if kernel == "pil" else 0) and off.sum().item() <= 3, (j, kernel)
    diff = (downscale_with(hr, "pil", on_device=True).int() - _downscale_pil(hr).int()).abs()
    assert diff.max().item() <= 1 and (diff > 0).float().mean().item() < 0.01


def _crop_data(tiny_data) -> SRData:
    photos = from_images([skdata.astronaut()[:300, :260], skdata.chelsea()[:200, :300]], ["astronaut", "chelsea"])
    return dataclasses.replace(tiny_data, train=photos)


def test_a_trial_trains_on_random_crops_and_an_epoch_may_hold_more_crops_than_the_photos_have_patches(tiny_data):
    data = _crop_data(tiny_data)
    assert len(data.train) == 2 * 2 + 1 * 2  # the fixed patches the photos hold: a default epoch
    result = train_trial(dataclasses.replace(FAST, epoch_samples=40), data)
    assert result.status == "completed" and len(result.history) == 3
    assert result.history[-1]["images_per_s"] > 0 and result.history[-1]["val/mse"] < result.history[0]["val/mse"]


def test_a_resumed_trial_draws_exactly_the_crops_it_would_have_drawn(tiny_data, tmp_path):
    data, config = _crop_data(tiny_data), dataclasses.replace(FAST, epochs=4, epoch_samples=16, rgb_permute=True)
    reference = train_trial(config, data, checkpoint_dir=tmp_path / "ref")
    resumed = killed_then_resumed(config, data, tmp_path / "run")
    drop = ("epoch_seconds", "images_per_s")
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed.history] == \
        [{k: v for k, v in h.items() if k not in drop} for h in reference.history]
    for k, v in reference.weights.items():
        assert torch.equal(resumed.weights[k], v), k
