"""Which optical pixels are cloud, cloud shadow or saturated: the tile filter of ``sar2opt pairs``.

A training pair whose optical side shows a cloud teaches the generator that SAR texture
looks like a cloud. Two tests, the first that applies:

1. **Sentinel-2 scene classification (SCL)**, when there is one: the ``SCL_20m`` band of an
   L2A SAFE (found beside the 10 m bands), or any classification raster passed with
   ``--scl``. Rejected classes: 1 saturated or defective, 3 cloud shadow, 8 cloud (medium
   probability), 9 cloud (high probability), 10 thin cirrus (:data:`SCL_REJECT`); class 0
   (no data) counts as nodata. The SCL is warped onto the pairs' grid with ``nearest``
   (``mode`` when the grid is more than 1.5 x coarser).
2. Otherwise a **brightness/whiteness test** on the red, green and blue bands, for
   reflectance data (Sentinel-2 L1C/L2A, any optical band read as reflectance): a pixel is
   cloud-like when its mean visible reflectance is above :data:`BRIGHT_REFLECTANCE` (0.3) *and*
   it is white, ``sum(|b - mean|) / mean < WHITENESS`` (0.7; the whiteness test of Fmask, Zhu
   & Woodcock 2012, Remote Sensing of Environment 118), or saturated when any band reaches
   reflectance 1.0. It misses thin, dark or coloured haze and flags some bright white roofs
   and salt flats; it cannot tell shadows from water. For digital numbers of unknown
   calibration (not reflectance) only saturation is tested: any band at the file's largest
   integer value (255 for uint8, 65535 for uint16).

``sar2opt pairs --max-cloud F`` rejects tiles where more than the fraction ``F`` of the pixels
fail the test (default 0.01).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
from rasterio.windows import Window

from ..errors import InputError

__all__ = [
    "BRIGHT_REFLECTANCE",
    "SATURATED_REFLECTANCE",
    "SCL_NODATA",
    "SCL_REJECT",
    "WHITENESS",
    "SclSource",
    "find_scl",
    "open_scl",
    "rgb_test",
    "scl_test",
]

#: SCL classes that reject a pixel (value -> meaning).
SCL_REJECT: dict[int, str] = {1: "saturated or defective", 3: "cloud shadow", 8: "cloud medium probability",
                              9: "cloud high probability", 10: "thin cirrus"}
#: SCL class that means no data.
SCL_NODATA = 0
#: Mean visible reflectance above which a white pixel counts as cloud.
BRIGHT_REFLECTANCE = 0.3
#: Fmask's whiteness threshold: sum(|band - mean|) / mean below it is white.
WHITENESS = 0.7
#: Reflectance at which a band counts as saturated.
SATURATED_REFLECTANCE = 1.0


def find_scl(scene: Any) -> str | None:
    """The GDAL path of the SCL band of a Sentinel-2 L2A SAFE scene (beside its 10 m bands), or None."""
    datasets = getattr(scene, "_datasets", None)
    if not datasets or (getattr(scene, "metadata", {}) or {}).get("level") != "L2A":
        return None
    red = str(next(iter(datasets.values())).path)
    m = re.search(r"^(?P<head>.*/)R10m/(?P<name>[^/]*?)_B0[2348]_10m\.(?P<ext>jp2|tif)$", red)
    if m is None:
        return None
    candidate = f"{m['head']}R20m/{m['name']}_SCL_20m.{m['ext']}"
    try:
        from ..sensors._raster import open_raster

        open_raster(candidate).close()
    except Exception:  # noqa: BLE001 - absent or unreadable: no SCL, the RGB test applies
        return None
    return candidate


def scl_test(scl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rejected, nodata)`` boolean masks from SCL classes (NaN or class 0 = nodata)."""
    scl = np.asarray(scl, dtype=np.float32)
    nodata = ~np.isfinite(scl) | (scl == SCL_NODATA)
    classes = np.nan_to_num(scl, nan=0).astype(np.int16)
    rejected = np.isin(classes, list(SCL_REJECT)) & ~nodata
    return rejected, nodata


def rgb_test(rgb: np.ndarray, reflectance: bool, dn_max: float | None = None) -> np.ndarray:
    """Boolean mask of cloud-like or saturated pixels of ``(3, h, w)`` red, green, blue values (see the module docstring)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        if reflectance:
            mean = rgb.mean(axis=0)
            white = np.abs(rgb - mean).sum(axis=0) / np.maximum(mean, np.float32(1e-6)) < WHITENESS
            cloud = (mean > BRIGHT_REFLECTANCE) & white
            return cloud | (rgb >= SATURATED_REFLECTANCE).any(axis=0)
        if dn_max is None:
            return np.zeros(rgb.shape[1:], dtype=bool)
        # numpy's stubs type any(axis=...) as "bool or array"; of a (3, h, w) array it is an array
        return cast(np.ndarray, (rgb >= np.float32(dn_max)).any(axis=0))


class SclSource:
    """SCL classes warped onto a grid: ``read(window)`` -> float32 classes, NaN where class 0 (no data)."""

    def __init__(self, vrt: Any, ds: Any, source: str) -> None:
        self.vrt, self.ds, self.source = vrt, ds, source

    def read(self, window: Window) -> np.ndarray:
        a = self.vrt.read(1, window=window).astype(np.float32)
        a[a == 0] = np.nan
        return a


@contextlib.contextmanager
def open_scl(oscene: Any, path: str | None, grid: Any) -> Iterator[SclSource | None]:
    """The SCL classes warped onto ``grid`` (nearest, or mode when downsampling), or None without an SCL."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    found = path or find_scl(oscene)
    if not found:
        yield None
        return
    from ..sensors._raster import open_raster

    ds = open_raster(str(found))
    try:
        if ds.crs is None:
            raise InputError(f"{found}: the SCL raster has no CRS; it must be georeferenced like the optical scene")
        res = abs(ds.transform.a) * (ds.crs.linear_units_factor[1] if not ds.crs.is_geographic else 111_320.0)
        dst_res = grid.res[0] * (grid.crs.linear_units_factor[1] if not grid.crs.is_geographic else 111_320.0)
        method = Resampling.mode if dst_res > 1.5 * res else Resampling.nearest
        with rasterio.Env(), WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width,
                                       height=grid.height, resampling=method, src_nodata=0, nodata=0) as vrt:
            yield SclSource(vrt, ds, Path(str(found)).name)
    finally:
        ds.close()
