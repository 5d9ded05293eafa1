"""Generator loss terms (sar2opt_geo.training.losses): article recipe, SSIM and gradient terms."""

from __future__ import annotations

import pytest
import torch

from sar2opt_geo.training import metrics
from sar2opt_geo.training.losses import (
    discriminator_loss,
    gan_loss,
    generator_loss,
    gradient_l1,
    ssim_loss,
)


def _rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # model domain


def test_structure_terms_vanish_for_a_perfect_output():
    y = _rand((2, 3, 32, 32))
    assert float(ssim_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_l1(y, y)) == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_is_one_minus_the_metric_on_the_unit_scale():
    a, b = _rand((2, 3, 32, 32), 1), _rand((2, 3, 32, 32), 2)
    expected = 1 - metrics.ssim((a + 1) / 2, (b + 1) / 2).mean()
    assert float(ssim_loss(a, b)) == pytest.approx(float(expected), abs=1e-6)


def test_gradient_l1_on_a_ramp():
    """A horizontal ramp of slope s (unit scale per px) has Sobel magnitude 8 s; flat 0 (both with the
    1e-6 under the square root that keeps the gradient finite: sqrt(1e-6) = 1e-3)."""
    s = 0.01
    ramp01 = (torch.arange(16.0) * s).view(1, 1, 1, 16).expand(1, 1, 16, 16)
    flat01 = torch.full((1, 1, 16, 16), 0.5)
    assert float(gradient_l1(ramp01 * 2 - 1, flat01 * 2 - 1)) == pytest.approx(((8 * s) ** 2 + 1e-6) ** 0.5 - 1e-3, rel=1e-4)
    # magnitudes, not signs: a ramp the other way round costs nothing
    assert float(gradient_l1(ramp01.flip(-1) * 2 - 1, ramp01 * 2 - 1)) == pytest.approx(0.0, abs=1e-5)
    # luminance, not bands: colour texture that keeps the luminance flat costs nothing either
    rgb_flat = flat01.expand(1, 3, 16, 16).clone()
    chroma = rgb_flat.clone()
    chroma[:, 0] += 0.1 * torch.sign(ramp01[0, 0] - 0.075)  # red up and down ...
    chroma[:, 1] -= 0.1 * torch.sign(ramp01[0, 0] - 0.075) * 0.299 / 0.587  # ... green compensates
    assert float(gradient_l1(chroma * 2 - 1, rgb_flat * 2 - 1)) == pytest.approx(0.0, abs=1e-5)


def test_article_recipe_is_gan_plus_100_l1():
    fake, y = _rand((2, 3, 32, 32), 3), _rand((2, 3, 32, 32), 4)
    logits = _rand((2, 1, 4, 4), 5)
    loss = generator_loss(logits, fake, y)
    assert loss.ssim is None and loss.grad is None
    expected = gan_loss(logits, True) + 100 * (fake - y).abs().mean()
    assert float(loss.total) == pytest.approx(float(expected), rel=1e-6)


def test_weighted_sum_of_every_term_and_no_gan():
    fake = _rand((2, 3, 32, 32), 6).requires_grad_(True)
    y = _rand((2, 3, 32, 32), 7)
    logits = _rand((2, 1, 4, 4), 8)
    loss = generator_loss(logits, fake, y, lambda_l1=10, lambda_gan=0.5, lambda_ssim=3, lambda_grad=7)
    expected = 0.5 * loss.adv + 10 * loss.l1 + 3 * loss.ssim + 7 * loss.grad
    assert float(loss.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.total.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    no_gan = generator_loss(None, fake, y, lambda_gan=0.0, lambda_ssim=3)
    assert no_gan.adv is None
    assert float(no_gan.total.detach()) == pytest.approx(float((100 * no_gan.l1 + 3 * no_gan.ssim).detach()), rel=1e-6)
    with pytest.raises(ValueError, match="logits"):
        generator_loss(None, fake, y)  # the article's lambda_gan = 1 needs D's logits


def test_discriminator_loss_is_half_the_sum():
    r, f = _rand((2, 1, 4, 4), 9), _rand((2, 1, 4, 4), 10)
    assert float(discriminator_loss(r, f)) == pytest.approx(float(0.5 * (gan_loss(r, True) + gan_loss(f, False))))
