"""Tiled, blended, streaming inference: the tile grid, the blend weights and :func:`run_tiled`.

``tiling`` lays out tiles aligned to the model's downsampling (16) with cropped margins
(48 px) and reflection padding; ``blending`` gives the cosine cross-fade weights;
``inference`` sweeps the scene in strips of tile rows, batching tiles and writing finished
row blocks as it goes.
"""

from __future__ import annotations

from .blending import axis_weights, cosine_ramp, tile_weights, weight_sum
from .inference import TilingStats, run_tiled
from .tiling import (
    DEFAULT_DOWNSAMPLING,
    AxisTiles,
    TileGrid,
    TilingConfig,
    axis_tiles,
    check_config,
    model_downsampling,
    reflect_index,
    tile_grid,
)

__all__ = [
    "DEFAULT_DOWNSAMPLING",
    "AxisTiles",
    "TileGrid",
    "TilingConfig",
    "TilingStats",
    "axis_tiles",
    "axis_weights",
    "check_config",
    "cosine_ramp",
    "model_downsampling",
    "reflect_index",
    "run_tiled",
    "tile_grid",
    "tile_weights",
    "weight_sum",
]
