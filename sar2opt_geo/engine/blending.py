"""Blend weights: where each tile's output counts, and how much.

Along each axis a tile's weight is

* 0 in the ``margin`` pixels next to an inner edge (their receptive field crosses the tile
  edge, so they see zero padding instead of image: see :mod:`.tiling`);
* a raised-cosine (Hann) ramp over ``blend`` pixels centred in the overlap with the
  neighbour, ``w(u) = sin^2(pi/2 * u)`` with ``u`` in (0, 1) at pixel centres, and the
  neighbour gets exactly ``1 - w``;
* 1 elsewhere, including the outer side of the first and last tile (that side lies in the
  reflected padding, outside the scene).

The 2-D weight is the outer product of the row and column weights. Because neighbouring
ramps are complementary and at most two tiles overlap per axis (the ramp width is capped at
the stride), the weights of all tiles sum to 1 at every scene pixel; the engine still
divides the accumulated sum by the accumulated weight, which makes the normalisation exact
in float32 whatever the rounding.

Why blend at all, when with ``margin`` >= the receptive field and ``eval()`` mode the
overlapping tiles already agree bit for bit? Because they stop agreeing as soon as one of
those premises fails: in the article's stochastic mode each tile draws its own dropout
masks, and a model with a larger receptive field than the margin disagrees slightly near
tile edges. A smooth cross-fade spreads such differences over the overlap instead of
leaving a visible seam, and costs nothing when the tiles agree. The cosine ramp has zero
slope at both ends, so the blend has no kink where it starts or stops.
"""

from __future__ import annotations

import numpy as np

from .tiling import AxisTiles, TileGrid

__all__ = ["axis_weights", "cosine_ramp", "tile_weights", "weight_sum"]


def cosine_ramp(width: int) -> np.ndarray:
    """Rising raised-cosine ramp of ``width`` samples in (0, 1), float64, at pixel centres.

    ``cosine_ramp(n) + cosine_ramp(n)[::-1] == 1`` up to rounding; the engine uses
    ``1 - ramp`` for the falling side, which sums to 1 exactly in float64.
    """
    if width <= 0:
        return np.zeros(0, dtype=np.float64)
    u = (np.arange(width, dtype=np.float64) + 0.5) / width
    return np.sin(0.5 * np.pi * u) ** 2


def axis_weights(axis: AxisTiles, k: int) -> np.ndarray:
    """Weights (float64, length ``axis.tile``) of tile ``k`` along one axis."""
    w = np.ones(axis.tile, dtype=np.float64)
    if axis.count == 1:
        return w
    overlap = axis.tile - axis.stride
    start = (overlap - axis.blend) // 2  # ramp centred in the overlap, after the margin
    ramp = cosine_ramp(axis.blend)
    if k > 0:  # rising side, shared with tile k - 1
        w[:start] = 0.0
        w[start : start + axis.blend] = ramp
    if k < axis.count - 1:  # falling side, shared with tile k + 1, exactly 1 - its ramp
        s = axis.stride + start
        w[s : s + axis.blend] = 1.0 - ramp
        w[s + axis.blend :] = 0.0
    return w


def tile_weights(grid: TileGrid, i: int, j: int, dtype: type = np.float32) -> np.ndarray:
    """2-D weights ``(tile height, tile width)`` of tile ``(i, j)``."""
    return np.multiply.outer(axis_weights(grid.rows, i), axis_weights(grid.cols, j)).astype(dtype)


def weight_sum(grid: TileGrid) -> np.ndarray:
    """Sum of all tiles' weights over the scene, ``(height, width)`` float64 (1 everywhere).

    A check of the tiling, not used by the engine (it holds the whole scene in memory).
    """
    h, w = grid.rows.length, grid.cols.length
    total = np.zeros((h, w), dtype=np.float64)
    for i, j, r, c in grid:
        wt = tile_weights(grid, i, j, np.float64)
        r0, r1 = max(r, 0), min(r + grid.rows.tile, h)
        c0, c1 = max(c, 0), min(c + grid.cols.tile, w)
        if r0 < r1 and c0 < c1:
            total[r0:r1, c0:c1] += wt[r0 - r : r1 - r, c0 - c : c1 - c]
    return total
