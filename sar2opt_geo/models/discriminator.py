"""The article's PatchGAN discriminator.

Input is the condition and the image concatenated on channels (4 for a 1 -> 3 generator)::

    conv5 in -> 16
    avgpool4, conv3 16 -> 32, conv3 32 -> 32
    avgpool2, conv3 32 -> 64, conv3 64 -> 64
    conv1 64 -> 1   (one logit per patch; 32 x 32 patches for a 256 x 256 input)

Every conv but the last is followed by norm + LeakyReLU(0.2); the first has no norm
(the pix2pix convention). Logits are raw: train with ``BCEWithLogitsLoss``.
"""

from __future__ import annotations

import torch
from torch import nn

from .generator import norm_layer

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator; ``in_channels`` = condition bands + image bands."""

    def __init__(self, in_channels: int = 4, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (16, 32, 64))
        nf = norm_layer(norm)

        def block(cin: int, cout: int, k: int, use_norm: bool = True) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2), nf(cout) if use_norm else nn.Identity(),
                    nn.LeakyReLU(0.2, inplace=True)]

        self.net = nn.Sequential(
            *block(in_channels, c1, 5, use_norm=False),
            nn.AvgPool2d(4),
            *block(c1, c2, 3),
            *block(c2, c2, 3),
            nn.AvgPool2d(2),
            *block(c2, c3, 3),
            *block(c3, c3, 3),
            nn.Conv2d(c3, 1, 1),
        )

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(N, 1, H/8, W/8)`` for a (condition, image) pair."""
        return self.net(torch.cat([condition, image], 1))
