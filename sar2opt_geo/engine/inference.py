"""Streaming, batched tiled inference: :func:`run_tiled`.

The sweep goes down the scene one row of tiles at a time:

1. read the source rows that row of tiles needs (a full-width window inside the raster;
   rows already read for the previous tile row, i.e. the overlap, are carried over, not
   re-read) and cut the tiles out of it with reflection at the scene edges;
2. skip tiles whose weighted pixels are all nodata; fill nodata in the others (see below);
3. run full batches of ``batch_size`` tiles (a batch may span two tile rows);
4. add ``weight * output`` and ``weight`` into a full-width accumulator of the rows still
   open, and hand every row that no later tile can touch to ``write``, normalised by the
   accumulated weight; the overlap rows stay in the accumulator for the next tile row.

Peak memory is therefore a few tile rows of the scene's width (input block, accumulator)
plus one batch, whatever the scene's height.

Nodata
    Non-finite input values (NaN = nodata by the project convention; +-inf are treated the
    same) are replaced with ``fill_value`` = 0.0, the centre of the model domain [-1, 1],
    before the model runs. A constant fill does not depend on where a tile starts, so
    overlapping tiles still see identical inputs and agree; a fill by reflection or by
    nearest valid pixel would differ from tile to tile. Output pixels whose input has a
    non-finite value in any band are NaN. A tile whose weighted scene pixels are all nodata
    is not run at all (``TilingStats.tiles_skipped``): its output would be NaN wherever it
    counts.

Modes
    By default every module is in ``eval()`` mode (BatchNorm uses its running statistics,
    dropout is off), so the output does not depend on the tiling. ``stochastic=True`` is
    the article's mode: the Dropout modules (only them) drop inputs again, with masks drawn
    from a :class:`torch.Generator` (``generator``, or one seeded with ``seed``) by a
    forward hook while every module stays in eval mode; torch's global random state is
    neither used nor changed. Channel dropout (``Dropout2d``, the bundled U-Nets') draws one
    mask per module and run, shared by all tiles: the same seed gives the same output whatever
    the tiling and batch size, as in eval mode. Elementwise ``Dropout`` draws per tile: the
    same seed, tiling and batch size give the same output.
    Module modes are restored on return.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch import nn

from ..errors import CancelledError, ConfigError
from .backends import Runner, make_runner, prepare_module
from .blending import axis_weights
from .planner import DEFAULT_MAX_MEMORY_MB, choose_tiling
from .tiling import TileGrid, TilingConfig, model_downsampling, reflect_index, tile_grid

__all__ = ["DROPOUT_TYPES", "TilingStats", "run_tiled"]

logger = logging.getLogger(__name__)

#: Module types switched to training mode in stochastic mode (BatchNorm stays in eval).
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

ReadFn = Callable[[Window], np.ndarray]
WriteFn = Callable[[Window, np.ndarray], None]


@dataclass(frozen=True)
class TilingStats:
    """What :func:`run_tiled` did.

    Attributes:
        height, width: scene size in pixels.
        grid: ``(tile rows, tile columns)``.
        tile_shape: ``(height, width)`` of each tile in pixels (smaller than ``tile_size``
            along an axis shorter than a tile).
        tiles: tiles in the grid, run or skipped.
        tiles_skipped: tiles not run because all their weighted pixels are nodata.
        batches: forward passes.
        pixels_read: pixels requested from ``read`` (per band); about ``height * width``,
            since overlap rows are carried over instead of read again.
        seconds: wall-clock time of the whole call.
        backend: what ran the model (e.g. ``"torch cpu FastUNet"``, ``"onnxruntime FastUNet int8"``).
    """

    height: int
    width: int
    grid: tuple[int, int]
    tile_shape: tuple[int, int]
    tiles: int
    tiles_skipped: int
    batches: int
    pixels_read: int
    seconds: float
    backend: str = ""

    @property
    def tiles_run(self) -> int:
        return self.tiles - self.tiles_skipped


class _RowSource:
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


class _Accumulator:
    """Weighted sums for the scene rows still open, full scene width, and their emission.

    Only rows ``[start, height)`` are accumulated and written (``rows=`` of :func:`run_tiled`).
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
        w = self.weights[:n]
        out = np.full(self.sums[:, :n].shape, np.nan, dtype=np.float32)
        np.divide(self.sums[:, :n], w, out=out, where=w > 0)
        self.write(Window(col_off=0, row_off=self.base, width=self.width, height=n), out)
        self.sums, self.weights = self.sums[:, n:], self.weights[n:]
        self.base = stop


def _set_modes(model: nn.Module) -> dict[nn.Module, bool]:
    saved = {m: m.training for m in model.modules()}
    model.eval()
    return saved


_CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def _seeded_dropout(model: nn.Module, generator: torch.Generator) -> list[Any]:
    """Forward hooks that make the (eval-mode) Dropout modules of ``model`` drop again, with masks from
    ``generator``: elementwise for ``Dropout``, whole channels for ``Dropout1d/2d/3d``. Returns the handles.

    A channel mask is drawn once per module and run and applied to every tile: one run is one
    realisation of the network, so its output does not depend on the tiling (no seams between
    tiles). Elementwise masks are drawn per tile (they would need the tile's place in the scene)."""
    dropouts = [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]
    if not dropouts:
        logger.warning("stochastic mode asked for, but the model has no Dropout module: output is deterministic")
    unsupported = sorted({type(m).__name__ for m in dropouts if not isinstance(m, (nn.Dropout, *_CHANNEL_DROPOUT))})
    if unsupported:
        raise ConfigError(f"stochastic mode supports Dropout and Dropout1d/2d/3d, not {', '.join(unsupported)}")

    channel_masks: dict[nn.Module, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        x, p = inputs[0], float(module.p)
        if p <= 0.0:
            return output
        if isinstance(module, _CHANNEL_DROPOUT):
            keep = channel_masks.get(module)
            if keep is None or keep.shape[1] != x.shape[1]:
                shape = (1, x.shape[1], *(1,) * (x.ndim - 2))
                keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - p, generator=generator)
                channel_masks[module] = keep
        else:
            keep = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - p, generator=generator)
        return x * keep.to(x.dtype) / (1.0 - p)

    return [m.register_forward_hook(hook) for m in dropouts]


def run_tiled(
    model: nn.Module,
    read: ReadFn,
    height: int,
    width: int,
    write: WriteFn,
    config: TilingConfig | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    stochastic: bool = False,
    seed: int = 0,
    *,
    autocast: bool = False,
    fill_value: float = 0.0,
    backend: str = "torch",
    quantize: str = "none",
    optimise: bool = True,
    max_memory_mb: float | None = DEFAULT_MAX_MEMORY_MB,
    generator: torch.Generator | None = None,
    rows: tuple[int, int] | None = None,
    precision: str = "fp32",
    postprocess: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    postprocess_radius: int = 0,
) -> TilingStats:
    """Run ``model`` over a ``height x width`` scene tile by tile, streaming in and out.

    Args:
        model: image-to-image generator, same output size as input; moved to ``device``.
            Its ``downsampling`` attribute (default 16) sets the tile alignment; an optional
            ``receptive_margin`` attribute (pixels) triggers a warning when ``config.margin``
            is smaller.
        read: ``read(window) -> (bands, h, w)`` float32 in the model domain [-1, 1], NaN =
            nodata. Only called with full-width windows inside the raster, top to bottom
            (a window may go back up to one tile near the bottom edge, for the reflection).
        height, width: scene size in pixels.
        write: ``write(window, array)`` with ``(out bands, h, width)`` float32 in [-1, 1],
            NaN = nodata; called with consecutive full-width row blocks, each pixel once.
        config: tile size, overlap, margin and batch size (pixels); ``None`` (default): chosen
            by :func:`~sar2opt_geo.engine.planner.choose_tiling` for this scene, model and
            ``max_memory_mb`` (exact margin, the largest useful tile the budget allows).
        device: torch device for the model (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).
        progress: ``progress(fraction, message)`` after each batch.
        cancel: checked before each batch; when it returns True,
            :class:`~sar2opt_geo.errors.CancelledError` is raised (rows already handed to
            ``write`` stay written: the caller discards its temporary output).
        stochastic: keep dropout on (the article's mode), seeded with ``seed``.
        seed: seed for the dropout masks in stochastic mode (when no ``generator`` is given).
        generator: the :class:`torch.Generator` (on ``device``) the dropout masks are drawn from
            in stochastic mode; the global random state is never used.
        autocast: run the model under ``torch.autocast`` (float16); CUDA only.
        precision: ``fp32`` (default), ``bf16`` (bfloat16 autocast; tiles equal a bf16 whole-image
            pass within bf16 rounding, see the tests) or ``auto``
            (:func:`~sar2opt_geo.engine.backends.resolve_precision`).
        fill_value: value that replaces nodata in the model input (default 0, the domain centre).
        backend: ``"torch"`` (default), ``"onnxruntime"`` or ``"openvino"``
            (:mod:`sar2opt_geo.engine.backends`); the ONNX ones run eval mode on the CPU.
        quantize: ``"none"`` or ``"int8"`` (onnxruntime only; not exact, opt-in).
        optimise: run the article's U-Net through its exact inference rewrite
            (:func:`~sar2opt_geo.engine.fast_unet.optimise_for_inference`; ignored in
            stochastic mode, which needs the original's dropout). Other models run as given.
        max_memory_mb: peak-RSS budget of the process for the planned tiling (``config=None`` only).
        rows: ``(r0, r1)``: emit only scene rows ``[r0, r1)`` (a row band of the scene). The tile
            grid stays that of the whole ``height``; only the tile rows touching ``[r0, r1)`` are
            read and run, in the whole-scene order, so every emitted pixel gets the same
            contributions in the same order as in a whole-scene call (identical values, as long
            as a tile's output does not depend on the other tiles in its batch). ``write`` gets
            rows ``[r0, r1)`` only; ``TilingStats.tiles`` counts the tiles of those tile rows.
        postprocess: ``postprocess(inputs, outputs) -> outputs`` on every batch of tiles (model
            domain, ``(N, C, H, W)``), after the model and before blending, e.g.
            :func:`~sar2opt_geo.engine.structure.structure_step`. It must be local: an output
            pixel may depend on inputs within ``postprocess_radius`` pixels (a warning when the
            tiling margin is smaller, as for the model's own receptive margin).

    Returns:
        :class:`TilingStats`.

    Raises:
        ConfigError: bad configuration or sizes (a ValueError), or a ``read`` result of the wrong shape.
        CancelledError: ``cancel()`` returned True.
    """
    t_start = time.perf_counter()
    dev = torch.device(device)
    if autocast and dev.type != "cuda":
        raise ConfigError(f"autocast is only supported on CUDA, not on device {str(dev)!r}; drop autocast or use a CUDA device")
    if stochastic and backend != "torch":
        raise ConfigError(f"stochastic mode (dropout on) needs backend='torch'; {backend!r} runs the eval-mode graph")
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ConfigError(f"scene {name}={value!r} must be a positive whole number of pixels")
    height, width = int(height), int(width)
    if config is None:
        config = choose_tiling(prepare_module(model, stochastic=stochastic, optimise=optimise).to(dev), height, width,
                               max_memory_mb=max_memory_mb, device=dev, autocast=autocast)
    if rows is not None and not (0 <= int(rows[0]) < int(rows[1]) <= height):
        raise ConfigError(f"rows={tuple(rows)!r} must be (r0, r1) with 0 <= r0 < r1 <= height={height}")
    grid = tile_grid(height, width, config, model_downsampling(model))
    logger.debug(
        "tiling %dx%d px: %dx%d tiles of %dx%d, stride %d, margin %d, blend %d, batch %d",
        height, width, *grid.shape, *grid.tile_shape, config.stride, config.margin, config.blend_width,
        config.batch_size,
    )
    needed = getattr(model, "receptive_margin", None)  # optional model attribute, pixels
    if postprocess is not None and postprocess_radius > (needed or 0):
        needed = postprocess_radius
    if needed is not None and config.margin < needed:
        logger.warning(
            "margin=%d px is below the model's receptive-field margin of %d px: tiles will differ slightly near"
            " their edges (the blend hides seams, but the result is not the whole-image one); use a tiling"
            " with margin >= %d px (engine.choose_tiling picks one; overlap >= 2 * margin)",
            config.margin, needed, needed,
        )
    model.to(dev)
    saved = _set_modes(model)
    hooks: list[Any] = []
    try:
        with contextlib.ExitStack() as stack:
            if stochastic:
                if generator is None:
                    generator = torch.Generator(device=dev).manual_seed(int(seed))
                hooks = _seeded_dropout(model, generator)
            stack.enter_context(torch.inference_mode())
            runner = make_runner(model, backend=backend, device=dev, stochastic=stochastic, autocast=autocast,
                                 quantize=quantize, optimise=optimise, precision=precision)
            sweep = _Sweep(runner, read, write, grid, config, progress, cancel, fill_value, rows, postprocess)
            sweep.run()
    finally:
        for h in hooks:
            h.remove()
        for m, training in saved.items():
            m.training = training
    stats = TilingStats(
        height=height,
        width=width,
        grid=grid.shape,
        tile_shape=grid.tile_shape,
        tiles=sweep.total,
        tiles_skipped=sweep.skipped,
        batches=sweep.batches,
        pixels_read=sweep.source.pixels_read,
        seconds=time.perf_counter() - t_start,
        backend=runner.name,
    )
    logger.info(
        "tiled inference: %dx%d px, %d tiles (%d skipped as nodata) in %d batches, %.1f s (%s)",
        height, width, stats.tiles, stats.tiles_skipped, stats.batches, stats.seconds, runner.name,
    )
    return stats


class _Sweep:
    """State of one :func:`run_tiled` call (kept out of the function to keep it readable)."""

    def __init__(
        self,
        runner: Runner,
        read: ReadFn,
        write: WriteFn,
        grid: TileGrid,
        config: TilingConfig,
        progress: Callable[[float, str], None] | None,
        cancel: Callable[[], bool] | None,
        fill_value: float,
        rows: tuple[int, int] | None = None,
        postprocess: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.runner, self.grid, self.config, self.postprocess = runner, grid, config, postprocess
        self.progress, self.cancel, self.fill_value = progress, cancel, fill_value
        self.height, self.width = grid.rows.length, grid.cols.length
        self.source = _RowSource(read, self.height, self.width)
        r0, r1 = (0, self.height) if rows is None else (int(rows[0]), int(rows[1]))
        self.acc = _Accumulator(r1, self.width, write, start=r0)
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
        if self.cancel is not None and self.cancel():
            raise CancelledError(f"tiled inference cancelled by the caller after {self.done} of {self.total} tiles")
        batch = np.stack([p[4] for p in self.pending])
        if len(batch) == 1 and self.config.batch_size > 1 and len(self.grid) > 1:
            # a lone last tile runs in a batch of two (itself twice): CPU convolutions take another
            # code path for a batch of one (last-bit differences), so a tile's values would depend
            # on where a run ends, and row bands (rows=) would not match the whole-scene run
            out = self._forward(np.concatenate([batch, batch]))[:1]
        else:
            out = self._forward(batch)
        self.out_bands = out.shape[1]
        for (i, j, r, c, _, nodata), y in zip(self.pending, out):
            y[:, nodata] = np.nan  # NaN in -> NaN out, even where this tile's weight is 0
            self.acc.add(y, np.multiply.outer(self.row_w[i], self.col_w[j]), r, c)
        self.done += len(self.pending)
        self.batches += 1
        self.pending = []
        if self.rows_enumerated:
            self.acc.emit(self.grid.rows.final_before(self.rows_enumerated - 1), self._bands)
        if self.progress is not None:
            self.reported = self.done / self.total
            self.progress(self.reported, f"tiles {self.done}/{self.total}")
