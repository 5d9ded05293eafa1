"""Which rows of the model grid a row band of a scene computes and reads (on the whole-scene tile grid)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.tiling import reflect_index, tile_grid
from ..preprocess.aligned import READ_BLOCK_ROWS

__all__ = ["row_axis", "source_rows", "touching_tile_rows"]


def touching_tile_rows(axis: Any, r0: int, r1: int) -> list[int]:
    """Indices of the tile rows of ``axis`` (an :class:`~sar2opt_geo.engine.AxisTiles`) whose
    pixels meet scene rows ``[r0, r1)``: the ones ``run_tiled(rows=(r0, r1))`` runs."""
    return [i for i in range(axis.count) if axis.origin(i) < r1 and axis.origin(i) + axis.tile > r0]


def row_axis(plan: Any, downsampling: int) -> Any:
    """The row axis of the whole-scene tile grid of ``plan``'s context grid."""
    ctx = plan.context_grid
    return tile_grid(ctx.height, ctx.width, plan.tiling, downsampling).rows


def source_rows(plan: Any, downsampling: int, rows: tuple[int, int]) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``plan``'s context grid that a band ``rows`` reads: those of its tile
    rows (reflected at the scene edges), widened to whole :data:`READ_BLOCK_ROWS` blocks."""
    axis = row_axis(plan, downsampling)
    lo, hi = axis.length, 0
    for i in touching_tile_rows(axis, *rows):
        r = reflect_index(axis.origin(i) + np.arange(axis.tile), axis.length)
        lo, hi = min(lo, int(r.min())), max(hi, int(r.max()) + 1)
    b = READ_BLOCK_ROWS
    return lo // b * b, min(axis.length, -(-hi // b) * b)
