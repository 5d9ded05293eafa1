"""Uncertainty by repeated stochastic inference: the mean of N sweeps and its per-pixel spread.

``translate(..., samples=N)`` (``--samples N``, N > 1) runs the article's stochastic mode
(dropout on, :func:`sar2opt_geo.engine.run_tiled` with ``stochastic=True``) N times over
the same plan, with seeds ``seed, seed + 1, ..., seed + N - 1``. Every sweep is a complete,
blended tiled run, so each one is seamless in the way a single run is; nothing about the
tiling changes between sweeps. The sweeps stream into a :class:`SampleStack`, which keeps,
per pixel, on disk in the product's scratch folder (``numpy`` memory maps, float32):

* the running mean of the unit RGB ``(y + 1) / 2`` (Welford's update, ``m += (x - m) / k``);
* the running mean and sum of squared deviations (``M2``) of its luminance
  ``L = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601; one band: that band; otherwise the band mean).

Welford's update instead of sums of ``x`` and ``x**2``: in float32, ``E[x**2] - E[x]**2``
cancels catastrophically for small spreads; the update is exact when every sample is equal
(the mean is then the single run's value bit for bit and the spread exactly 0).

At the end :meth:`SampleStack.emit` hands the mean to the normal product writer (so the
mean RGB is written like any translation: COG, mask, tags) and the **spread**, the sample
standard deviation (``ddof=1``) of the luminance, to a second product on the same grid:
``<OUTPUT stem>_spread.tif``, float32 COG, NaN nodata, one band ``luminance_std``. Memory is
bounded: the engine's row blocks update the memory maps window by window, and the emit pass
reads them back in row blocks; the scratch files are removed with the work folder.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError, InputError
from ..progress import ProgressFn

__all__ = ["LUMA_WEIGHTS", "SPREAD_BAND", "SampleStack", "luminance", "open_samples", "sample_seeds", "spread_path"]

#: ITU-R BT.601 luma weights of red, green, blue.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Band name (description) of the spread raster.
SPREAD_BAND = "luminance_std"
_EMIT_ROWS = 256  # rows per block when the mean and spread are written out


def spread_path(dst: str | os.PathLike) -> Path:
    """``<dst stem>_spread.tif`` beside ``dst``."""
    dst = Path(dst)
    return dst.with_name(f"{dst.stem}_spread{dst.suffix or '.tif'}")


def _check_scratch_space(folder: Path, nbytes: int) -> None:
    """Refuse before any work if ``folder`` has less free space than the sample stack's ``nbytes`` (+ 64 MB)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < nbytes + 64 * 2**20:
        raise InputError(
            f"{folder}: --samples needs {math.ceil(nbytes / 2**20)} MB of scratch space there, {free // 2**20} MB is free;"
            " free some space, use fewer pixels (a crop) or samples=1 (nothing was written)")


def _preallocated_memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 ``.npy`` memory map whose blocks are reserved on disk now (``posix_fallocate``):
    a disk that fills up later gives ENOSPC here, as one line, instead of a SIGBUS mid-run."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                del array
                raise InputError(f"{path.parent}: no space left on device while reserving the --samples scratch"
                                 f" {path.name}; free some space there or choose another output folder"
                                 " (nothing was written)") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # file systems without it: sparse
                raise
        finally:
            os.close(fd)
    return array


def sample_seeds(seed: int, samples: int) -> list[int]:
    """The dropout seeds of ``samples`` sweeps: ``seed .. seed + samples - 1``."""
    return [int(seed) + k for k in range(max(1, int(samples)))]


def luminance(unit: np.ndarray) -> np.ndarray:
    """Luminance of ``(C, h, w)`` unit values: BT.601 for 3 bands, the band itself for 1, else the band mean."""
    unit = np.asarray(unit, dtype=np.float32)
    if unit.shape[0] == 3:
        r, g, b = (np.float32(w) for w in LUMA_WEIGHTS)
        return (r * unit[0] + g * unit[1] + b * unit[2]).astype(np.float32)
    if unit.shape[0] == 1:
        return unit[0]
    return unit.mean(axis=0, dtype=np.float32)


class SampleStack:
    """Running per-pixel statistics of N sweeps on a ``height`` x ``width`` grid (see the module docstring).

    Call :meth:`begin` before each sweep, :meth:`write` with every block of that sweep
    (each pixel once per sweep; NaN = nodata), then :meth:`emit` once.
    """

    def __init__(self, work: str | os.PathLike, height: int, width: int, count: int, samples: int) -> None:
        if samples < 2:
            raise ConfigError(f"a sample stack needs at least 2 samples, got {samples}")
        self.height, self.width, self.count, self.samples = int(height), int(width), int(count), int(samples)
        work = Path(work)
        self.paths = [work / f"samples-{name}-{os.getpid()}.npy" for name in ("mean", "lmean", "lm2")]
        shape3, shape1 = (self.count, self.height, self.width), (self.height, self.width)
        _check_scratch_space(work, 4 * (self.count + 2) * self.height * self.width)
        self._mean = _preallocated_memmap(self.paths[0], shape3)
        self._lmean = _preallocated_memmap(self.paths[1], shape1)
        self._lm2 = _preallocated_memmap(self.paths[2], shape1)
        self.k = 0  # sweeps begun

    def begin(self, index: int) -> None:
        """Start sweep ``index`` (0-based, in order)."""
        if index != self.k:
            raise ConfigError(f"sweep {index} begun after {self.k} sweeps")
        self.k = index + 1

    def write(self, window: Window, unit: np.ndarray) -> None:
        """Add the block ``unit`` ``(count, h, w)`` of the current sweep at ``window`` (pixels of the grid)."""
        if self.k == 0:
            raise ConfigError("SampleStack.write before begin()")
        unit = np.asarray(unit, dtype=np.float32)
        r0, c0 = int(window.row_off), int(window.col_off)
        rs, cs = slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width))
        k = np.float32(self.k)
        mean = self._mean[:, rs, cs]  # views of the memory maps, updated in place
        mean += (unit - mean) / k  # k = 1: exactly the first sample
        lum = luminance(unit)
        lmean, lm2 = self._lmean[rs, cs], self._lm2[rs, cs]
        delta = lum - lmean
        lmean += delta / k
        lm2 += delta * (lum - lmean)

    def spread(self, rows: slice) -> np.ndarray:
        """Sample standard deviation (``ddof=1``) of the luminance in ``rows``, ``(h, width)`` float32, NaN = nodata."""
        m2 = np.maximum(np.asarray(self._lm2[rows], dtype=np.float32), np.float32(0.0))
        return np.sqrt(m2 / np.float32(self.samples - 1)).astype(np.float32)

    def emit(self, product: Any, spread_product: Any, progress: ProgressFn | None = None,
             cancel: Callable[[], bool] | None = None) -> None:
        """Write the mean into ``product`` and the spread into ``spread_product``, row block by row block."""
        from ..errors import CancelledError

        if self.k != self.samples:
            raise ConfigError(f"{self.k} of {self.samples} sweeps were run")
        for r0 in range(0, self.height, _EMIT_ROWS):
            if cancel is not None and cancel():
                raise CancelledError("cancelled while writing the sample mean; nothing was written")
            rows = slice(r0, min(self.height, r0 + _EMIT_ROWS))
            window = Window(col_off=0, row_off=r0, width=self.width, height=rows.stop - r0)
            mean = np.array(self._mean[:, rows], dtype=np.float32)
            spread = self.spread(rows)
            spread[~np.isfinite(mean).all(axis=0)] = np.nan
            product.write(window, mean)
            spread_product.write(window, spread[None])
            if progress is not None:
                progress(rows.stop / self.height, "writing mean and spread")

    def close(self) -> None:
        """Drop the memory maps and their files."""
        for name in ("_mean", "_lmean", "_lm2"):
            arr = getattr(self, name, None)
            if arr is not None:
                mm = getattr(arr, "_mmap", None)
                if mm is not None:
                    mm.close()
                setattr(self, name, None)
        for p in self.paths:
            with contextlib.suppress(OSError):
                p.unlink()


class SampleProduct:
    """The spread product and its sample stack, as :func:`open_samples` yields them."""

    def __init__(self, stack: SampleStack, product: Any) -> None:
        self.stack, self.product = stack, product
        self.path = product.dst

    def begin(self, index: int) -> None:
        self.stack.begin(index)

    def write(self, window: Window, unit: np.ndarray) -> None:
        self.stack.write(window, unit)

    def emit(self, product: Any, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None) -> None:
        self.stack.emit(product, self.product, progress, cancel)

    def tags(self) -> dict[str, str]:
        """What the spread raster holds, for its GeoTIFF tags."""
        n = self.stack.samples
        return {"SAR2OPT_SPREAD": f"sample standard deviation (ddof=1) over {n} stochastic runs of the BT.601 "
                                  "luminance 0.299 R + 0.587 G + 0.114 B of the unit RGB (y + 1) / 2",
                "SAR2OPT_SPREAD_OF": str(self.path.with_name(self.path.name.replace("_spread", "", 1)).name)}

    def finish(self, *, tags: dict[str, str], final: Any = None, resampling: str = "bilinear",
               progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None) -> int:
        """Encode the spread COG (float32, NaN nodata), warped onto ``final`` if given; returns its valid pixels."""
        self.stack.close()
        return self.product.finish(dtype="float32", band_names=(SPREAD_BAND,), tags=tags, final=final,
                                   resampling=resampling, progress=progress, cancel=cancel)


@contextlib.contextmanager
def open_samples(dst: str | os.PathLike, grid: Any, count: int, samples: int, *, clip: Any = None,
                 overwrite: bool = True) -> Iterator[SampleProduct | None]:
    """The spread product ``<dst stem>_spread.tif`` on ``grid`` with a :class:`SampleStack` of ``samples``
    sweeps of ``count`` bands; yields None when ``samples`` is 1 (nothing to do). Atomic like
    :func:`sar2opt_geo.io.open_product`: renamed into place when the block succeeds, removed otherwise."""
    if samples <= 1:
        yield None
        return
    from ..io import open_product

    with open_product(spread_path(dst), grid, 1, clip=clip, overwrite=overwrite) as product:
        stack = SampleStack(product.work, grid.height, grid.width, count, samples)
        try:
            yield SampleProduct(stack, product)
        finally:
            stack.close()
