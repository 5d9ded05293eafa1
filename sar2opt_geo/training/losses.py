"""pix2pix losses: BCE-with-logits GAN loss plus lambda x L1 (the article: lambda = 100)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["discriminator_loss", "gan_loss", "generator_loss"]


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """``BCEWithLogits`` of patch logits against all-ones (``real``) or all-zeros targets."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def generator_loss(
    fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, lambda_l1: float = 100.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, adversarial, l1)``: total = GAN(D(fake) -> real) + lambda_l1 x mean |fake - target|.

    L1 is measured in the model domain [-1, 1] (twice the [0, 1]-scale L1 reported by
    the validation metrics).
    """
    adv = gan_loss(fake_logits, True)
    rec = F.l1_loss(fake.float(), target.float())
    return adv + lambda_l1 * rec, adv, rec


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``(GAN(D(real) -> real) + GAN(D(fake.detach()) -> fake)) / 2`` (pix2pix halves D's loss)."""
    return 0.5 * (gan_loss(real_logits, True) + gan_loss(fake_logits, False))
