"""sr_core.matlab_resize against two independent implementations that claim MATLAB parity
(bicubic-pytorch and resize-right, test-only dependencies), on scikit-image photos at full size.

Run as a script to print how far Pillow's and torch's bicubic are from it (the module docstring's
figures): ``PYTHONPATH=. python tests/sr_core/test_matlab_resize.py``.
"""
import functools
import math

import numpy as np
import pytest
import torch
from bicubic_pytorch import core as bicubic_pytorch
from PIL import Image
from resize_right import interp_methods, resize_right
from skimage import data as skdata

from sr_core.matlab_resize import matlab_downscale, matlab_downscale_float, matlab_upscale, mod_crop
from sr_core.resize import downscale

# Full size; chelsea (300x451), rocket (427x640) and retina (1411x1411) are not multiples of 4.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "camera", "retina")


@functools.cache
def _photo(name: str) -> torch.Tensor:
    """uint8 [C,H,W] at full size; camera is gray, [1,H,W]."""
    img = torch.from_numpy(getattr(skdata, name)())
    return img.permute(2, 0, 1).contiguous() if img.dim() == 3 else img[None].contiguous()


def _matlab_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's uint8() of a double: saturate, round half away from zero."""
    return torch.floor(x.clamp(0, 255) + 0.5)


def _bicubic_pytorch_pass_by_pass(img: torch.Tensor, scale: float = 0.25) -> torch.Tensor:
    """bicubic-pytorch's 1-D resizes in float64, rows then columns, each rounded to uint8 as MATLAB
    does for a uint8 image (its own imresize rounds once, at the end, in float32)."""
    x = img.double()[:, None]  # [C,1,H,W]: its layout
    h, w = x.shape[-2:]
    x = _matlab_uint8(bicubic_pytorch.resize_1d(x, -2, size=math.ceil(h * scale), scale=scale))
    x = _matlab_uint8(bicubic_pytorch.resize_1d(x, -1, size=math.ceil(w * scale), scale=scale))
    return x[:, 0].to(torch.uint8)


@pytest.mark.parametrize("name", PHOTOS)
def test_uint8_output_equals_bicubic_pytorch_to_the_gray_level(name):
    img = _photo(name)
    ours = matlab_downscale(img)
    assert ours.dtype == torch.uint8
    assert ours.shape[-2:] == (math.ceil(img.shape[-2] / 4), math.ceil(img.shape[-1] / 4))  # MATLAB's ceil
    assert torch.equal(ours, _bicubic_pytorch_pass_by_pass(img))  # tolerance: 0 gray levels


@pytest.mark.parametrize("name", PHOTOS)
def test_float_output_matches_bicubic_pytorch_imresize(name):
    """Before rounding, on 0..255 floats: within 1e-3 gray levels (bicubic-pytorch computes in float32;
    measured up to 8e-5 here)."""
    img = _photo(name).double()
    theirs = bicubic_pytorch.imresize(img[None], scale=0.25)[0].double()
    ours = matlab_downscale_float(img)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_float_output_equals_resize_right_where_the_size_divides(name):
    """resize-right with MATLAB's symmetric padding, in float64: equal to rounding (within 1e-9 gray
    levels). Where the size does not divide by 4 it aligns the image centres, where MATLAB aligns the
    corners, so it is a reference only for multiples of 4."""
    img = _photo(name).double()
    theirs = resize_right.resize(img.numpy(), scale_factors=[1, 0.25, 0.25],
                                 interp_method=interp_methods.cubic, pad_mode="symmetric")
    assert np.abs(matlab_downscale_float(img).numpy() - theirs).max() < 1e-9


@pytest.mark.parametrize("name", ["chelsea", "camera", "coffee"])
def test_upscaling_the_lr_equals_bicubic_pytorch_to_the_gray_level(name):
    """The bicubic baseline of a benchmark: MATLAB's imresize(lr, 4) of its LR (odd LR sides included:
    chelsea's is 75x112, coffee's 100x150)."""
    lr = matlab_downscale(mod_crop(_photo(name)).contiguous())
    ours = matlab_upscale(lr)
    assert ours.dtype == torch.uint8 and ours.shape[-2:] == (4 * lr.shape[-2], 4 * lr.shape[-1])
    assert torch.equal(ours, _bicubic_pytorch_pass_by_pass(lr, scale=4.0))  # tolerance: 0 gray levels


def test_rounding_each_pass_is_what_makes_uint8_differ_from_rounding_once():
    """MATLAB keeps a uint8 image uint8 between its row and column passes; rounding only the float
    result differs by a gray level in about 1 LR pixel in 10 (and more where the first pass saturates)."""
    img = _photo("astronaut")
    once = _matlab_uint8(matlab_downscale_float(img.double()))
    differs = (matlab_downscale(img).double() - once).abs()
    assert 0.02 < (differs > 0).double().mean() < 0.3


def test_a_batch_is_resized_image_by_image_and_flat_stays_flat():
    batch = torch.stack([_photo("astronaut")[:, :203, :150], _photo("coffee")[:, :203, :150]])
    out = matlab_downscale(batch)
    assert out.shape == (2, 3, 51, 38)
    assert torch.equal(out[1], matlab_downscale(batch[1]))
    flat = torch.full((3, 37, 41), 200, dtype=torch.uint8)  # weights sum to 1, mirrored edges too
    assert torch.equal(matlab_downscale(flat), torch.full((3, 10, 11), 200, dtype=torch.uint8))


def test_mod_crop_cuts_bottom_and_right_to_a_multiple_of_the_scale():
    img = _photo("chelsea")  # 300x451
    cropped = mod_crop(img)
    assert cropped.shape == (3, 300, 448)
    assert torch.equal(cropped, img[:, :300, :448])
    assert mod_crop(img, scale=3).shape == (3, 300, 450)
    assert matlab_downscale(cropped).shape == (3, 75, 112)  # exactly HR/4 once mod-cropped


@pytest.mark.parametrize("call, match", [
    (lambda: matlab_downscale(torch.rand(3, 16, 16)), "uint8"),
    (lambda: matlab_downscale(torch.zeros(16, 16, dtype=torch.uint8)), r"\[C,H,W\]"),
    (lambda: matlab_downscale(torch.zeros(3, 16, 16, dtype=torch.uint8), scale=0), "scale=0"),
    (lambda: matlab_downscale_float(torch.zeros(3, 16, 16, dtype=torch.uint8)), "float"),
    (lambda: mod_crop(torch.zeros(3, 16, 16), scale=2.0), "scale=2.0"),
    (lambda: mod_crop(torch.zeros(3, 3, 16), scale=4), "3x16"),
])
def test_bad_arguments_are_value_errors_that_name_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _pillow_bicubic(hr: torch.Tensor) -> torch.Tensor:
    img = Image.fromarray(hr.permute(1, 2, 0).numpy())
    small = img.resize((img.width // 4, img.height // 4), Image.BICUBIC)
    return torch.from_numpy(np.array(small)).permute(2, 0, 1)


def _distances() -> dict[str, dict[str, float]]:
    """Max and mean absolute gray-level difference and PSNR (pooled over every pixel of the mod-cropped
    photos, gray replicated to RGB) of Pillow's and sr_core.resize.downscale's x4 LR from MATLAB's."""
    diffs: dict[str, list[torch.Tensor]] = {"pillow": [], "sr_core.resize.downscale": []}
    for name in PHOTOS:
        hr = mod_crop(_photo(name).expand(3, -1, -1)).contiguous()
        reference = matlab_downscale(hr).double()
        diffs["pillow"].append((_pillow_bicubic(hr).double() - reference).flatten())
        diffs["sr_core.resize.downscale"].append((downscale(hr).double() - reference).flatten())
    out = {}
    for kernel, parts in diffs.items():
        d = torch.cat(parts)
        out[kernel] = {"max": d.abs().max().item(), "mean": d.abs().mean().item(),
                       "psnr_db": 10 * math.log10(255 ** 2 / d.pow(2).mean().item())}
    return out


def test_pillow_and_torch_bicubic_are_near_matlab_but_not_it():
    """Both use a = -0.5 with antialiasing too; they differ at the borders (they renormalise the
    truncated kernel where MATLAB mirrors) and in rounding, by a fraction of a gray level on average."""
    for kernel, d in _distances().items():
        assert d["max"] >= 1, kernel  # not MATLAB's LR: a benchmark needs matlab_downscale
        assert d["mean"] < 0.5 and d["psnr_db"] > 45, (kernel, d)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for kernel, d in _distances().items():
        print(f"{kernel:>22}: max {d['max']:.0f}, mean {d['mean']:.3f} gray levels, PSNR {d['psnr_db']:.1f} dB")
