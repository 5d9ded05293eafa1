"""PSNR / SSIM / L1 / gradient r on the [0, 1] scale (sar2opt_geo.training.metrics)."""

from __future__ import annotations

import pytest
import torch

from sar2opt_geo.training.metrics import (
    gaussian_window,
    grad_r,
    l1,
    luminance,
    psnr,
    sobel_magnitude,
    ssim,
)


def _rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_psnr_identical_is_inf_and_known_mse():
    x = _rand((2, 3, 32, 32))
    assert torch.isinf(psnr(x, x)).all()
    y = (x + 0.1).clamp(max=5)  # constant offset 0.1 -> MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(x, x + 0.1), torch.full((2,), 20.0), atol=1e-3)
    assert psnr(x, y).shape == (2,)


def test_l1_known_value():
    x = torch.zeros(1, 3, 16, 16)
    assert float(l1(x, x + 0.25)) == pytest.approx(0.25)


def test_ssim_identical_is_one():
    x = _rand((2, 3, 40, 40))
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_ssim_constant_images_follow_the_luminance_term():
    # no variance anywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly
    a, b = 0.3, 0.6
    x, y = torch.full((1, 1, 24, 24), a), torch.full((1, 1, 24, 24), b)
    c1 = (0.01 * 1.0) ** 2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-4)  # float32


def test_ssim_of_inverted_image_is_negative():
    # y = 1 - x: same means (0.5) and variances, covariance = -variance -> SSIM close to -1
    x = (_rand((1, 1, 64, 64)) > 0.5).float()
    s = float(ssim(x, 1 - x))
    assert -1.0 <= s < -0.9


def test_ssim_matches_an_independent_scipy_reference():
    """Same definition computed with scipy.ndimage.gaussian_filter (how skimage does it)."""
    from scipy.ndimage import gaussian_filter

    x = _rand((1, 1, 48, 48), 1).double()
    y = (x + 0.2 * _rand((1, 1, 48, 48), 2).double()).clamp(0, 1)
    a, b = x[0, 0].numpy(), y[0, 0].numpy()

    def f(t):  # truncate so that the kernel is 11 x 11 (radius 5), as skimage does
        return gaussian_filter(t, sigma=1.5, truncate=5 / 1.5, mode="reflect")

    mx, my = f(a), f(b)
    vx, vy, cxy = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    ref = smap[5:-5, 5:-5].mean()  # skimage crops (win_size - 1) // 2 on every side
    assert float(ssim(x.float(), y.float())) == pytest.approx(ref, abs=1e-5)
    assert 0.0 < ref < 1.0


def test_gaussian_window_is_normalised_11x11():
    w = gaussian_window()
    assert w.shape == (11, 11)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(w.argmax()) == 5 * 11 + 5


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))  # smaller than the window


def test_grad_r_matches_a_hand_computation_with_scipy():
    """BT.601 luminance, scipy.ndimage.sobel magnitude, 1-px border dropped, numpy Pearson r."""
    import numpy as np
    from scipy.ndimage import sobel

    a = _rand((1, 3, 40, 48), 3).double()
    b = (0.6 * a + 0.4 * _rand((1, 3, 40, 48), 4).double()).clamp(0, 1)

    def mag(t):
        lum = 0.299 * t[0, 0] + 0.587 * t[0, 1] + 0.114 * t[0, 2]
        lum = lum.numpy()
        return np.hypot(sobel(lum, axis=1), sobel(lum, axis=0))[1:-1, 1:-1]

    ref = np.corrcoef(mag(a).ravel(), mag(b).ravel())[0, 1]
    assert float(grad_r(a.float(), b.float())) == pytest.approx(ref, abs=1e-5)
    assert 0.2 < ref < 0.95
    # the Sobel magnitude itself agrees with scipy's
    assert np.abs(sobel_magnitude(luminance(a))[0, 0].numpy() - mag(a)).max() < 1e-5  # float32


def test_grad_r_extremes():
    x = _rand((2, 3, 32, 32), 5)
    assert torch.allclose(grad_r(x, x), torch.ones(2), atol=1e-6)
    # an inverted or rescaled image has its edges in the same places: r = 1
    assert torch.allclose(grad_r(1 - x, x), torch.ones(2), atol=1e-6)
    assert torch.allclose(grad_r(0.5 * x + 0.2, x), torch.ones(2), atol=1e-6)
    # a constant image has no gradient: r is undefined and reported as 0, on either side
    const = torch.full_like(x, 0.4)
    assert torch.equal(grad_r(const, x), torch.zeros(2)) and torch.equal(grad_r(x, const), torch.zeros(2))
    # unrelated noise: near 0
    assert float(grad_r(_rand((1, 3, 128, 128), 6), _rand((1, 3, 128, 128), 7)).abs()) < 0.05


def test_grad_r_of_a_blurred_average_is_far_below_a_sharp_translation():
    """What the metric is for: blurring keeps PSNR close but loses the edges."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    fields = np.kron(rng.uniform(0.1, 0.6, (8, 8)), np.ones((16, 16)))  # a 128 px patchwork of fields
    target = torch.from_numpy(np.repeat(fields[None, None], 3, 1)).float()
    blurred = torch.from_numpy(gaussian_filter(target.numpy(), (0, 0, 6, 6))).float()
    noisy = (target + 0.05 * torch.from_numpy(rng.normal(0, 1, target.shape)).float()).clamp(0, 1)
    assert float(grad_r(noisy, target)) > 0.5 > float(grad_r(blurred, target))


def test_grad_r_takes_a_one_band_image_as_its_luminance():
    x = _rand((1, 3, 24, 24), 8)
    lum = luminance(x)
    assert lum.shape == (1, 1, 24, 24)
    assert float(grad_r(lum, x)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        grad_r(x, _rand((1, 3, 24, 20)))
