"""Calibrated values -> the model's input domain, as the checkpoint's card says.

The arithmetic lives in :mod:`sar2opt_geo.normalize` (shared with training); this
module decides which rule applies and computes the scene statistics the rules need:

* ``"db_clip"``: linear power -> dB -> clipped to ``card.input.db_range`` -> [-1, 1].
* ``"percentile"``: linear values / the scene's ``card.input.percentile``-th percentile over
  valid (finite, positive) pixels, clipped to [0, 1], quantised to ``quantize_levels`` if
  the card says so, -> [-1, 1].
* gray models (``quantity="gray"``): each of the ``gray_from`` bands / its own scene
  percentile, clipped to [0, 1], weighted sum (``gray_weights``), quantised, -> [-1, 1].

Scene percentiles are computed by :func:`scene_percentile` in one streaming pass over
windows of the scene's *native* grid (calibrated values, before resampling and before any
speckle filter), with a log-spaced histogram: memory is constant and the scene is never
loaded whole. Scenes larger than ``max_pixels`` are sampled by reading every k-th block;
when that sample holds fewer than ``MIN_SAMPLE_PIXELS`` valid pixels (a sparse mosaic whose
only data is a small patch between the sampled blocks) the other blocks are read as well, so
the statistics find the data instead of reporting "holds only nodata".
The relative error of the histogram percentile is below 0.3 % (bin width 0.58 %).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from ..errors import CancelledError, ConfigError, NoValidDataError
from ..models.card import InputDomain
from ..normalize import (
    GRAY_WEIGHTS,
    db_clip_to_unit,
    percentile_to_unit,
    quantize_unit,
    unit_to_model,
)
from ..radiometry import to_db
from .histogram import StreamingHistogram

__all__ = [
    "HIST_BINS",
    "HIST_LOG10_RANGE",
    "MIN_SAMPLE_PIXELS",
    "Normaliser",
    "clear_statistics_cache",
    "make_normaliser",
    "scene_percentile",
]

log = logging.getLogger(__name__)

HIST_LOG10_RANGE = (-12.0, 8.0)  # log10 of the values the histogram resolves (power 1e-12 .. DN 1e8)
HIST_BINS = 8000  # 0.0025 decades per bin: 0.58 % relative bin width
DEFAULT_MAX_PIXELS = 1 << 24  # about 16.8 Mpx read at most for statistics
STATS_BLOCK = 512  # pixels per side of a statistics read
#: A block sample with fewer valid pixels than this is completed by reading the other blocks (sparse scenes).
MIN_SAMPLE_PIXELS = 1024
_CACHE_SIZE = 64
# Scene percentiles by (caller's scene key, band, q, max_pixels): crops of one scene (AOI batches)
# share the full scene's statistics without reading it again in the same process.
_PERCENTILES: dict[tuple, tuple[float, int]] = {}


def clear_statistics_cache() -> None:
    """Forget the scene percentiles remembered by :func:`make_normaliser` (``cache_key``)."""
    _PERCENTILES.clear()


@dataclass(frozen=True)
class Normaliser:
    """Maps calibrated linear values ``(C, h, w)`` (C = len(bands)) to the model input ``(in_C, h, w)`` in [-1, 1].

    NaN (nodata) in any source band gives NaN in the output at that pixel.
    """

    domain: InputDomain
    bands: tuple[str, ...]  # scene bands, in the order of the input array
    scales: tuple[float, ...] | None = None  # per-band scene percentile (linear units), for "percentile"
    gray_weights: tuple[float, ...] | None = None  # combine the bands to one gray band with these weights
    valid_pixels: int | None = None  # fewest valid pixels the statistics of a band were computed from

    def __call__(self, linear: np.ndarray) -> np.ndarray:
        x = np.asarray(linear, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        d = self.domain
        if d.normalisation == "db_clip":
            lo, hi = d.db_range  # type: ignore[misc]
            unit = quantize_unit(db_clip_to_unit(to_db(x), lo, hi), d.quantize_levels)
            nan = ~np.isfinite(x)
            unit[nan] = np.nan
        elif self.gray_weights is not None:
            parts = percentile_to_unit(x, np.asarray(self.scales, dtype=np.float32), quantize_levels=None)
            w = np.asarray(self.gray_weights, dtype=np.float32).reshape(-1, 1, 1)
            unit = quantize_unit((parts * w).sum(axis=0, keepdims=True), d.quantize_levels)
        else:
            unit = percentile_to_unit(x, np.asarray(self.scales, dtype=np.float32), quantize_levels=d.quantize_levels)
        return np.asarray(unit_to_model(unit), dtype=np.float32)

    def describe(self) -> str:
        """One line for logs and output tags."""
        d = self.domain
        if d.normalisation == "db_clip":
            return f"dB clipped to {tuple(d.db_range or ())} -> [-1, 1]"
        scales = ", ".join(f"{b}={s:.6g}" for b, s in zip(self.bands, self.scales or ()))
        gray = f", gray = sum({self.gray_weights} x band)" if self.gray_weights else ""
        q = f", quantised to {d.quantize_levels} levels" if d.quantize_levels else ""
        return f"linear / scene p{d.percentile:g} ({scales}), clipped to [0, 1]{gray}{q} -> [-1, 1]"


def scene_percentile(
    read: Callable[[Window], np.ndarray],
    height: int,
    width: int,
    q: float,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    block: int = STATS_BLOCK,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
    min_sample: int = MIN_SAMPLE_PIXELS,
) -> tuple[float, int]:
    """Streaming ``q``-th percentile of the finite, positive values a raster holds.

    ``read(window) -> 2-D float32`` reads one band of a ``height`` x ``width`` raster (NaN
    = nodata). Returns ``(percentile, valid_pixels_seen)``; raises
    :class:`NoValidDataError` (without a file name; callers add it) when no valid pixel
    was seen. Blocks are ``block`` pixels square; if the raster has more than
    ``max_pixels`` pixels only every k-th block is read (k = ceil(pixels / max_pixels)),
    unless that sample holds fewer than ``min_sample`` valid pixels: then the other blocks
    are read too (a sparse scene; ``progress`` stays at 1 and its message counts those blocks).
    ``min_sample=0`` keeps the sample as it is (the caller has another way out).
    """
    if not 0.0 <= q <= 100.0:
        raise ConfigError(f"percentile must be within 0..100, got {q}")
    windows = [
        Window(col_off=c, row_off=r, width=min(block, width - c), height=min(block, height - r))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]
    step = max(1, math.ceil(height * width / max_pixels))
    chosen = windows[step // 2 :: step] if step > 1 else windows
    if step > 1:
        log.info("scene statistics from %d of %d blocks (%d x %d px)", len(chosen), len(windows), block, block)
    hist = StreamingHistogram(*HIST_LOG10_RANGE, HIST_BINS, log10=True)

    def stream(blocks: list[Window], extra: bool) -> None:
        for i, win in enumerate(blocks):
            if cancel is not None and cancel():
                raise CancelledError("cancelled while computing scene statistics; nothing was written")
            hist.add(read(win))
            if progress is not None and not extra:
                progress((i + 1) / len(blocks), "scene statistics")
            elif progress is not None:  # the fraction stays at 1 (progress never goes back); the message counts
                progress(1.0, f"scene statistics: sparse scene, reading the other blocks ({i + 1}/{len(blocks)})")

    stream(chosen, extra=False)
    if step > 1 and hist.total < min_sample:
        start = step // 2
        rest = [w for i, w in enumerate(windows) if i < start or (i - start) % step]
        log.info("scene statistics: the %d sampled blocks held %d valid pixels (a sparse scene); reading the "
                 "other %d blocks", len(chosen), hist.total, len(rest))
        stream(rest, extra=True)
    return hist.percentile(q), hist.total


def make_normaliser(
    domain: InputDomain,
    bands: Sequence[str],
    read_band: Callable[[str, Window], np.ndarray] | None = None,
    height: int = 0,
    width: int = 0,
    *,
    gray: bool = False,
    gray_weights: Sequence[float] | None = None,
    source: str | os.PathLike = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
    cache_key: Hashable | None = None,
    min_sample: int = MIN_SAMPLE_PIXELS,
) -> Normaliser:
    """Build the :class:`Normaliser` for ``bands``, computing scene percentiles when the card needs them.

    ``read_band(band, window)`` reads calibrated values of the native grid (``height`` x
    ``width``). With ``gray=True`` the bands are combined into one gray band with
    ``gray_weights`` (default: the card's, else BT.601 luma for 3 bands, else equal).
    ``cache_key`` (anything hashable that identifies the scene *and* its calibration, e.g.
    path, modification time and calibration options) lets later calls for the same scene
    reuse its percentiles (in this process). ``min_sample``: see :func:`scene_percentile` (a
    sampled pass with fewer valid pixels reads every block; 0 keeps the sample).
    """
    bands = tuple(bands)
    weights: tuple[float, ...] | None = None
    if gray and len(bands) > 1:
        w = gray_weights or domain.gray_weights or (GRAY_WEIGHTS if len(bands) == 3 else [1.0 / len(bands)] * len(bands))
        if len(w) != len(bands):
            raise ConfigError(f"{len(w)} gray weights for {len(bands)} bands {bands}")
        weights = tuple(float(v) for v in w)
    if domain.normalisation == "db_clip":
        return Normaliser(domain, bands)
    q = float(domain.percentile if domain.percentile is not None else 99.0)
    scales, counts = [], []
    for k, band in enumerate(bands):
        def sub(f: float, msg: str, k: int = k) -> None:
            if progress is not None:
                progress((k + f) / len(bands), msg)

        key = (cache_key, band, q, max_pixels, min_sample) if cache_key is not None else None
        if key is not None and key in _PERCENTILES:
            value, n = _PERCENTILES[key]
            scales.append(value)
            counts.append(n)
            log.debug("%s: scene p%g of %s from cache", source, q, band)
            continue
        assert read_band is not None, "percentile normalisation needs read_band"

        def read(w: Window, b: str = band) -> np.ndarray:
            return read_band(b, w)

        try:
            value, n = scene_percentile(read, height, width, q,
                                        max_pixels=max_pixels, cancel=cancel, progress=sub, min_sample=min_sample)
        except NoValidDataError:
            raise NoValidDataError(f"{source}: band {band} holds only nodata (no finite, positive value); "
                                   "check the input file, its nodata value and the calibration") from None
        log.info("%s: scene p%g of %s = %.6g (%d valid pixels sampled)", source, q, band, value, n)
        scales.append(value)
        counts.append(n)
        if key is not None:
            if len(_PERCENTILES) >= _CACHE_SIZE:
                _PERCENTILES.pop(next(iter(_PERCENTILES)))
            _PERCENTILES[key] = (value, n)
    return Normaliser(domain, bands, tuple(scales), weights, min(counts) if counts else None)
