import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_core import metrics
from sr_core.resize import bicubic_upscale, downscale


def _sk_ssim(p, t):
    return structural_similarity(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=0)


def _check_against_skimage(pred: torch.Tensor, target: torch.Tensor):
    clamped = pred.double().clamp(0, 1).numpy()
    tgt = target.double().numpy()
    sk_psnr = [peak_signal_noise_ratio(t, p, data_range=1.0) for p, t in zip(clamped, tgt)]
    sk_ssim = [_sk_ssim(p, t) for p, t in zip(clamped, tgt)]
    np.testing.assert_allclose(metrics.psnr(pred, target).numpy(), sk_psnr, atol=1e-5, rtol=0)
    np.testing.assert_allclose(metrics.ssim(pred, target).numpy(), sk_ssim, atol=1e-5, rtol=0)
    np.testing.assert_allclose(metrics.mse(pred, target).numpy(),
                               ((clamped - tgt) ** 2).mean(axis=(1, 2, 3)), atol=1e-12)


def test_random_images_match_skimage():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 64, 48, generator=g)
    # Noise that leaves [0,1], so the clamp-first rule is exercised too.
    pred = target + 0.15 * torch.randn(4, 3, 64, 48, generator=g)
    _check_against_skimage(pred.float(), target.float())


def test_real_photo_bicubic_matches_skimage():
    hr = torch.from_numpy(skdata.astronaut()[:256, :256]).permute(2, 0, 1)
    hr = hr.unfold(1, 128, 128).unfold(2, 128, 128).permute(1, 2, 0, 3, 4).reshape(-1, 3, 128, 128)
    target = hr.float() / 255
    pred = bicubic_upscale(downscale(hr).float() / 255)
    _check_against_skimage(pred, target)
    assert 20 < metrics.psnr(pred, target).mean() < 35  # a plausible 4x bicubic PSNR on a photo


def test_psnr_is_mean_of_per_image_not_pooled():
    target = torch.zeros(2, 3, 16, 16)
    pred = torch.stack([torch.full((3, 16, 16), 0.1), torch.full((3, 16, 16), 0.01)])
    per_image = metrics.psnr(pred, target)
    torch.testing.assert_close(per_image, torch.tensor([20.0, 40.0], dtype=torch.float64))
    pooled = 10 * torch.log10(1 / metrics.mse(pred, target).mean())
    assert per_image.mean() - pooled > 5  # the study's convention differs from pooled MSE


def test_identical_images_have_ssim_one_and_infinite_psnr():
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(metrics.psnr(x, x)).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 8))
