"""pix2pix losses: BCE-with-logits GAN loss plus lambda x L1 (the article: lambda = 100), and the
optional structure terms of the shipped recipe (SSIM, Sobel gradients).

Generator loss::

    lambda_gan x BCE(D(x, G(x)) -> real)
  + lambda_l1 x mean |G(x) - y|                      (model domain [-1, 1], as the article)
  + lambda_ssim x (1 - SSIM(G(x), y))                (unit scale [0, 1]; SSIM of metrics.ssim)
  + lambda_grad x mean | |Sobel(L(G(x)))| - |Sobel(L(y))| |  (unit scale; L = BT.601 luminance)

The article's recipe is ``lambda_gan = 1, lambda_l1 = 100, lambda_ssim = lambda_grad = 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import metrics

__all__ = ["GeneratorLoss", "discriminator_loss", "gan_loss", "generator_loss", "gradient_l1", "ssim_loss"]


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """``BCEWithLogits`` of patch logits against all-ones (``real``) or all-zeros targets."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def _unit(t: torch.Tensor) -> torch.Tensor:
    return (t.float() + 1.0) / 2.0  # tanh output and targets are in [-1, 1]: no clipping needed


def ssim_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean SSIM`` of model-domain tensors, on the [0, 1] scale (11 x 11 Gaussian window, as the metric)."""
    return 1.0 - metrics.ssim(_unit(fake), _unit(target)).mean()


def _sobel_xy(t: torch.Tensor) -> torch.Tensor:
    c = t.shape[1]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=t.dtype, device=t.device)
    k = torch.stack([kx, kx.T]).view(2, 1, 3, 3).repeat(c, 1, 1, 1)
    return F.conv2d(t, k, groups=c)


def _magnitude(t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    g = _sobel_xy(t)
    return torch.sqrt(g[:, 0::2] ** 2 + g[:, 1::2] ** 2 + eps)  # eps: finite gradient where |g| = 0


def gradient_l1(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean | |Sobel(L(fake))| - |Sobel(L(target))| | over pixels (unit scale, 1-px border left out).

    ``L`` is the BT.601 luminance (a one-band image is its own luminance), as in the gradient-r
    metric. On magnitudes, not on the signed d/dx, d/dy: where the SAR tells *that* there is
    texture or an edge but not its exact phase, an L1 on signed gradients is minimised by a flat
    output (the median of a symmetric distribution is 0); the magnitude keeps the amount of
    detail. On luminance, not per band: per-band magnitudes reward independent texture in R, G
    and B, which the first trials turned into colour noise.
    """
    return (_magnitude(metrics.luminance(_unit(fake))) - _magnitude(metrics.luminance(_unit(target)))).abs().mean()


class GeneratorLoss(NamedTuple):
    """The weighted total and its unweighted parts (``None`` for a term whose weight is 0)."""

    total: torch.Tensor
    adv: torch.Tensor | None
    l1: torch.Tensor
    ssim: torch.Tensor | None
    grad: torch.Tensor | None


def generator_loss(
    fake_logits: torch.Tensor | None,
    fake: torch.Tensor,
    target: torch.Tensor,
    lambda_l1: float = 100.0,
    lambda_gan: float = 1.0,
    lambda_ssim: float = 0.0,
    lambda_grad: float = 0.0,
) -> GeneratorLoss:
    """The generator's loss (see module docstring). ``fake_logits`` may be None when ``lambda_gan`` is 0.

    L1 is measured in the model domain [-1, 1] (twice the [0, 1]-scale L1 reported by
    the validation metrics).
    """
    rec = F.l1_loss(fake.float(), target.float())
    total = lambda_l1 * rec
    adv = s = g = None
    if lambda_gan:
        if fake_logits is None:
            raise ConfigError("lambda_gan > 0 needs the discriminator's logits of the fake")
        adv = gan_loss(fake_logits, True)
        total = total + lambda_gan * adv
    if lambda_ssim:
        s = ssim_loss(fake, target)
        total = total + lambda_ssim * s
    if lambda_grad:
        g = gradient_l1(fake, target)
        total = total + lambda_grad * g
    return GeneratorLoss(total, adv, rec, s, g)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``(GAN(D(real) -> real) + GAN(D(fake.detach()) -> fake)) / 2`` (pix2pix halves D's loss)."""
    return 0.5 * (gan_loss(real_logits, True) + gan_loss(fake_logits, False))
