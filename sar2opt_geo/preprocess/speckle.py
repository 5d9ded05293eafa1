"""Lee speckle filter on linear power, window by window.

Lee (1980), multiplicative noise model: with local mean ``m`` and variance ``v`` over a
``size`` x ``size`` window, ``Ci^2 = v / m^2`` and the noise's ``Cu^2 = 1 / ENL``::

    k   = clip((1 - Cu^2 / Ci^2) / (1 + Cu^2), 0, 1)
    out = m + k * (x - m)

Homogeneous areas (``Ci <= Cu``) get the local mean, edges and point targets keep their
value. Apply it to **linear power** (sigma0), never to dB: the model is multiplicative in
power. NaN (nodata) pixels are left out of the local statistics and stay NaN. Windows at
the raster edge use the pixels that exist, so filtering a window read with
``size // 2`` pixels of context (:func:`filtered_read`) equals filtering the whole raster.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError

__all__ = ["DEFAULT_ENL", "filtered_read", "lee_filter"]

#: Equivalent number of looks of Sentinel-1 IW GRDH (ESA product specification: about 4.4).
DEFAULT_ENL = 4.4


def _box_sum(a: np.ndarray, size: int) -> np.ndarray:
    """Sum over a ``size`` x ``size`` window centred on each pixel, clipped at the array edges (float64)."""
    r = size // 2
    h, w = a.shape
    c = np.zeros((h + 1, w + 1), dtype=np.float64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=c[1:, 1:])
    rows, cols = np.arange(h), np.arange(w)
    r0, r1 = np.clip(rows - r, 0, h), np.clip(rows + r + 1, 0, h)
    c0, c1 = np.clip(cols - r, 0, w), np.clip(cols + r + 1, 0, w)
    return c[r1][:, c1] - c[r0][:, c1] - c[r1][:, c0] + c[r0][:, c0]


def lee_filter(power: np.ndarray, size: int = 7, enl: float = DEFAULT_ENL) -> np.ndarray:
    """Lee-filter a 2-D linear power array (float32, NaN = nodata) with a ``size`` x ``size`` window.

    ``size`` is in pixels (odd, >= 3); ``enl`` is the equivalent number of looks of the data.
    """
    if size < 3 or size % 2 == 0:
        raise ConfigError(f"speckle window must be an odd number of pixels >= 3, got {size}")
    if enl <= 0:
        raise ConfigError(f"equivalent number of looks must be positive, got {enl}")
    x = np.asarray(power, dtype=np.float32)
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0).astype(np.float64)
    n = _box_sum(valid.astype(np.float64), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _box_sum(x0, size) / n
        var = np.maximum(_box_sum(x0 * x0, size) / n - mean * mean, 0.0)
        cu2 = 1.0 / enl
        ci2 = var / (mean * mean)
        k = np.clip((1.0 - cu2 / ci2) / (1.0 + cu2), 0.0, 1.0)
    k = np.where(np.isfinite(k), k, 0.0)  # flat (var 0) or zero-mean neighbourhoods: the mean
    out = mean + k * (x0 - mean)
    return np.where(valid, out, np.nan).astype(np.float32)


def filtered_read(
    read: Callable[[Window], np.ndarray], window: Window, height: int, width: int, size: int, enl: float = DEFAULT_ENL
) -> np.ndarray:
    """Read ``window`` of a ``height`` x ``width`` raster with ``size // 2`` pixels of context and Lee-filter it.

    ``read(window) -> 2-D float32`` must accept any window inside the raster.
    """
    r = size // 2
    c0, r0 = int(window.col_off), int(window.row_off)
    c1, r1 = c0 + int(window.width), r0 + int(window.height)
    pc0, pr0 = max(0, c0 - r), max(0, r0 - r)
    pc1, pr1 = min(width, c1 + r), min(height, r1 + r)
    padded = read(Window(col_off=pc0, row_off=pr0, width=pc1 - pc0, height=pr1 - pr0))
    out = lee_filter(padded, size, enl)
    return out[r0 - pr0 : r0 - pr0 + (r1 - r0), c0 - pc0 : c0 - pc0 + (c1 - c0)]
