"""The comparison crops: the rule that picks them (textured, across photos, deterministic) and what a
model's prediction of them scores, checked against scikit-image."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from sr_core.crops import (bicubic_crops, choose_crops, crop_key, crop_metrics, hr_crops, manifest, render_crops,
                           scene_of)
from sr_core.data import SRPairs, load_dataset
from sr_core.infer import save_weights, upscale
from sr_core.models import build_model
from sr_core.patches import patch_name
from sr_core.pixels import to_uint8
from sr_core.resize import downscale


def _patch(amplitude: float, seed: int) -> torch.Tensor:
    """A 128x128 HR patch: mid-gray plus uniform noise of `amplitude` gray levels (0: flat)."""
    noise = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(seed)) - 0.5
    return (128 + amplitude * noise).round().clamp(0, 255).to(torch.uint8)


# photo -> [(row, col, texture amplitude)]; flat patches have amplitude 0.
PHOTOS = {
    "alpha": [(0, 0, 200), (0, 64, 190), (0, 256, 180), (0, 512, 0), (128, 0, 0)],
    "beta": [(0, 0, 120), (0, 128, 110), (0, 384, 0)],
    "cam_left": [(0, 0, 160), (0, 256, 60)],
    "cam_right": [(0, 0, 150), (0, 512, 0)],
    "flat": [(0, 0, 0), (0, 128, 0), (0, 256, 0), (0, 384, 0)],
}


def _val(order=None) -> SRPairs:
    items = [(patch_name(photo, r, c), _patch(a, seed)) for seed, (photo, r, c, a)
             in enumerate((photo, *cut) for photo, cuts in PHOTOS.items() for cut in cuts)]
    items = [items[i] for i in order] if order is not None else items
    hr = torch.stack([patch for _, patch in items])
    return SRPairs(lr=downscale(hr), hr=hr, names=tuple(n for n, _ in items))


def test_crops_take_every_scene_once_before_any_twice_and_never_a_flat_patch():
    crops = choose_crops(_val(), count=20)
    # Round 1: the hardest patch of each scene, scenes by that score; round 2: the next per scene
    # that does not overlap (alpha's c0064 overlaps its c0000, cam_right's c0000 cam_left's c0000).
    assert crops.names == ("alpha_r0000_c0000", "cam_left_r0000_c0000", "beta_r0000_c0000",
                           "alpha_r0000_c0256", "beta_r0000_c0128", "cam_left_r0000_c0256")
    assert crops.photos == ("alpha", "cam_left", "beta", "alpha", "beta", "cam_left")
    flat = {patch_name(photo, r, c) for photo, cuts in PHOTOS.items() for r, c, a in cuts if a == 0}
    assert set(crops.names) & flat == set()
    assert min(crops.bicubic_mse) > 0  # every chosen patch has something for SR to do


def test_count_and_per_photo_bound_the_choice():
    assert len(choose_crops(_val(), count=2)) == 2
    assert choose_crops(_val(), count=2).names == ("alpha_r0000_c0000", "cam_left_r0000_c0000")
    one_each = choose_crops(_val(), count=20, per_photo=1)
    assert [scene_of(p) for p in one_each.photos] == ["alpha", "cam", "beta"]
    with pytest.raises(ValueError, match="count=0"):
        choose_crops(_val(), count=0)


def test_the_choice_does_not_depend_on_the_order_of_the_val_set():
    first = choose_crops(_val())
    shuffled = choose_crops(_val(order=np.random.default_rng(3).permutation(16)))
    assert shuffled.names == first.names
    assert torch.equal(shuffled.hr, first.hr) and torch.equal(shuffled.lr, first.lr)


def test_stereo_views_are_one_scene():
    assert scene_of("motorcycle_left") == scene_of("motorcycle_right") == "motorcycle"
    assert scene_of("astronaut") == "astronaut"


def test_keys_are_safe_in_mlflow_names_and_unique():
    assert crop_key("a photo/1", set()) == "a_photo_1"
    assert crop_key("a photo/1", {"a_photo_1"}) == "a_photo_1-2"


def test_on_the_embedded_photos_crops_span_photos_and_skip_the_smooth_retina():
    val = load_dataset("embedded", progress=lambda line: None).val
    crops = choose_crops(val)
    assert len(crops) == 10
    assert len({scene_of(p) for p in crops.photos}) >= 5
    assert max(Counter(scene_of(p) for p in crops.photos).values()) == 2  # at most two per scene
    assert "retina" not in crops.photos
    bicubic_psnr = [e["bicubic_psnr"] for e in manifest(crops)["crops"]]
    assert max(bicubic_psnr) < 30  # all textured: bicubic falls short on every one of them


def test_crop_psnrs_are_those_of_the_uint8_images_shown_as_scikit_image_computes_them():
    crops = choose_crops(_val())
    images = bicubic_crops(crops)
    scores = crop_metrics(images, crops)
    for image, hr, score in zip(images, hr_crops(crops), scores):
        assert score["psnr"] == pytest.approx(peak_signal_noise_ratio(hr, image, data_range=255), abs=1e-5)
        assert 0 < score["psnr_y"] < 60
    assert [e["bicubic_psnr"] for e in manifest(crops)["crops"]] == [s["psnr"] for s in scores]
    assert math.isinf(crop_metrics(hr_crops(crops), crops)[0]["psnr"])


def test_a_model_its_weights_file_and_their_content_render_the_same_pixels(tmp_path):
    crops = choose_crops(_val(), count=3)
    torch.manual_seed(0)
    model = build_model("residual", 1, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # a model whose output differs from bicubic's
    save_weights(tmp_path / "best.pt", "residual", 1, 8, model.state_dict())
    expected = [img.permute(1, 2, 0).numpy() for img in to_uint8(upscale(model, crops.lr))]
    content = torch.load(tmp_path / "best.pt", weights_only=True)
    for given in (model, tmp_path / "best.pt", str(tmp_path / "best.pt"), content):
        rendered = render_crops(given, crops)
        assert [r.shape for r in rendered] == [(128, 128, 3)] * 3 and rendered[0].dtype == np.uint8
        assert all(np.array_equal(a, b) for a, b in zip(rendered, expected))
    assert not np.array_equal(expected[0], bicubic_crops(crops)[0])
