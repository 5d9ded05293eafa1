"""A generator that is cheap at full resolution: strided stem, residual blocks at 1/4 and 1/8.

The article's U-Net spends about two thirds of its FLOPs in full-resolution layers (a 3 x 3
conv from 256 to 64 channels on every pixel). Here the full-resolution layers are thin
(16 channels at width 1), the work happens at 1/4 and 1/8 resolution, and three additive skips
bring the detail back::

    s1   conv3             in -> c1            1/1   (c1, c2, c3, c4 = 16, 32, 64, 128 x width)
    s2   conv3 stride 2    c1 -> c2            1/2
    s4   conv3 stride 2    c2 -> c3            1/4
    r4   residual blocks x blocks (c3)         1/4
    s8   conv3 stride 2    c3 -> c4            1/8
    r8   residual blocks x context_blocks (c4) 1/8   (context: what kind of place this is)
    u4   up x2, conv3      c4 -> c3, + r4      1/4
    u2   up x2, conv3      c3 -> c2, + s2      1/2
    u1   up x2, conv3      c2 -> c1, + s1      1/1
    head conv3             c1 -> out, tanh     1/1

Every conv is followed by norm + ReLU (the residual blocks: conv-norm-ReLU-conv-norm, added to
the input, then ReLU); upsampling is nearest-neighbour. At width 1 with the default 2 + 1 blocks
and 1 input band: 0.64 M parameters and 4.2 GFLOP per 256 x 256 image (the article's
U-Net: 3.48 M and 29.9 GFLOP, torch.utils.flop_counter), of which about a sixth at full resolution.

Tiling contract (:mod:`sar2opt_geo.engine`): total downsampling 8 (tile origins and sizes
multiples of 8), and an output pixel depends on input pixels at most :attr:`receptive_margin`
pixels away (in eval mode; measured in ``tests/test_resnet_lite.py``), so tiles cropped by at
least that margin reproduce a whole-image pass. Only batch norm (or none): instance norm would
make every tile depend on the whole tile and break that exactness.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .generator import NormFactory, norm_layer

__all__ = ["ResNetLiteGenerator"]


def _conv(cin: int, cout: int, norm: NormFactory, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), norm(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c: int, norm: NormFactory) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), norm(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1), norm(c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, norm: NormFactory) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = _conv(cin, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x)) + skip


class ResNetLiteGenerator(nn.Module):
    """Strided-stem residual generator (layout in the module docstring).

    Args:
        in_channels: input bands (1 for one polarisation, 2 for dual-pol).
        out_channels: output bands (3 for RGB).
        width: channel multiplier (1.0: 16/32/64/128 channels at 1/1, 1/2, 1/4, 1/8).
        norm: ``"batch"`` or ``"none"`` (``"instance"`` is refused: it breaks exact tiling).
        blocks: residual blocks at 1/4 resolution.
        context_blocks: residual blocks at 1/8 resolution.
    """

    downsampling = 8  # three stride-2 convs: tile origins and sizes must be multiples of 8
    receptive_margin = 48  # px, for the default 2 + 1 blocks (measured in tests/test_resnet_lite.py)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        width: float = 1.0,
        norm: str = "batch",
        blocks: int = 2,
        context_blocks: int = 1,
    ) -> None:
        super().__init__()
        if norm == "instance":
            raise ConfigError("resnet_lite supports norm 'batch' or 'none': instance norm makes tiled inference inexact")
        c1, c2, c3, c4 = (max(1, round(c * width)) for c in (16, 32, 64, 128))
        nf = norm_layer(norm)
        self.s1 = _conv(in_channels, c1, nf)
        self.s2 = _conv(c1, c2, nf, stride=2)
        self.s4 = _conv(c2, c3, nf, stride=2)
        self.r4 = nn.Sequential(*(_Residual(c3, nf) for _ in range(blocks)))
        self.s8 = _conv(c3, c4, nf, stride=2)
        self.r8 = nn.Sequential(*(_Residual(c4, nf) for _ in range(context_blocks)))
        self.u4 = _Up(c4, c3, nf)
        self.u2 = _Up(c3, c2, nf)
        self.u1 = _Up(c2, c1, nf)
        self.head = nn.Sequential(nn.Conv2d(c1, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in, H, W)`` in [-1, 1] to ``(N, out, H, W)`` in [-1, 1]; H, W multiples of 8."""
        f1 = self.s1(x)
        f2 = self.s2(f1)
        f4 = self.r4(self.s4(f2))
        f8 = self.r8(self.s8(f4))
        return self.head(self.u1(self.u2(self.u4(f8, f4), f2), f1))
