"""sr_core.generalise: PSNR gain over bicubic on photos from outside scikit-image, per LR kernel."""
import torch

from sr_core import patches
from sr_core.generalise import PHOTOS, format_table, generalisation, main, outside_patches
from sr_core.infer import save_weights
from sr_core.models import build_model
from sr_core.resize import LR_KERNELS


def test_outside_patches_are_textured_non_overlapping_cuts_of_the_three_photos():
    hr, names = outside_patches()
    assert hr.dtype == torch.uint8 and hr.shape == (len(names), 3, 128, 128) and len(names) >= 30
    parsed = [patches.parse_patch_name(n) for n in names]
    assert {photo for photo, _, _ in parsed} == set(PHOTOS)
    assert all(row % 128 == 0 and col % 128 == 0 for _, row, col in parsed)  # a tiling: no overlap
    assert len(set(names)) == len(names)
    gray = hr.float().mean(dim=1).flatten(1).std(dim=1)
    assert gray.min() >= patches.FLAT_STD - 0.5  # flat patches dropped (luma vs plain mean: close)


def test_an_untrained_residual_net_gains_nothing_and_each_kernel_makes_its_own_lr(tmp_path):
    torch.manual_seed(0)
    model = build_model("residual", 1, 8)  # zero-initialised last conv: output == bicubic exactly
    hr = outside_patches()[0][:12]
    scores = generalisation(model, hr)
    assert list(scores) == list(LR_KERNELS)
    for score in scores.values():
        assert score.images == 12 and abs(score.gain_db) < 1e-6 and 15 < score.bicubic_psnr < 45
    # Different LR: the non-antialiased (OpenCV-style) kernel aliases, so bicubic scores differently.
    assert abs(scores["opencv"].bicubic_psnr - scores["sr-search"].bicubic_psnr) > 0.1
    assert scores["pil"].bicubic_psnr != scores["sr-search"].bicubic_psnr
    # A weights file gives the same figures as the model it holds.
    path = tmp_path / "w.pt"
    save_weights(path, "residual", 1, 8, model.state_dict())
    assert generalisation(path, hr) == scores
    assert "opencv" in format_table(scores)


def test_a_model_that_is_not_bicubic_shows_a_gain_with_its_sign():
    torch.manual_seed(0)
    model = build_model("residual", 1, 8)
    with torch.no_grad():
        model.tail.bias.fill_(0.05)  # brighten every pixel: worse than bicubic
    hr = outside_patches()[0][:6]
    scores = generalisation(model, hr, kernels=("sr-search",))
    assert list(scores) == ["sr-search"] and scores["sr-search"].gain_db < -0.5


def test_main_prints_a_table_and_json(tmp_path, capsys):
    path = tmp_path / "w.pt"
    save_weights(path, "residual", 0, 4, build_model("residual", 0, 4).state_dict())
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "gain dB" in out and '"opencv"' in out
