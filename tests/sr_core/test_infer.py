import functools

import pytest
import torch
from skimage import data as skdata

from sr_core.infer import load_model, save_weights, tile_for, upscale, upscale_image
from sr_core.matlab_resize import matlab_downscale
from sr_core.models import build_model




def _perturbed(arch: str = "residual", blocks: int = 1, channels: int = 8) -> torch.nn.Module:
    """Non-zero random weights everywhere: the zero-init last convs would make the net plain bicubic,
    whose reach is far shorter than the body's."""
    torch.manual_seed(1)
    model = build_model(arch, blocks, channels)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model


def test_upscale_uint8_and_float_agree_and_stay_in_range():
    model = _perturbed()
    lr = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    out_u8 = upscale(model, lr, batch_size=2)
    out_f = upscale(model, lr.float() / 255)
    assert out_u8.shape == (3, 3, 128, 128)
    assert out_u8.min() >= 0 and out_u8.max() <= 1
    torch.testing.assert_close(out_u8, out_f)


def test_self_ensemble_averages_the_eight_dihedral_variants():
    model = _perturbed()
    lr = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        manual = []
        for flip in (False, True):
            for k in range(4):
                x = torch.flip(lr, dims=(-1,)) if flip else lr
                y = model(torch.rot90(x, k, dims=(-2, -1)))
                y = torch.rot90(y, -k, dims=(-2, -1))
                manual.append(torch.flip(y, dims=(-1,)) if flip else y)
        expected = torch.stack(manual).mean(0).clamp(0, 1)
    ensembled = upscale(model, lr, self_ensemble=True)
    torch.testing.assert_close(ensembled, expected)
    assert not torch.allclose(ensembled, upscale(model, lr))


def test_self_ensemble_is_exact_for_an_equivariant_model():
    """The untrained net is plain bicubic, which commutes with rot90/flip: ensembling changes nothing."""
    model = build_model("residual", 1, 8)
    lr = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(upscale(model, lr, self_ensemble=True), upscale(model, lr), atol=1e-5, rtol=0)


def test_saved_weights_rebuild_the_same_model(tmp_path):
    model = _perturbed()
    save_weights(tmp_path / "w.pt", "residual", 1, 8, model.state_dict())
    loaded = load_model(tmp_path / "w.pt")
    lr = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(upscale(loaded, lr), upscale(model, lr))


@functools.cache
def _chelsea_lr() -> torch.Tensor:
    """MATLAB-style LR of the full chelsea photo (300x451): uint8 [3,75,113], odd and non-square."""
    hr = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).contiguous()
    return matlab_downscale(hr)


@pytest.mark.parametrize("arch, lr_crop", [("residual", None), ("refiner", (41, 57))])
def test_tiled_output_equals_untiled_on_an_odd_non_square_photo(arch, lr_crop):
    model = _perturbed(arch, blocks=2)
    lr = _chelsea_lr() if lr_crop is None else _chelsea_lr()[:, :lr_crop[0], :lr_crop[1]]
    whole = upscale_image(model, lr, tile=max(lr.shape))
    tiled = upscale_image(model, lr, tile=16)  # overlap: the net's receptive radius
    assert whole.shape == tiled.shape == (3, 4 * lr.shape[1], 4 * lr.shape[2])
    assert (tiled - whole).abs().max() < 1e-5
    torch.testing.assert_close(whole, upscale(model, lr[None])[0])  # one tile is the batch path
    # The overlap is what makes it exact: without context the tile edges show.
    assert (upscale_image(model, lr, tile=16, overlap=0) - whole).abs().max() > 1e-3


def test_self_ensemble_of_a_non_square_image_tiled_is_the_mean_of_the_eight_variants():
    """rot90 swaps the sides of a 41x57 image; each variant must be mapped back before averaging."""
    model = _perturbed(blocks=2)
    lr = _chelsea_lr()[:, :41, :57]
    x = lr[None].float() / 255
    with torch.no_grad():
        variants = []
        for flip in (False, True):
            for k in range(4):
                y = model(torch.rot90(torch.flip(x, dims=(-1,)) if flip else x, k, dims=(-2, -1)))
                y = torch.rot90(y, -k, dims=(-2, -1))
                variants.append(torch.flip(y, dims=(-1,)) if flip else y)
    expected = torch.stack(variants).mean(0).clamp(0, 1)[0]
    ensembled = upscale_image(model, lr, tile=12, self_ensemble=True)
    assert ensembled.shape == expected.shape == (3, 164, 228)
    assert (ensembled - expected).abs().max() < 1e-5
    assert (ensembled - upscale_image(model, lr, tile=12)).abs().max() > 1e-3


def test_uint8_and_float_images_give_the_same_output_in_range():
    model = _perturbed(blocks=2)
    lr = _chelsea_lr()[:, :20, :31]
    out = upscale_image(model, lr)
    torch.testing.assert_close(out, upscale_image(model, lr.float() / 255))
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1


def test_default_tile_is_the_largest_that_fits_the_activation_bound():
    model = build_model("residual", blocks=2, channels=16)
    overlap = model.receptive_radius()
    bound = 64 * 2 ** 20
    tile = tile_for(model, overlap, bound)
    per_pixel = 6 * model.widest_activation() * 4  # float32, the peak budgeted at 6 widest tensors
    assert (tile + 2 * overlap) ** 2 * per_pixel <= bound < (tile + 1 + 2 * overlap) ** 2 * per_pixel
    assert tile_for(build_model("residual", 2, 32), overlap, bound) < tile  # wider nets tile finer
    with pytest.raises(ValueError, match="activation_bytes"):
        tile_for(model, overlap, activation_bytes=1000)


@pytest.mark.parametrize("kwargs, match", [
    ({"tile": 0}, "tile=0"), ({"tile": 8.0}, "tile=8.0"), ({"overlap": -1}, "overlap=-1")])
def test_bad_tiling_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        upscale_image(build_model("residual", 1, 4), torch.zeros(3, 8, 8), **kwargs)


def test_upscale_image_wants_one_rgb_image():
    with pytest.raises(ValueError, match="replicate gray"):
        upscale_image(build_model("residual", 1, 4), torch.zeros(1, 8, 8))
