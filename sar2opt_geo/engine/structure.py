"""``--keep-structure``: the SAR's own fine structure added to the model's output, tile by tile.

Why: out of its training region a generator trained on a few scenes removes structure its
input carries (fields, roads, villages: docs/TRAINING.md, "Keeping the SAR's structure").
This step puts it back for interpretation: the band-pass detail of the model's input

    detail = G(1 px) * u - G(8 px) * u

(``u``: the input as the model sees it, mapped to linear power relative to the scene
percentile, mean of the bands; ``G(s)``: a Gaussian of ``s`` pixels) is added to every output
band, ``y + 2 * strength * detail`` on the model's [-1, 1] scale, so a unit of linear
backscatter above its 80 m neighbourhood brightens the output by ``strength`` on the [0, 1]
scale. Block means over 160 m barely move (the detail averages out), so the land-cover
layout of the model's colours stays; the cost is full-resolution PSNR/SSIM against the
optical image (speckle and SAR-bright objects are not optical texture), measured in
docs/TRAINING.md.

Locality: the detail of a pixel depends on inputs within :data:`RADIUS_PX` pixels, below the
bundled models' tiling margin (48 px), so tiled results stay those of one whole-image pass
away from the scene border.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_STRENGTH", "RADIUS_PX", "SIGMAS_PX", "structure_detail", "structure_step"]

#: Inner and outer Gaussian sigmas of the band-pass, pixels (10 m and 80 m at 10 m): the inner one
#: smooths speckle, the outer one is the scale of the land-cover layout the model's colours keep.
SIGMAS_PX = (1.0, 8.0)
#: Default strength: [0, 1] output units per unit of linear backscatter / scene percentile, i.e. a target
#: as bright as the scene's 99th percentile above a dark neighbourhood adds the full output range. On the
#: 74 training-area Los Angeles/Texas tiles it lifts the luminance contrast ratio from 0.42 to 0.85
#: (0.73 at 0.8, 0.96 at 1.2); docs/TRAINING.md has its other effects.
DEFAULT_STRENGTH = 1.0
#: How far the detail of a pixel reaches (4 outer sigmas), pixels.
RADIUS_PX = math.ceil(4 * SIGMAS_PX[1])


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = math.ceil(4 * sigma)
    k = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(k * k) / (2 * sigma * sigma))
    g = g / g.sum()
    pad_mode = "reflect" if min(x.shape[2:]) > r else "replicate"
    x = F.pad(x, (r, r, r, r), mode=pad_mode)
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def structure_detail(unit: torch.Tensor, to_linear: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Band-pass detail ``(N, 1, H, W)`` of model inputs ``unit`` ``(N, C, H, W)`` in [0, 1].

    ``to_linear`` maps unit values to linear power relative to the scene percentile (None:
    they already are, the ``percentile`` normalisation); bands are averaged.
    """
    x = unit.float().clamp(0.0, 1.0)
    if to_linear is not None:
        x = to_linear(x)
    x = x.mean(1, keepdim=True)
    return _gaussian(x, SIGMAS_PX[0]) - _gaussian(x, SIGMAS_PX[1])


def _to_linear_for(card_input: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Unit values -> linear power relative to the top of the domain, for a card's input domain."""
    if str(getattr(card_input, "normalisation", "")) == "db_clip" and card_input.db_range:
        lo, hi = (float(v) for v in card_input.db_range)
        return lambda u: torch.pow(10.0, (lo + u * (hi - lo) - hi) / 10.0)
    return None


def structure_step(card_input: Any, strength: float = DEFAULT_STRENGTH) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``step(inputs, outputs)`` for :func:`~sar2opt_geo.engine.run_tiled`'s ``postprocess``: both
    ``(N, C, H, W)`` float32 on the model's [-1, 1] scale; returns the outputs with the detail added."""
    to_linear = _to_linear_for(card_input)
    scale = 2.0 * float(strength)

    def step(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        unit = (torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)) + 1.0) / 2.0
        d = structure_detail(unit, to_linear).numpy()
        return (outputs + np.float32(scale) * d).astype(np.float32, copy=False)

    return step
