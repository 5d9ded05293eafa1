"""PNG quicklooks of an output GeoTIFF: downsampled, RGBA, transparent where nodata."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling

__all__ = ["MAX_SIZE", "quicklook_path", "write_quicklook"]

log = logging.getLogger(__name__)

MAX_SIZE = 1024  # longest side of a quicklook, pixels


def quicklook_path(dst: str | os.PathLike) -> Path:
    """``<dst stem>.png`` beside ``dst``."""
    return Path(dst).with_suffix(".png")


def write_quicklook(src_path: str | os.PathLike, png_path: str | os.PathLike, max_size: int = MAX_SIZE) -> Path:
    """Write an RGBA PNG of the first three bands of ``src_path``, longest side <= ``max_size`` pixels.

    Reads through the COG's overviews (``out_shape``), so cost does not grow with the scene.
    uint8 data is used as is; float data is taken as unit values in [0, 1] and scaled by 255.
    Alpha is 0 where the source mask (internal mask band or NaN nodata) says nodata.
    """
    png_path = Path(png_path)
    with rasterio.open(src_path) as src:
        scale = max(src.width, src.height) / max_size
        h = max(1, round(src.height / scale)) if scale > 1 else src.height
        w = max(1, round(src.width / scale)) if scale > 1 else src.width
        bands = list(range(1, min(3, src.count) + 1))
        data = src.read(bands, out_shape=(len(bands), h, w), resampling=Resampling.average)
        mask = src.read_masks(1, out_shape=(h, w), resampling=Resampling.nearest)
    if data.dtype != np.uint8:
        data = np.round(np.clip(np.nan_to_num(data.astype(np.float32), nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    if data.shape[0] == 1:
        data = np.repeat(data, 3, axis=0)
    rgba = np.concatenate([data, np.where(mask > 0, 255, 0).astype(np.uint8)[None]])
    rgba[:3, mask == 0] = 0
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), warnings.catch_warnings():  # no .aux.xml side-car
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # a picture, on purpose
        with rasterio.open(png_path, "w", driver="PNG", width=w, height=h, count=4, dtype="uint8") as out:
            out.write(rgba)
    log.debug("quicklook %s (%d x %d)", png_path, w, h)
    return png_path
