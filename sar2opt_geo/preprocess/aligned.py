"""Reading a scene in fixed, aligned row blocks: the same pixels whatever asks for them.

GDAL's warper gives last-bit (or, next to nodata, larger) differences for the same pixel when it
is asked for different windows. Every translate therefore reads its calibrated, resampled source
through :func:`aligned_reader`, in full-width blocks of :data:`READ_BLOCK_ROWS` rows starting at
multiples of it, so a plain translate, a tiling of any size and a row band of the scene
(:mod:`sar2opt_geo.translation.rowbands`) see identical input;
:func:`sar2opt_geo.translation.band_rows.source_rows` says which rows a band reads.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError

__all__ = ["READ_BLOCK_ROWS", "aligned_reader"]

#: Rows of the model grid per source read (blocks aligned to multiples of it). Fixed, so that a
#: pixel is read and resampled the same way whatever tiling or band asks for it.
READ_BLOCK_ROWS = 256


def aligned_reader(read: Callable[[Window], np.ndarray], height: int, width: int, tile_size: int,
                   block_rows: int = READ_BLOCK_ROWS) -> Callable[[Window], np.ndarray]:
    """``read`` wrapped so that the source is only ever asked for full-width blocks of
    ``block_rows`` rows starting at multiples of ``block_rows`` (the last one shorter).

    Requests are cut out of those blocks; the last few blocks are kept (enough for one tile of
    ``tile_size`` rows plus the engine's look-back at the bottom edge), so each block is
    usually read once. Returns ``(C, h, w)`` float32 copies.
    """
    keep = math.ceil(tile_size / block_rows) + 2
    cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def block(k: int) -> np.ndarray:
        if k in cache:
            cache.move_to_end(k)
            return cache[k]
        r0 = k * block_rows
        a = np.asarray(read(Window(col_off=0, row_off=r0, width=width, height=min(block_rows, height - r0))),
                       dtype=np.float32)
        cache[k] = a if a.ndim == 3 else a[None]
        while len(cache) > keep:
            cache.popitem(last=False)
        return cache[k]

    def aligned(window: Window) -> np.ndarray:
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
            raise ConfigError(f"window {window} lies outside the {width} x {height} px source")
        k0, k1 = r0 // block_rows, (r1 - 1) // block_rows
        parts = [block(k) for k in range(k0, k1 + 1)]
        a = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        off = k0 * block_rows
        return np.array(a[:, r0 - off : r1 - off, c0:c1], dtype=np.float32, copy=True)

    return aligned
