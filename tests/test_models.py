"""The article's generator and discriminator: shapes, size, and that they can learn a real pair."""

from __future__ import annotations

import time

import pytest
import torch

from sar2opt_geo.models import (
    GENERATORS,
    PatchDiscriminator,
    UNetGenerator,
    build_generator,
)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_generator_parameter_count_matches_the_article():
    assert _params(UNetGenerator(1, 3)) == 3_480_643
    # one more input band adds one 5x5 kernel per first-layer filter
    assert _params(UNetGenerator(2, 3)) == 3_480_643 + 64 * 25
    assert _params(UNetGenerator(1, 3, width=0.5)) < _params(UNetGenerator(1, 3)) / 3


@pytest.mark.parametrize("width,size", [(0.125, 64), (0.25, 96)])
def test_generator_keeps_size_and_range(width, size):
    g = UNetGenerator(1, 3, width=width).eval()
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, size, size)
    assert y.abs().max() <= 1.0  # tanh output


def test_discriminator_gives_32x32_patch_logits_for_256px():
    d = PatchDiscriminator(in_channels=4, width=0.25).eval()
    with torch.no_grad():
        logits = d(torch.zeros(1, 1, 256, 256), torch.zeros(1, 3, 256, 256))
    assert logits.shape == (1, 1, 32, 32)


def test_build_generator_by_name():
    assert "unet_article" in GENERATORS
    g = build_generator("unet_article", in_channels=1, out_channels=3, width=0.125)
    assert isinstance(g, UNetGenerator)
    with pytest.raises(ValueError, match="unknown generator"):
        build_generator("resnet9")


def test_narrow_generator_overfits_one_real_la_crop(la_pairs, one_thread):
    """L1 on one real 64 px Sentinel-1 VH / Sentinel-2 RGB crop falls well below its start in seconds."""
    from sar2opt_geo.data import PairDataset, find_pairs

    sample = PairDataset(find_pairs(la_pairs)[:1], crop_size=64, seed=3)[0]
    x, y = sample["condition"][None], sample["target"][None]
    torch.manual_seed(0)
    g = UNetGenerator(1, 3, width=0.125, dropout=0.0)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)
    losses = []
    t0 = time.monotonic()
    for _ in range(40):
        loss = torch.nn.functional.l1_loss(g(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert time.monotonic() - t0 < 60
    assert min(losses[-5:]) < 0.5 * losses[0], (losses[0], losses[-5:])
