"""Tiled, blended, streaming inference: the tile grid, the blend weights and :func:`run_tiled`.

``tiling`` lays out tiles aligned to the model's downsampling (16) with cropped margins
(48 px) and reflection padding; ``blending`` gives the cosine cross-fade weights;
``inference`` (with ``sweep``) sweeps the scene in strips of tile rows, batching tiles and writing finished
row blocks as it goes; ``planner`` chooses the tiling from a memory budget; ``backends``
runs the model (torch, ONNX Runtime, OpenVINO); ``fast_unet`` is the exact inference
rewrite of the article's U-Net.
"""

from __future__ import annotations

from .backends import BACKENDS, Runner, make_runner, prepare_module
from .blending import axis_weights, cosine_ramp, tile_weights, weight_sum
from .fast_unet import FastUNet, optimise_for_inference
from .inference import TilingStats, run_tiled
from .planner import (
    DEFAULT_MAX_MEMORY_MB,
    TilingPlan,
    activation_bytes_per_pixel,
    choose_tiling,
    exact_margin,
    plan_tiling,
)
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
    "BACKENDS",
    "DEFAULT_DOWNSAMPLING",
    "DEFAULT_MAX_MEMORY_MB",
    "AxisTiles",
    "FastUNet",
    "Runner",
    "TileGrid",
    "TilingConfig",
    "TilingPlan",
    "TilingStats",
    "activation_bytes_per_pixel",
    "axis_tiles",
    "axis_weights",
    "check_config",
    "choose_tiling",
    "cosine_ramp",
    "exact_margin",
    "make_runner",
    "model_downsampling",
    "optimise_for_inference",
    "plan_tiling",
    "prepare_module",
    "reflect_index",
    "run_tiled",
    "tile_grid",
    "tile_weights",
    "weight_sum",
]
