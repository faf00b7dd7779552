import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.color import rgb2ycbcr
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


# --- Paper metrics: Y of YCbCr, border crop (checked against scikit-image's rgb2ycbcr) ---

def _photo(name: str, rows: int, cols: int, top: int = 0) -> torch.Tensor:
    """A crop of a scikit-image photo as float [1,3,H,W] in [0,1]; gray photos replicated to RGB."""
    img = getattr(skdata, name)()[top:top + rows, :cols]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255


def _bicubic_round_trip(hr: torch.Tensor) -> torch.Tensor:
    """A degraded prediction at any size: x4 down, then back up; bicubic overshoots out of [0,1]."""
    lr = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True)
    return F.interpolate(lr, size=hr.shape[-2:], mode="bicubic")


def _sk_y(img: torch.Tensor) -> np.ndarray:
    """scikit-image's BT.601 luma, in [16, 235], of one [3,H,W] image in [0,1]."""
    return rgb2ycbcr(img.permute(1, 2, 0).numpy())[..., 0]


def _sk_y_metrics(pred: torch.Tensor, target: torch.Tensor, crop: int) -> tuple[float, float]:
    h, w = target.shape[-2:]
    yp = _sk_y(pred.clamp(0, 1))[crop:h - crop, crop:w - crop]
    yt = _sk_y(target)[crop:h - crop, crop:w - crop]
    return (peak_signal_noise_ratio(yt, yp, data_range=255),
            structural_similarity(yt, yp, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255))


@pytest.mark.parametrize("name, rows, cols, top", [
    ("astronaut", 160, 160, 0), ("coffee", 131, 203, 0), ("chelsea", 300, 451, 0), ("camera", 97, 301, 150)])
@pytest.mark.parametrize("crop", [4, 0])
def test_y_channel_metrics_match_skimage_on_photos(name, rows, cols, top, crop):
    """Odd sizes, a full-size photo (chelsea 300x451) and a gray one replicated to RGB (camera)."""
    target = _photo(name, rows, cols, top)
    pred = _bicubic_round_trip(target)
    assert pred.min() < 0 or pred.max() > 1  # the clamp-first rule is exercised
    sk_psnr, sk_ssim = _sk_y_metrics(pred[0], target[0], crop)
    np.testing.assert_allclose(metrics.psnr_y(pred, target, crop=crop).numpy(), [sk_psnr], atol=1e-6, rtol=0)
    np.testing.assert_allclose(metrics.ssim_y(pred, target, crop=crop).numpy(), [sk_ssim], atol=1e-6, rtol=0)


def test_y_metrics_are_per_image_on_a_batch_and_differ_from_rgb():
    target = torch.cat([_photo("astronaut", 96, 96), _photo("coffee", 96, 96)]).float()
    pred = _bicubic_round_trip(target)
    per_image = torch.stack([metrics.psnr_y(p[None], t[None])[0] for p, t in zip(pred, target)])
    torch.testing.assert_close(metrics.psnr_y(pred, target), per_image)
    assert metrics.psnr_y(pred, target).dtype == torch.float64
    # Y of YCbCr spans 219 of 255 levels and drops chroma error: papers' PSNR reads higher than RGB.
    assert (metrics.psnr_y(pred, target) > metrics.psnr(pred, target) + 0.5).all()


def test_rgb_to_y_is_bt601_luma_over_255():
    img = _photo("astronaut", 64, 48)
    y = metrics.rgb_to_y(img)
    assert y.shape == (1, 1, 64, 48)
    np.testing.assert_allclose(y[0, 0].numpy(), _sk_y(img[0]) / 255, atol=1e-12, rtol=0)
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    torch.testing.assert_close(metrics.rgb_to_y(torch.cat([black, white])).flatten() * 255,
                               torch.tensor([16.0, 235.0]))


@pytest.mark.parametrize("crop", [-1, 2.0, 8])
def test_a_crop_that_is_not_a_usable_int_names_crop(crop):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="crop"):
        metrics.psnr_y(x, x, crop=crop)


def test_per_image_metrics_equal_each_metric_bit_for_bit():
    """The shared path evaluate uses is the same arithmetic as the five public functions."""
    target = torch.cat([_photo("astronaut", 64, 80), _photo("coffee", 64, 80)]).float()
    pred = _bicubic_round_trip(target)
    together = metrics.per_image_metrics(pred, target, crop=4)
    alone = {"mse": metrics.mse(pred, target), "psnr": metrics.psnr(pred, target),
             "ssim": metrics.ssim(pred, target), "psnr_y": metrics.psnr_y(pred, target, crop=4),
             "ssim_y": metrics.ssim_y(pred, target, crop=4)}
    assert together.keys() == alone.keys()
    for name, values in alone.items():
        assert torch.equal(together[name], values), name
