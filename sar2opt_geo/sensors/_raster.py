"""Small helpers the readers share: a lazily opened rasterio dataset and nodata masking.

Readers never read a whole scene at open time; they keep one :class:`LazyDataset` per
band file and read windows from it on demand.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from ..errors import InputError

__all__ = ["LazyDataset", "full_window", "open_raster", "sample_values", "to_float"]

log = logging.getLogger(__name__)


def open_raster(path: str):
    """``rasterio.open`` without the not-georeferenced warning; :class:`InputError` if GDAL cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: GDAL cannot open it ({exc}); check the path and that the file is complete") from exc


class LazyDataset:
    """A rasterio dataset opened on first use, kept open, read under a lock (one reader thread at a time)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ds = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # picklable (e.g. sent to a Dask worker): reopen there on first read
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    @property
    def dataset(self):
        if self._ds is None or self._ds.closed:
            self._ds = open_raster(self.path)
        return self._ds

    def read(self, bidx: int, window: Window | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw values of band ``bidx`` in ``window`` and, if the file has a real mask, that mask (True = valid)."""
        with self._lock:
            ds = self.dataset
            raw = ds.read(bidx, window=window)
            flags = ds.mask_flag_enums[bidx - 1]
            mask = None
            if MaskFlags.per_dataset in flags or MaskFlags.alpha in flags:
                mask = ds.read_masks(bidx, window=window) > 0
            return raw, mask

    def close(self) -> None:
        with self._lock:
            if self._ds is not None:
                self._ds.close()
                self._ds = None


def to_float(raw: np.ndarray, nodata: Iterable[float | None] = (), mask: np.ndarray | None = None) -> np.ndarray:
    """``raw`` as float32 with NaN where it equals any of ``nodata`` or where ``mask`` is False."""
    out = raw.astype(np.float32)
    invalid = np.zeros(raw.shape, dtype=bool)
    for value in nodata:
        if value is None:
            continue
        if np.isnan(value):
            invalid |= np.isnan(out)
        else:
            invalid |= raw == value
    if mask is not None:
        invalid |= ~mask
    out[invalid] = np.nan
    return out


def full_window(width: int, height: int) -> Window:
    return Window(col_off=0, row_off=0, width=width, height=height)


def sample_values(ds, bidx: int, size: int = 32) -> np.ndarray:
    """Up to 9 small windows (``size`` px) spread over band ``bidx``, flattened: a cheap look at the values."""
    out = []
    h, w = ds.height, ds.width
    for fy in (0.25, 0.5, 0.75):
        for fx in (0.25, 0.5, 0.75):
            win = Window(
                col_off=max(0, int(w * fx) - size // 2), row_off=max(0, int(h * fy) - size // 2),
                width=min(size, w), height=min(size, h),
            )
            out.append(ds.read(bidx, window=win).ravel())
    return np.concatenate(out)
