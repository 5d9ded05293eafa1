"""Calibrated linear values of a scene, read window by window on a target grid.

:func:`open_linear_source` gives a :class:`LinearSource` whose ``read(window)`` returns the
scene's calibrated values (SAR: linear power sigma0; resampling happens in *linear
power*, never in dB) for ``bands`` on a target :class:`~sar2opt_geo.preprocess.grid.Grid`,
float32 ``(C, h, w)`` with NaN = nodata:

* target grid = the scene's own grid (or a whole-pixel crop of it): windows are read
  straight from the scene;
* otherwise the needed part of the scene is calibrated window by window into a temporary
  float32 GeoTIFF (carrying the scene's CRS + transform, or its GCPs) and read through GDAL's
  warper: a ``rasterio.vrt.WarpedVRT`` for map-projected scenes, and
  ``rasterio.warp.reproject`` per window for GCP-georeferenced scenes (rasterio's WarpedVRT
  ignores GCPs when given an explicit destination grid: it builds its transformer from the
  geotransform only). GCP scenes use GDAL's thin-plate-spline transformer
  (``SRC_METHOD=GCP_TPS``, :func:`~.grid.gcp_transformer_options`) both to find the part of
  the scene a crop needs and to warp it, the same transform the model grid was made with;
  GCPs across the antimeridian are warped in the target CRS (:func:`~.grid.warp_gcps`).

Resampling: ``average`` when the target pixels are more than 1.5 x the source pixels
(downsampling), else the caller's choice (default ``bilinear``). The optional Lee speckle
filter runs on the scene's native grid, before resampling.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import CancelledError, ConfigError, GeoreferencingError
from .grid import Grid, gcp_transformer_options, native_grid, warp_crs, warp_gcps
from .speckle import DEFAULT_ENL, filtered_read

__all__ = ["LinearSource", "choose_resampling", "open_linear_source"]

log = logging.getLogger(__name__)

TEMP_BLOCK = 1024  # pixels per side written to the temporary GeoTIFF at a time
_GCP_PAD = 64  # extra source pixels around the GCP-estimated footprint of a crop


def choose_resampling(src_res_m: float | None, dst_res_m: float, requested: str = "bilinear") -> Resampling:
    """``average`` for downsampling by more than 1.5x, else ``requested`` (a ``Resampling`` name)."""
    if src_res_m and dst_res_m > 1.5 * src_res_m:
        return Resampling.average
    try:
        return Resampling[requested]
    except KeyError:
        names = ", ".join(r.name for r in Resampling if r.value <= 14)
        raise ConfigError(f"unknown resampling {requested!r}; choose one of {names}") from None


class LinearSource(contextlib.AbstractContextManager):
    """Calibrated values of ``bands`` on ``grid``: ``read(window) -> (C, h, w)`` float32, NaN = nodata."""

    def __init__(self, grid: Grid, bands: Sequence[str], reader: Callable[[Window], np.ndarray],
                 closer: Callable[[], None] | None = None, description: str = "") -> None:
        self.grid = grid
        self.bands = tuple(bands)
        self._reader = reader
        self._closer = closer
        self.description = description

    def read(self, window: Window) -> np.ndarray:
        """Values of ``window`` (pixels of :attr:`grid`, inside it)."""
        return self._reader(window)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def _native_read(scene: Any, band: str, speckle: int | None, enl: float) -> Callable[[Window], np.ndarray]:
    def raw(w: Window) -> np.ndarray:
        return np.asarray(scene.read(band, w), dtype=np.float32)

    if not speckle:
        return raw
    return lambda w: filtered_read(raw, w, scene.height, scene.width, speckle, enl)


def _integer_offset(own: Grid, grid: Grid) -> tuple[int, int] | None:
    """Pixel offset ``(col, row)`` of ``grid`` inside ``own`` if it is a whole-pixel crop of it, else None."""
    if own.crs != grid.crs or not np.allclose(own.res, grid.res, rtol=1e-9) or own.transform.b or own.transform.d:
        return None
    if grid.transform.b or grid.transform.d or (own.transform.a > 0) != (grid.transform.a > 0) or \
            (own.transform.e > 0) != (grid.transform.e > 0):
        return None
    col, row = ~own.transform @ (grid.transform.c, grid.transform.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    col, row = round(col), round(row)
    if col < 0 or row < 0 or col + grid.width > own.width or row + grid.height > own.height:
        return None
    return col, row


def source_window(scene: Any, grid: Grid, pad: int) -> Window:
    """The part of the scene (native pixels) that ``grid`` needs, padded by ``pad`` pixels."""
    left, bottom, right, top = grid.bounds
    n = 21
    xs = [left + (right - left) * i / (n - 1) for i in range(n)]
    ys = [bottom + (top - bottom) * i / (n - 1) for i in range(n)]
    px = xs + xs + [left] * n + [right] * n
    py = [bottom] * n + [top] * n + ys + ys
    from rasterio.warp import transform as warp_transform

    own = native_grid(scene)
    if own is not None:
        sx, sy = warp_transform(grid.crs, warp_crs(own.crs, own.bounds), px, py)
        inv = ~own.transform
        cols, rows = zip(*(inv @ (x, y) for x, y in zip(sx, sy)))
    else:
        assert scene.gcps is not None  # no native grid: georeferenced by GCPs (checked when planning)
        gcps, gcp_crs = warp_gcps(scene.gcps[0], scene.gcps[1], grid.crs)
        sx, sy = warp_transform(grid.crs, gcp_crs, px, py)
        from rasterio.transform import GCPTransformer

        with GCPTransformer(gcps, tps=bool(gcp_transformer_options(gcps))) as t:
            rows, cols = t.rowcol(sx, sy, op=float)
        pad += _GCP_PAD
    finite = [(c, r) for c, r in zip(cols, rows) if math.isfinite(c) and math.isfinite(r)]
    if not finite:
        raise GeoreferencingError(f"{scene.path}: cannot map the target grid into the scene's pixels")
    c0 = max(0, math.floor(min(c for c, _ in finite)) - pad)
    r0 = max(0, math.floor(min(r for _, r in finite)) - pad)
    c1 = min(scene.width, math.ceil(max(c for c, _ in finite)) + pad)
    r1 = min(scene.height, math.ceil(max(r for _, r in finite)) + pad)
    if c1 <= c0 or r1 <= r0:
        return Window(col_off=0, row_off=0, width=scene.width, height=scene.height)
    return Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def _write_temp(
    scene: Any, bands: Sequence[str], win: Window, path: Path, readers: list[Callable[[Window], np.ndarray]],
    *, cancel: Callable[[], bool] | None, progress: Callable[[float, str], None] | None, dst_crs: Any,
    fill_rows: tuple[int, int] | None = None,
) -> None:
    """Calibrate ``win`` of the scene into a float32 GeoTIFF with its georeferencing (transform or GCPs).

    ``fill_rows``: calibrate only the ``TEMP_BLOCK`` row blocks meeting these rows of ``win`` (the
    others stay empty, read as NaN: a sparse file); blocks are those of the whole window, so
    every block written holds the values it has when the whole window is calibrated.
    """
    c0, r0, w, h = int(win.col_off), int(win.row_off), int(win.width), int(win.height)
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": w, "height": h, "count": len(bands), "dtype": "float32", "nodata": float("nan"),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "zstd", "zstd_level": 1, "bigtiff": "IF_SAFER",
        "sparse_ok": True,
    }
    own = native_grid(scene)
    if own is not None:
        profile.update(crs=own.crs, transform=own.transform @ Affine.translation(c0, r0))
    else:  # GCPs shifted into the written window; their CRS goes in as the dataset's
        assert scene.gcps is not None  # no native grid: georeferenced by GCPs (checked when planning)
        gcps, gcp_crs = warp_gcps(scene.gcps[0], scene.gcps[1], dst_crs)
        profile.update(
            gcps=[GroundControlPoint(row=g.row - r0, col=g.col - c0, x=g.x, y=g.y, z=g.z, id=g.id, info=g.info)
                  for g in gcps],
            crs=gcp_crs,
        )
    blocks = [(r, c) for r in range(0, h, TEMP_BLOCK) for c in range(0, w, TEMP_BLOCK)
              if fill_rows is None or (r < fill_rows[1] and r + TEMP_BLOCK > fill_rows[0])]
    with rasterio.open(path, "w", **profile) as dst:
        for i, (r, c) in enumerate(blocks):
            if cancel is not None and cancel():
                raise CancelledError(f"{scene.path}: cancelled while resampling; nothing was written")
            bw = Window(col_off=c, row_off=r, width=min(TEMP_BLOCK, w - c), height=min(TEMP_BLOCK, h - r))
            native = Window(col_off=c0 + c, row_off=r0 + r, width=bw.width, height=bw.height)
            for b, read in enumerate(readers, start=1):
                dst.write(read(native), b, window=bw)
            if progress is not None:
                progress((i + 1) / len(blocks), "calibrating")


def open_linear_source(
    scene: Any,
    bands: Sequence[str],
    grid: Grid,
    *,
    work_dir: str | os.PathLike,
    resampling: str = "bilinear",
    speckle_window: int | None = None,
    enl: float = DEFAULT_ENL,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
    rows: tuple[int, int] | None = None,
) -> LinearSource:
    """Calibrated ``bands`` of ``scene`` on ``grid`` (see the module docstring). Close it when done.

    ``rows``: ``(r0, r1)``, the only rows of ``grid`` that will be read (a row band of a scene split
    over several processes). The warp is still set up for the whole ``grid`` (same temporary
    raster extent, same GCP transform), but only the native blocks those rows need are
    calibrated (plus one ``TEMP_BLOCK`` of margin on each side, more than GDAL's resampling
    kernels reach), so a window reads the same values whichever band it is read for.
    """
    bands = tuple(bands)
    readers = [_native_read(scene, b, speckle_window, enl) for b in bands]
    own = native_grid(scene)
    offset = _integer_offset(own, grid) if own is not None else None
    if offset is not None:
        dc, dr = offset

        def direct(w: Window) -> np.ndarray:
            shifted = Window(col_off=int(w.col_off) + dc, row_off=int(w.row_off) + dr, width=w.width, height=w.height)
            return np.stack([read(shifted) for read in readers]).astype(np.float32, copy=False)

        if progress is not None:
            progress(1.0, "no resampling needed")
        return LinearSource(grid, bands, direct, description="native grid, no resampling")

    src_res = scene.pixel_spacing_m()
    dst_res = grid.res[0] * (grid.crs.linear_units_factor[1] if not grid.crs.is_geographic else 111_320.0)
    method = choose_resampling(src_res, dst_res, resampling)
    ratio = (dst_res / src_res) if src_res else 1.0
    win = source_window(scene, grid, pad=4 + math.ceil(ratio))
    path = Path(work_dir) / f"calibrated-{os.getpid()}-{id(scene):x}.tif"
    log.info("resampling %s (%s px of %d x %d) in linear units (power for SAR, reflectance or DN for optical) to %s at %.6g %s (%s)", scene.path,
             f"{int(win.width)} x {int(win.height)}", scene.width, scene.height, grid.crs.to_string(), grid.res[0],
             "m" if not grid.crs.is_geographic else "deg", method.name)
    fill = None
    if rows is not None:
        band = source_window(scene, grid.window_grid(Window(col_off=0, row_off=int(rows[0]), width=grid.width,
                                                            height=int(rows[1]) - int(rows[0]))), pad=4 + math.ceil(ratio))
        lo = int(band.row_off) - int(win.row_off)
        fill = (lo - TEMP_BLOCK, lo + int(band.height) + TEMP_BLOCK)
    _write_temp(scene, bands, win, path, readers, cancel=cancel, progress=progress, dst_crs=grid.crs, fill_rows=fill)
    ds = rasterio.open(path)
    description = f"{method.name} resampling of linear values from {src_res or 0:.3g} m to {dst_res:.3g} m"
    if own is not None:
        from rasterio.vrt import WarpedVRT

        vrt = WarpedVRT(ds, src_crs=warp_crs(ds.crs, ds.bounds), crs=grid.crs, transform=grid.transform,
                        width=grid.width, height=grid.height, resampling=method, src_nodata=float("nan"), nodata=float("nan"), dtype="float32")

        def warped(w: Window) -> np.ndarray:
            return vrt.read(window=w, out_dtype="float32")

        def close() -> None:
            vrt.close()
            ds.close()

        return LinearSource(grid, bands, warped, close, description)

    from rasterio.warp import reproject

    gcps, gcp_crs = ds.gcps
    extra = gcp_transformer_options(gcps)

    def by_gcps(w: Window) -> np.ndarray:
        out = np.full((len(bands), int(w.height), int(w.width)), np.nan, dtype=np.float32)
        reproject(
            source=rasterio.band(ds, list(range(1, len(bands) + 1))), destination=out,
            src_crs=gcp_crs, gcps=gcps, src_nodata=float("nan"),
            dst_transform=grid.transform @ Affine.translation(int(w.col_off), int(w.row_off)),
            dst_crs=grid.crs, dst_nodata=float("nan"), resampling=method, init_dest_nodata=True, **extra,
        )
        return out

    return LinearSource(grid, bands, by_gcps, ds.close, description + ", GCP georeferencing")
