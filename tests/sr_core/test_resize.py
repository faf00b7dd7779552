"""sr_core.resize: the x4 downscale kernels and bicubic upscaling."""
import numpy as np
import pytest
import torch
from PIL import Image

from _files import rgb
from sr_core.resize import LR_KERNELS, bicubic_upscale, downscale, downscale_with


@pytest.mark.parametrize("kind", ["smooth", "noise"])  # noise would alias without antialiasing
def test_downscale_matches_pil_antialiased_bicubic(kind):
    y, x = np.mgrid[0:256, 0:256]
    smooth = np.stack([128 + 100 * np.sin(x / 17), 128 + 100 * np.cos(y / 23), (x + y) / 2], -1)
    image = smooth.clip(0, 255).astype(np.uint8) if kind == "smooth" else rgb(256, 256)
    ours = downscale(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(image).resize((64, 64), Image.BICUBIC))
    assert ours.shape == (64, 64, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 2  # PIL rounds between its two passes


def test_downscale_keeps_constant_images_and_rejects_sizes_not_divisible_by_4():
    flat = torch.full((2, 3, 64, 96), 77, dtype=torch.uint8)
    assert torch.equal(downscale(flat), torch.full((2, 3, 16, 24), 77, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divisible by 4"):
        downscale(torch.zeros(3, 30, 32, dtype=torch.uint8))


def test_lr_kernels_agree_on_flat_images_and_the_opencv_one_aliases_fine_detail():
    flat = torch.full((1, 3, 64, 64), 90, dtype=torch.uint8)
    for kernel in LR_KERNELS:
        assert torch.equal(downscale_with(flat, kernel), torch.full((1, 3, 16, 16), 90, dtype=torch.uint8))
    # Vertical stripes finer than the LR grid (columns 1 and 2 of every 4 on): antialiased kernels
    # average them to mid-gray; OpenCV-style cubic samples between HR columns 4i+1 and 4i+2 without
    # antialiasing, sees only the bright ones, and aliases the pattern into a wrong, white, tone.
    stripes = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    stripes[..., 1::4] = stripes[..., 2::4] = 255
    lr = {k: downscale_with(stripes, k)[0, 0, 5, 2:-2].int() for k in LR_KERNELS}  # away from the borders
    assert lr["opencv"].tolist() == [255] * 12
    for kernel in ("sr-search", "pil"):
        assert (lr[kernel] - 128).abs().max() <= 4
    assert torch.equal(downscale_with(stripes, "sr-search"), downscale(stripes))


def test_downscale_with_an_unknown_kernel_names_the_choices():
    with pytest.raises(ValueError, match="unknown LR kernel 'lanczos'.*opencv"):
        downscale_with(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "lanczos")


def test_bicubic_upscale_is_4x_and_clamped_to_unit_range():
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    lr[:, :, ::2, ::2] = 0.0  # a checkerboard-ish image makes bicubic overshoot
    up = bicubic_upscale(lr)
    assert up.shape == (2, 3, 32, 32) and up.min() >= 0 and up.max() <= 1
    assert torch.allclose(bicubic_upscale(torch.full((1, 3, 4, 4), 0.5)), torch.full((1, 3, 16, 16), 0.5))
