"""Preprocessing from the checkpoint's card: band choice, model grid, resampling, speckle, normalisation.

* :mod:`.bands` — which scene bands feed the model; sensor/band mismatch warnings.
* :mod:`.grid` — the model grid at ``card.input.pixel_spacing_m``, crops, output grids.
* :mod:`.resample` — calibrated linear values on a target grid (WarpedVRT, GCPs).
* :mod:`.speckle` — Lee filter on linear power.
* :mod:`.domain` — linear values -> model domain [-1, 1] (dB clip or scene percentile).
"""

from __future__ import annotations

from .bands import BandPlan, plan_bands
from .domain import Normaliser, make_normaliser, scene_percentile
from .grid import (
    Grid,
    crop_window,
    model_grid,
    native_grid,
    reprojected_grid,
    utm_crs_for,
)
from .resample import LinearSource, choose_resampling, open_linear_source
from .speckle import filtered_read, lee_filter

__all__ = [
    "BandPlan",
    "Grid",
    "LinearSource",
    "Normaliser",
    "choose_resampling",
    "crop_window",
    "filtered_read",
    "lee_filter",
    "make_normaliser",
    "model_grid",
    "native_grid",
    "open_linear_source",
    "plan_bands",
    "reprojected_grid",
    "scene_percentile",
    "utm_crs_for",
]
