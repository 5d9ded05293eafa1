"""The one product writer: scratch raster -> Cloud Optimized GeoTIFF (+ PNG quicklook), atomically.

``translate``, the composites and (through ``translate``) the batch runner all write their
results the same way::

    with open_product(dst, grid, count=3, clip=polygon_or_None, quicklook=True) as product:
        for window, unit in blocks:
            product.write(window, unit)                                    # unit values [0, 1], NaN = nodata
        product.finish(dtype="uint8", band_names=(...), tags={...}, final=other_grid_or_None)

* the destination (and the quicklook ``<stem>.png``) is checked on entry
  (:func:`~sar2opt_geo.io.atomic.check_writable`; call it yourself first to fail before
  earlier work);
* blocks go into a float32 :class:`~sar2opt_geo.io.geotiff.ScratchRaster` in a hidden work
  folder beside ``dst``; pixels outside ``clip`` (a shapely geometry in the grid's CRS)
  become nodata as they are written;
* :meth:`Product.finish` encodes the scratch raster (or a ``WarpedVRT`` of it onto ``final``)
  to a COG under the temporary name, then the quicklook;
* leaving the ``with`` block renames the temporaries into place; any exception (including
  cancel and Ctrl-C) removes them, so nothing is ever half-written at ``dst``.

``open_product(..., staged=path)`` encodes an existing raster of unit values on ``grid`` instead
of a scratch raster (no ``write``): e.g. a VRT mosaic of row bands that other processes wrote
(:mod:`sar2opt_geo.translation.rowbands`), encoded exactly as a scratch raster with the same pixels.

Grids are any object with ``crs``, ``transform``, ``width`` and ``height`` (e.g.
:class:`sar2opt_geo.preprocess.Grid`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError, OptionTypeError
from ..progress import ProgressFn
from .atomic import atomic_outputs, work_dir
from .geotiff import OutputDType, ScratchRaster, write_cog
from .quicklook import quicklook_path, write_quicklook

__all__ = ["Product", "open_product"]


class Product:
    """A raster product being written (see the module docstring); made by :func:`open_product`."""

    def __init__(self, dst: Path, tmp: Path, tmp_png: Path | None, work: Path, grid: Any, count: int,
                 clip: Any = None, staged: Path | None = None) -> None:
        self.dst, self.tmp, self.tmp_png, self.work = dst, tmp, tmp_png, work
        self.grid, self.clip = grid, clip
        self.quicklook = quicklook_path(dst) if tmp_png is not None else None
        self.scratch_path = staged if staged is not None else work / "stage.tif"
        self._scratch = None if staged is not None else ScratchRaster(
            self.scratch_path, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height, count=count)

    @property
    def valid_pixels(self) -> int:
        """Valid pixels written so far (every band finite, inside ``clip``); 0 for a ``staged`` raster."""
        return self._scratch.valid_pixels if self._scratch is not None else 0

    def _close_scratch(self) -> None:
        if self._scratch is not None:
            self._scratch.close()

    def write(self, window: Window, unit: np.ndarray) -> None:
        """Write ``(count, h, w)`` unit values (NaN = nodata) at ``window`` (pixels of ``grid``)."""
        if self._scratch is None:
            raise OptionTypeError(f"{self.dst}: this product encodes the staged raster {self.scratch_path}; it takes no writes")
        if self.clip is not None:
            from rasterio.features import geometry_mask
            from rasterio.windows import transform as window_transform

            unit = np.array(unit, dtype=np.float32, copy=True)
            outside = geometry_mask([self.clip], out_shape=unit.shape[-2:],
                                    transform=window_transform(window, self.grid.transform))
            unit[..., outside] = np.nan
        self._scratch.write(window, unit)

    def finish(
        self,
        *,
        dtype: OutputDType = "uint8",
        band_names: Sequence[str] = ("red", "green", "blue"),
        tags: Mapping[str, Any] | None = None,
        final: Any = None,
        resampling: str = "bilinear",
        progress: ProgressFn | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """Encode the scratch raster to the COG (warped onto ``final`` if given), then the quicklook.

        Returns the number of valid pixels of the COG (callers raise when it is 0).
        """
        import rasterio

        self._close_scratch()

        def encode(src: Any) -> int:
            return write_cog(src, self.tmp, dtype=dtype, band_names=band_names, tags=tags, scratch_dir=self.work,
                             progress=progress, cancel=cancel, crs=None if final is None else final.crs)

        with rasterio.open(self.scratch_path) as staged:
            if final is None:
                valid = encode(staged)
            else:
                from rasterio.enums import Resampling
                from rasterio.vrt import WarpedVRT

                from .crs import warp_crs

                with WarpedVRT(staged, crs=warp_crs(final.crs, final.bounds), transform=final.transform, width=final.width,
                               height=final.height, resampling=Resampling[resampling],
                               src_nodata=float("nan"), nodata=float("nan"), dtype="float32") as vrt:
                    valid = encode(vrt)
        if self.tmp_png is not None and valid:
            write_quicklook(self.tmp, self.tmp_png)
        return valid


@contextlib.contextmanager
def open_product(dst: str | os.PathLike, grid: Any, count: int, *, clip: Any = None, quicklook: bool = False,
                 overwrite: bool = True, staged: str | os.PathLike | None = None) -> Iterator[Product]:
    """A :class:`Product` for ``dst`` on ``grid`` with ``count`` bands (and ``<stem>.png`` with
    ``quicklook``); ``clip`` (a shapely geometry in ``grid.crs``) masks outside it. Renamed into
    place when the block succeeds, removed otherwise. ``staged``: an existing raster of unit
    values on ``grid`` to encode instead of a scratch raster (``clip`` must then be None)."""
    dst = Path(dst)
    png = quicklook_path(dst) if quicklook else None
    if staged is not None and clip is not None:
        raise ConfigError("open_product: a staged raster is encoded as it is; mask it before (clip must be None)")
    with atomic_outputs(dst, png, overwrite=overwrite) as (tmp, tmp_png), work_dir(dst) as work:
        assert tmp is not None  # the temporary of dst, which is not None
        product = Product(dst, tmp, tmp_png, work, grid, count, clip, Path(staged) if staged is not None else None)
        try:
            yield product
        finally:
            product._close_scratch()
