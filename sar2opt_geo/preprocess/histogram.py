"""One streaming histogram for scene statistics: fixed bins, filled window by window, percentiles from the CDF.

Used for the scene percentiles of the model's input domain (:mod:`.domain`, log10 bins of
linear power or DN) and for the percentile stretches of composites
(:mod:`sar2opt_geo.experiment.composite`, linear bins of dB or luminance). Memory is constant
whatever the scene size; the scene is never loaded whole.

Two ways to read a percentile off the bins:

* ``method="linear"``: numpy's default rule (rank ``q/100 * (n - 1)``), interpolated inside
  the bin and clamped to the exact minimum and maximum seen; the relative error is below
  the bin width (0.58 % for the domain's 0.0025-decade bins).
* ``method="bin_centre"``: the centre of the bin holding the ``q/100 * n``-th value (a
  display stretch, where 0.01 dB bins are exact enough).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..errors import NoValidDataError

__all__ = ["StreamingHistogram"]


class StreamingHistogram:
    """Counts of finite values in ``bins`` equal bins over ``[lo, hi)`` (of ``log10(value)`` with ``log10``).

    Values outside the range fall into the first or last bin; with ``log10`` only positive
    values count (zero and negative linear power or DN are nodata).
    """

    def __init__(self, lo: float, hi: float, bins: int, *, log10: bool = False) -> None:
        self.lo, self.hi, self.bins, self.log10 = float(lo), float(hi), int(bins), log10
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.vmin, self.vmax = math.inf, -math.inf

    @property
    def total(self) -> int:
        """Values counted so far."""
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count the finite (and, with ``log10``, positive) values of ``values``."""
        a = np.asarray(values, dtype=np.float32)
        v = a[np.isfinite(a) & (a > 0)] if self.log10 else a[np.isfinite(a)]
        if not v.size:
            return
        self.vmin, self.vmax = min(self.vmin, float(v.min())), max(self.vmax, float(v.max()))
        x = np.log10(v) if self.log10 else v
        idx = ((x - self.lo) / (self.hi - self.lo) * self.bins).astype(np.int64)
        self.counts += np.bincount(np.clip(idx, 0, self.bins - 1), minlength=self.bins)

    def percentile(self, q: float, method: Literal["linear", "bin_centre"] = "linear") -> float:
        """The ``q``-th percentile (0..100) of the values counted (see the module docstring for ``method``).

        Raises :class:`NoValidDataError` (without a file name; callers add it) when nothing was counted.
        """
        n = self.total
        if n == 0:
            raise NoValidDataError("no valid pixel")
        width = (self.hi - self.lo) / self.bins
        cum = np.cumsum(self.counts)
        if method == "bin_centre":
            k = int(np.searchsorted(cum, q / 100.0 * n, side="left"))
            return self.lo + (min(k, self.bins - 1) + 0.5) * width
        rank = q / 100.0 * (n - 1)
        i = min(int(np.searchsorted(cum, rank, side="right")), self.bins - 1)
        before = cum[i - 1] if i > 0 else 0
        frac = (rank - before + 0.5) / max(int(self.counts[i]), 1)
        x = self.lo + (i + min(max(frac, 0.0), 1.0)) * width
        value = 10.0 ** x if self.log10 else x
        return float(min(max(value, self.vmin), self.vmax))
