"""The article's U-Net generator.

Layout (channels at width 1.0, input ``in_channels``, output ``out_channels``)::

    enc1  conv5  in -> 64                      (full resolution)
    enc2  avgpool4, conv3  64 -> 128           (1/4)
    enc3  avgpool2, conv3 128 -> 256           (1/8)
    enc4  avgpool2, conv3 256 -> 512           (1/16)
    dec1  up x2, conv3 512 -> 256, dropout     (1/8)
    dec2  cat(dec1, enc3), up x2, conv3 512 -> 128, dropout   (1/4)
    dec3  cat(dec2, enc2), up x4, conv3 256 -> 64             (1/1)
    dec4  cat(dec3, enc1), conv5 128 -> out, tanh

Encoder blocks are conv + norm + LeakyReLU(0.2); decoder blocks conv + norm (+ Dropout2d
0.5) + ReLU; upsampling is nearest-neighbour. With ``in_channels=1`` and width 1 the network
has 3,480,643 parameters. Input height and width must be multiples of
:attr:`UNetGenerator.downsampling` (16); the tiling engine takes care of that.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["UNetGenerator", "norm_layer"]

NormFactory = Callable[[int], nn.Module]


def norm_layer(name: str = "batch") -> NormFactory:
    """Return a factory ``channels -> nn.Module`` for ``"batch"``, ``"instance"`` or ``"none"``."""
    if name == "batch":
        return lambda c: nn.BatchNorm2d(c)
    if name == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if name == "none":
        return lambda c: nn.Identity()
    raise ConfigError(f"unknown norm layer {name!r}; choose batch, instance or none")


def _enc(cin: int, cout: int, k: int, norm: NormFactory, pool: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if pool > 1:
        layers.append(nn.AvgPool2d(pool))
    layers += [nn.Conv2d(cin, cout, k, padding=k // 2), norm(cout), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


def _dec(cin: int, cout: int, norm: NormFactory, up: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Upsample(scale_factor=up, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1),
        norm(cout),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """The article's pix2pix U-Net generator (see module docstring for the layout).

    Args:
        in_channels: input bands (1 for a single polarisation or a gray image).
        out_channels: output bands (3 for RGB).
        width: channel multiplier; 1.0 is the article's network, 0.25 a fast test model.
        norm: ``"batch"`` (article), ``"instance"`` or ``"none"``.
        dropout: Dropout2d probability in dec1 and dec2 (article: 0.5).
    """

    downsampling = 16  # avgpool 4 * 2 * 2: tile origins and sizes must be multiples of this
    receptive_margin = 47  # px cropped on inner tile sides for exact tiles (measured, tests/test_inference.py)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        width: float = 1.0,
        norm: str = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = (max(1, round(c * width)) for c in (64, 128, 256, 512))
        nf = norm_layer(norm)
        self.enc1 = _enc(in_channels, c1, 5, nf, 1)
        self.enc2 = _enc(c1, c2, 3, nf, 4)
        self.enc3 = _enc(c2, c3, 3, nf, 2)
        self.enc4 = _enc(c3, c4, 3, nf, 2)
        self.dec1 = _dec(c4, c3, nf, 2, dropout)
        self.dec2 = _dec(c3 + c3, c2, nf, 2, dropout)
        self.dec3 = _dec(c2 + c2, c1, nf, 4, 0.0)
        self.dec4 = nn.Sequential(nn.Conv2d(c1 + c1, out_channels, 5, padding=2), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in, H, W)`` in [-1, 1] to ``(N, out, H, W)`` in [-1, 1]; H, W multiples of 16."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d1 = self.dec1(e4)
        d2 = self.dec2(torch.cat([d1, e3], 1))
        d3 = self.dec3(torch.cat([d2, e2], 1))
        return self.dec4(torch.cat([d3, e1], 1))
