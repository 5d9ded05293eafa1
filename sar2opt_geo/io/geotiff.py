"""GeoTIFF output: a float32 scratch raster the engine streams into, then a Cloud Optimized GeoTIFF.

Two steps keep memory bounded and the result standard:

1. :class:`ScratchRaster` — float32, one band per output band, values on the *unit* scale
   ``(y + 1) / 2`` in [0, 1], NaN = nodata. The engine's ``write`` callback fills it block by
   block (row blocks in order), so nothing the size of the scene is held in memory.
2. :func:`write_cog` — reads the scratch raster (or a ``WarpedVRT`` of it, for ``dst_crs`` /
   ``dst_res`` / ``match_input_grid``) in 512-row blocks, encodes to the output dtype, and
   copies the result with GDAL's COG driver: tiled 512, DEFLATE or ZSTD, internal overviews,
   ``LAYOUT=COG`` in the ``IMAGE_STRUCTURE`` metadata.

Output conventions: ``uint8`` = ``round(255 * (y + 1) / 2)`` with an *internal mask band*
(0 where nodata; the pixels there are 0, never noise); ``float32`` = ``(y + 1) / 2`` with NaN
nodata. Bands carry RGB colour interpretation and descriptions (``red``, ``green``, ``blue``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from ..errors import CancelledError, ConfigError

__all__ = ["BLOCK_SIZE", "OutputDType", "ScratchRaster", "encode_block", "write_cog"]

log = logging.getLogger(__name__)

OutputDType = Literal["uint8", "float32"]
BLOCK_SIZE = 512  # COG tile size, pixels
_COLORS = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue, "gray": ColorInterp.gray,
           "alpha": ColorInterp.alpha}
# Light compression for scratch files: they are read back once.
_SCRATCH_OPTIONS = {"compress": "zstd", "zstd_level": 1, "bigtiff": "IF_SAFER"}  # > 4 GB scenes need BigTIFF


class ScratchRaster(contextlib.AbstractContextManager):
    """A float32 GeoTIFF on the unit scale [0, 1] with NaN nodata, written window by window.

    Striped (16 rows per strip) and lightly compressed: row blocks arriving in order complete
    each strip once, so the file is written sequentially without re-compressing blocks.
    """

    def __init__(
        self, path: str | os.PathLike, *, crs: CRS, transform: Affine, width: int, height: int, count: int = 3
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.count = width, height, count
        self.valid_pixels = 0
        self._ds: DatasetWriter = rasterio.open(
            self.path, "w", driver="GTiff", width=width, height=height, count=count, dtype="float32",
            crs=crs, transform=transform, nodata=float("nan"), tiled=False, blockysize=16, **_SCRATCH_OPTIONS,
        )

    def write(self, window: Window, unit: np.ndarray) -> None:
        """Write ``(count, h, w)`` values in [0, 1] (NaN = nodata) at ``window`` (pixels of this raster)."""
        unit = np.asarray(unit, dtype=np.float32)
        if unit.ndim == 2:
            unit = unit[None]
        valid = np.isfinite(unit).all(axis=0)
        unit = np.where(valid[None], unit, np.float32(np.nan))
        self.valid_pixels += int(valid.sum())
        self._ds.write(unit, window=window)

    def close(self) -> None:
        if not self._ds.closed:
            self._ds.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_block(unit: np.ndarray, dtype: OutputDType) -> tuple[np.ndarray, np.ndarray]:
    """Unit values ``(C, h, w)`` (NaN = nodata) -> ``(data in dtype, mask uint8 255 = valid)``.

    A pixel is valid only where every band is finite; invalid pixels are 0 (uint8) or NaN
    (float32) in every band.
    """
    unit = np.asarray(unit, dtype=np.float32)
    valid = np.isfinite(unit).all(axis=0)
    mask = np.where(valid, np.uint8(255), np.uint8(0))
    if dtype == "uint8":
        data = np.round(np.clip(np.nan_to_num(unit, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
        data[:, ~valid] = 0
    elif dtype == "float32":
        data = np.clip(unit, 0.0, 1.0).astype(np.float32)
        data[:, ~valid] = np.nan
    else:
        raise ConfigError(f"output dtype must be 'uint8' or 'float32', got {dtype!r}")
    return data, mask


def _read_unit(src: DatasetReader, window: Window) -> np.ndarray:
    """Read ``window`` as float32 with NaN where the source is invalid (nodata, mask or alpha)."""
    data = src.read(window=window, out_dtype="float32")
    if any(MaskFlags.nodata in f or MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in src.mask_flag_enums):
        masks = src.read_masks(window=window)
        data[masks == 0] = np.nan
    return data


def write_cog(
    src: DatasetReader,
    dst: str | os.PathLike,
    *,
    dtype: OutputDType = "uint8",
    band_names: Sequence[str] = ("red", "green", "blue"),
    tags: Mapping[str, Any] | None = None,
    compress: Literal["DEFLATE", "ZSTD"] = "DEFLATE",
    scratch_dir: str | os.PathLike | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    crs: CRS | None = None,
) -> int:
    """Encode ``src`` (unit values, NaN = nodata; a scratch raster or a ``WarpedVRT``) to a COG at ``dst``.

    ``crs``: the CRS written (default ``src.crs``; a warp across the antimeridian runs in a
    ``+lon_wrap`` variant of the output's geographic CRS, which is written as the plain one).

    ``dst`` is written directly (callers pass the temporary name from
    :func:`sar2opt_geo.io.atomic.atomic_outputs`). The intermediate tiled GTiff goes to
    ``scratch_dir`` (default: beside ``dst``) and is removed. Returns the number of valid
    output pixels.
    """
    dst = Path(dst)
    scratch = Path(scratch_dir or dst.parent) / f".{dst.stem}.encode-{os.getpid()}.tif"
    count, width, height = src.count, src.width, src.height
    profile = dict(
        driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs or src.crs,
        transform=src.transform, tiled=True, blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE, **_SCRATCH_OPTIONS,
    )
    if dtype == "float32":
        profile["nodata"] = float("nan")
    valid_pixels = 0
    col_step = BLOCK_SIZE * max(1, 4096 // BLOCK_SIZE)  # 512 rows x 4096 cols per read: bounded memory
    n_rows = math.ceil(height / BLOCK_SIZE)
    try:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(scratch, "w", **profile) as out:
                # colour interpretation before any pixel is written: GDAL cannot change the TIFF
                # PhotometricInterpretation tag once strips/tiles exist
                out.colorinterp = [_COLORS.get(n.lower(), ColorInterp.undefined) for n in band_names]
                for i, row in enumerate(range(0, height, BLOCK_SIZE)):
                    for col in range(0, width, col_step):
                        if cancel is not None and cancel():
                            raise CancelledError(f"{dst}: cancelled while writing; nothing was written")
                        win = Window(col_off=col, row_off=row, width=min(col_step, width - col),
                                     height=min(BLOCK_SIZE, height - row))
                        data, mask = encode_block(_read_unit(src, win), dtype)
                        valid_pixels += int((mask > 0).sum())
                        out.write(data, window=win)
                        if dtype == "uint8":
                            out.write_mask(mask, window=win)
                    if progress is not None:
                        progress((i + 1) / n_rows * 0.8, "encoding")
                for b, name in enumerate(band_names, start=1):
                    out.set_band_description(b, name)
                if tags:
                    out.update_tags(**{k: _tag(v) for k, v in tags.items()})
            options: dict[str, Any] = {"driver": "COG", "compress": compress, "blocksize": BLOCK_SIZE,
                                           "overview_resampling": "average", "bigtiff": "IF_SAFER"}
            options["predictor"] = "YES" if dtype == "uint8" else "FLOATING_POINT"
            rio_copy(str(scratch), str(dst), **options)
        if progress is not None:
            progress(1.0, "written")
    finally:
        for p in (scratch, scratch.with_name(scratch.name + ".aux.xml")):
            if p.exists():
                p.unlink()
    return valid_pixels


def _tag(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
