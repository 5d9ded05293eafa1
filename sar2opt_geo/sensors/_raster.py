"""Small helpers the readers share: a lazily opened rasterio dataset and nodata masking.

Readers never read a whole scene at open time; they keep one :class:`LazyDataset` per
band file and read windows from it on demand.
"""

from __future__ import annotations

import logging
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

try:  # GDAL errors rasterio raises as they are (CPLE_*), not wrapped in a RasterioError
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - private module moved
    CPLE_BaseError = RasterioError

from ..errors import InputError

__all__ = [
    "GDAL_ERRORS",
    "LazyDataset",
    "check_readable",
    "complex_power",
    "full_window",
    "looks_like_tiff",
    "open_raster",
    "parse_xml",
    "read_error",
    "sample_values",
    "to_float",
]

log = logging.getLogger(__name__)


_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic TIFF and BigTIFF, both byte orders


def looks_like_tiff(path: str) -> bool:
    """True if ``path`` is a local file starting with a TIFF or BigTIFF signature."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _TIFF_MAGIC
    except OSError:
        return False


def parse_xml(data: bytes | str, source: str) -> ET.Element:
    """The root element of the XML document ``data`` read from ``source`` (a file name for messages).

    A truncated or junk file is one :class:`InputError` naming ``source`` and the parser's
    position, not an ``xml.etree.ElementTree.ParseError`` traceback.
    """
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{source}: not well-formed XML ({exc}); the file is truncated or damaged: "
                         "download or unpack the product again") from None


def open_raster(path: str):
    """``rasterio.open`` without the not-georeferenced warning; :class:`InputError` if GDAL cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except (RasterioIOError, CPLE_BaseError) as exc:
        if path.startswith(("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/")):
            raise InputError(f"{path}: GDAL cannot open it ({_gdal_detail(exc)}); check the URL, the network and that "
                             "the server answers HTTP range requests (object stores and COG hosts do)") from None
        if looks_like_tiff(path):
            raise InputError(f"{path}: a TIFF file GDAL cannot open ({_gdal_detail(exc)}); the file is truncated or "
                             "damaged: download or export it again") from None
        raise InputError(f"{path}: GDAL cannot open it ({_gdal_detail(exc)}); check the path and that the file is complete") from None


GDAL_ERRORS = (RasterioError, CPLE_BaseError)  # what rasterio raises when GDAL fails


def _gdal_detail(exc: BaseException) -> str:
    """GDAL's own message for ``exc``, on one line (rasterio puts it on the cause of "Read failed ...")."""
    cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__) else exc
    return " ".join(str(cause).split()) or type(exc).__name__


def read_error(path: str, exc: BaseException, what: str = "its pixels") -> InputError:
    """The one-line :class:`InputError` for a file GDAL opened but could not read (truncated, damaged)."""
    return InputError(
        f"{path}: GDAL cannot read {what} ({_gdal_detail(exc)}); the file is truncated or damaged: "
        "download or export it again"
    )


def check_readable(ds, path: str) -> None:
    """Read the last block of every band of ``ds``: a truncated file fails here, at open time, not mid-run.

    Truncation cuts the end of a file, where the last blocks lie (GDAL's COG and GTiff writers put
    full-resolution blocks last); one block per band is read, so this is cheap even for whole scenes.
    """
    for bidx in range(1, ds.count + 1):
        bh, bw = ds.block_shapes[bidx - 1]
        row, col = (ds.height - 1) // max(1, bh), (ds.width - 1) // max(1, bw)
        win = Window(col_off=col * bw, row_off=row * bh, width=min(bw, ds.width - col * bw),
                     height=min(bh, ds.height - row * bh))
        try:
            ds.read(bidx, window=win)
        except GDAL_ERRORS as exc:
            raise read_error(path, exc, f"band {bidx}") from None


class LazyDataset:
    """A rasterio dataset opened on first use, kept open, read under a lock (one reader thread at a time)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ds = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # picklable (e.g. sent to a Dask worker): reopen there on first read
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        LazyDataset.__init__(self, state["path"])

    @property
    def dataset(self):
        if self._ds is None or self._ds.closed:
            self._ds = open_raster(self.path)
        return self._ds

    def read(self, bidx: int, window: Window | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw values of band ``bidx`` in ``window`` and, if the file has a real mask, that mask (True = valid)."""
        with self._lock:
            ds = self.dataset
            try:
                raw = ds.read(bidx, window=window)
                flags = ds.mask_flag_enums[bidx - 1]
                mask = None
                if MaskFlags.per_dataset in flags or MaskFlags.alpha in flags:
                    mask = ds.read_masks(bidx, window=window) > 0
            except GDAL_ERRORS as exc:
                where = f"band {bidx}" + (f", window {_window_text(window)}" if window is not None else "")
                raise read_error(self.path, exc, where) from None
            return raw, mask

    def close(self) -> None:
        with self._lock:
            if self._ds is not None:
                self._ds.close()
                self._ds = None


def _window_text(w: Window) -> str:
    return f"cols {int(w.col_off)}..{int(w.col_off + w.width)}, rows {int(w.row_off)}..{int(w.row_off + w.height)}"


def complex_power(raw: np.ndarray) -> np.ndarray:
    """Intensity ``|z|^2 = re^2 + im^2`` (linear power, float32) of complex samples (SLC)."""
    re, im = raw.real.astype(np.float32), raw.imag.astype(np.float32)
    return re * re + im * im


def to_float(raw: np.ndarray, nodata: Iterable[float | None] = (), mask: np.ndarray | None = None) -> np.ndarray:
    """``raw`` as float32 with NaN where it equals any of ``nodata`` or where ``mask`` is False.

    Complex ``raw`` (SLC samples) becomes its intensity ``|z|^2`` (:func:`complex_power`): a
    plain cast would silently drop the imaginary part. ``nodata`` is compared with the complex
    values themselves (a real nodata value ``v`` matches ``v + 0j``).
    """
    out = complex_power(raw) if np.iscomplexobj(raw) else raw.astype(np.float32)
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
