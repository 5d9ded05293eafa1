"""The streaming sweep of :func:`~sar2opt_geo.engine.inference.run_tiled` (see that module's docstring).

:class:`RowSource` reads full-width source rows once, :class:`Accumulator` sums weighted tile
outputs over the rows still open and writes the finished ones, :class:`TileSweep` walks the
tile rows, batches tiles, runs the model and blends.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rasterio.windows import Window

from ..errors import CancelledError, ConfigError
from .backends import Runner
from .blending import axis_weights
from .tiling import TileGrid, TilingConfig, reflect_index

__all__ = ["Accumulator", "ReadFn", "RowSource", "TileSweep", "WriteFn"]

ReadFn = Callable[[Window], np.ndarray]
WriteFn = Callable[[Window, np.ndarray], None]


class RowSource:
    """Full-width source rows from ``read``, keeping the last block so overlap rows are read once."""

    def __init__(self, read: ReadFn, height: int, width: int) -> None:
        self.read, self.height, self.width = read, height, width
        self.lo = self.hi = 0
        self.block: np.ndarray | None = None
        self.bands: int | None = None
        self.pixels_read = 0

    def _read(self, lo: int, hi: int) -> np.ndarray:
        window = Window(col_off=0, row_off=lo, width=self.width, height=hi - lo)
        a = np.asarray(self.read(window), dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1:] != (hi - lo, self.width) or (self.bands is not None and a.shape[0] != self.bands):
            bands = self.bands if self.bands is not None else "bands"
            raise ConfigError(
                f"read({window}) returned an array of shape {a.shape}; expected ({bands}, {hi - lo}, {self.width})"
            )
        self.bands = a.shape[0]
        self.pixels_read += (hi - lo) * self.width
        return a

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Source rows ``[lo, hi)`` (inside the raster), ``(bands, hi - lo, width)``."""
        if self.block is None or hi <= self.lo or lo >= self.hi:
            block = self._read(lo, hi)
        else:
            parts = []
            if lo < self.lo:
                parts.append(self._read(lo, self.lo))
            parts.append(self.block[:, max(lo, self.lo) - self.lo : min(hi, self.hi) - self.lo])
            if hi > self.hi:
                parts.append(self._read(self.hi, hi))
            block = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        self.lo, self.hi, self.block = lo, hi, block
        return block


class Accumulator:
    """Weighted sums for the scene rows still open, full scene width, and their emission.

    Only rows ``[start, height)`` are accumulated and written (``rows=`` of :func:`~sar2opt_geo.engine.inference.run_tiled`).
    """

    def __init__(self, height: int, width: int, write: WriteFn, start: int = 0) -> None:
        self.height, self.width, self.write = height, width, write
        self.base = start  # first scene row not yet written
        self.sums: np.ndarray | None = None  # (out bands, rows, width) float32
        self.weights = np.zeros((0, width), dtype=np.float32)

    def _ensure(self, stop: int, bands: int) -> None:
        if self.sums is None:
            self.sums = np.zeros((bands, self.weights.shape[0], self.width), dtype=np.float32)
        have = self.weights.shape[0]
        need = stop - self.base
        if need > have:
            grow = need - have
            self.sums = np.concatenate([self.sums, np.zeros((bands, grow, self.width), np.float32)], axis=1)
            self.weights = np.concatenate([self.weights, np.zeros((grow, self.width), np.float32)], axis=0)

    def add(self, out: np.ndarray, weight: np.ndarray, row: int, col: int) -> None:
        """Add ``weight * out`` for a tile whose first pixel is at scene ``(row, col)``."""
        th, tw = weight.shape
        r0, r1 = max(row, self.base), min(row + th, self.height)
        c0, c1 = max(col, 0), min(col + tw, self.width)
        if r0 >= r1 or c0 >= c1:
            return
        self._ensure(r1, out.shape[0])
        assert self.sums is not None  # allocated by _ensure
        w = weight[r0 - row : r1 - row, c0 - col : c1 - col]
        rs = slice(r0 - self.base, r1 - self.base)
        self.sums[:, rs, c0:c1] += w * out[:, r0 - row : r1 - row, c0 - col : c1 - col]
        self.weights[rs, c0:c1] += w

    def emit(self, stop: int, bands: Callable[[], int]) -> None:
        """Write scene rows ``[base, stop)``, normalised; NaN where no tile counted (nodata)."""
        stop = min(stop, self.height)
        if stop <= self.base:
            return
        n = stop - self.base
        self._ensure(stop, self.sums.shape[0] if self.sums is not None else bands())
        assert self.sums is not None  # allocated by _ensure
        w = self.weights[:n]
        out = np.full(self.sums[:, :n].shape, np.nan, dtype=np.float32)
        np.divide(self.sums[:, :n], w, out=out, where=w > 0)
        self.write(Window(col_off=0, row_off=self.base, width=self.width, height=n), out)
        self.sums, self.weights = self.sums[:, n:], self.weights[n:]
        self.base = stop


class TileSweep:
    """State of one :func:`~sar2opt_geo.engine.inference.run_tiled` call: the tile rows, the batch, the counts."""

    def __init__(
        self,
        runner: Runner,
        read: ReadFn,
        write: WriteFn,
        grid: TileGrid,
        config: TilingConfig,
        *,
        progress: Callable[[float, str], None] | None,
        cancel: Callable[[], bool] | None,
        fill_value: float,
        rows: tuple[int, int] | None = None,
        postprocess: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.runner, self.grid, self.config, self.postprocess = runner, grid, config, postprocess
        self.progress, self.cancel, self.fill_value = progress, cancel, fill_value
        self.height, self.width = grid.rows.length, grid.cols.length
        self.source = RowSource(read, self.height, self.width)
        r0, r1 = (0, self.height) if rows is None else (int(rows[0]), int(rows[1]))
        self.acc = Accumulator(r1, self.width, write, start=r0)
        t = grid.rows.tile  # the tile rows touching [r0, r1), in sweep order
        self.tile_rows = [i for i in range(grid.rows.count) if grid.rows.origin(i) < r1 and grid.rows.origin(i) + t > r0]
        self.total = len(self.tile_rows) * grid.cols.count
        self.row_w = [axis_weights(grid.rows, i).astype(np.float32) for i in range(grid.rows.count)]
        self.col_w = [axis_weights(grid.cols, j).astype(np.float32) for j in range(grid.cols.count)]
        self.pending: list[tuple[int, int, int, int, np.ndarray, np.ndarray]] = []
        self.out_bands: int | None = None
        self.done = self.skipped = self.batches = 0
        self.rows_enumerated = 0
        self.reported = -1.0

    def run(self) -> None:
        """Sweep the tile rows top to bottom: cut tiles, skip all-nodata ones, run full batches, emit rows."""
        rows, cols = self.grid.rows, self.grid.cols
        th, tw = self.grid.tile_shape
        col_idx = [reflect_index(cols.origin(j) + np.arange(tw), self.width) for j in range(cols.count)]
        col_in = [(c >= 0) & (c < self.width) for c in (cols.origin(j) + np.arange(tw) for j in range(cols.count))]
        for i in self.tile_rows:
            r = rows.origin(i)
            src_rows = reflect_index(r + np.arange(th), self.height)
            lo, hi = int(src_rows.min()), int(src_rows.max()) + 1
            block = self.source.rows(lo, hi)
            row_idx = src_rows - lo
            r_in = (r + np.arange(th) >= 0) & (r + np.arange(th) < self.height) & (self.row_w[i] > 0)
            for j in range(cols.count):
                tile = block[:, row_idx[:, None], col_idx[j][None, :]]
                valid = np.isfinite(tile).all(axis=0)
                if not valid[np.ix_(r_in, col_in[j] & (self.col_w[j] > 0))].any():
                    self.skipped += 1
                    self.done += 1
                    continue
                if not valid.all():
                    tile = np.nan_to_num(tile, nan=self.fill_value, posinf=self.fill_value, neginf=self.fill_value)
                self.pending.append((i, j, r, cols.origin(j), tile, ~valid))
                if len(self.pending) == self.config.batch_size:
                    self._run_batch()
            self.rows_enumerated = i + 1
            if not self.pending:
                self.acc.emit(rows.final_before(i), self._bands)
        if self.pending:
            self._run_batch()
        self.acc.emit(self.height, self._bands)
        if self.reported < 1.0 and self.progress is not None:
            self.progress(1.0, f"tiles {self.done}/{self.total}")

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        y = self.runner(batch)
        if y.ndim != 4 or y.shape[0] != batch.shape[0] or y.shape[2:] != batch.shape[2:]:
            raise ConfigError(
                f"model output shape {tuple(y.shape)} does not match its input {tuple(batch.shape)} in batch and size;"
                " the engine needs an image-to-image generator that keeps height and width"
            )
        return y if self.postprocess is None else self.postprocess(batch, y)

    def _bands(self) -> int:
        """Output bands, from the first batch, or from one probe forward if every tile so far was skipped."""
        if self.out_bands is None:
            bands = self.source.bands or 1
            probe = np.zeros((1, bands, *self.grid.tile_shape), dtype=np.float32)
            self.out_bands = int(self._forward(probe).shape[1])
        return self.out_bands

    def _run_batch(self) -> None:
        """Run and blend the pending tiles, emit the rows they finished, report progress."""
        if self.cancel is not None and self.cancel():
            raise CancelledError(f"tiled inference cancelled by the caller after {self.done} of {self.total} tiles")
        self._blend(self._forward_pending())
        self.done += len(self.pending)
        self.batches += 1
        self.pending = []
        if self.rows_enumerated:
            self.acc.emit(self.grid.rows.final_before(self.rows_enumerated - 1), self._bands)
        if self.progress is not None:
            self.reported = self.done / self.total
            self.progress(self.reported, f"tiles {self.done}/{self.total}")

    def _forward_pending(self) -> np.ndarray:
        """The model (and postprocess) output of the pending tiles, ``(N, out bands, th, tw)``."""
        batch = np.stack([p[4] for p in self.pending])
        if len(batch) == 1 and self.config.batch_size > 1 and len(self.grid) > 1:
            # a lone last tile runs in a batch of two (itself twice): CPU convolutions take another
            # code path for a batch of one (last-bit differences), so a tile's values would depend
            # on where a run ends, and row bands (rows=) would not match the whole-scene run
            out = self._forward(np.concatenate([batch, batch]))[:1]
        else:
            out = self._forward(batch)
        self.out_bands = out.shape[1]
        return out

    def _blend(self, out: np.ndarray) -> None:
        """Add each pending tile's output, NaN where its input was nodata, into the accumulator with its weights."""
        for (i, j, r, c, _, nodata), y in zip(self.pending, out):
            y[:, nodata] = np.nan  # NaN in -> NaN out, even where this tile's weight is 0
            self.acc.add(y, np.multiply.outer(self.row_w[i], self.col_w[j]), r, c)
