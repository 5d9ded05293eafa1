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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .backends import make_runner, prepare_module
from .planner import DEFAULT_MAX_MEMORY_MB, choose_tiling
from .sweep import ReadFn, TileSweep, WriteFn
from .tiling import TileGrid, TilingConfig, model_downsampling, tile_grid

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
        x, p = inputs[0], float(cast("float", module.p))  # a Dropout module (checked above)
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


def run_tiled(  # noqa: PLR0913 - the engine's keyword-only options (public API)
    model: nn.Module,
    read: ReadFn,
    height: int,
    width: int,
    write: WriteFn,
    config: TilingConfig | None = None,
    device: torch.device | str = "cpu",
    *,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    stochastic: bool = False,
    seed: int = 0,
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
    height, width = _check_args(dev, height, width, autocast=autocast, stochastic=stochastic, backend=backend)
    module = prepare_module(model, stochastic=stochastic, optimise=optimise).to(dev)  # built once per run
    if config is None:
        config = choose_tiling(module, height, width, max_memory_mb=max_memory_mb, device=dev, autocast=autocast)
    grid = _grid(model, height, width, config, rows)
    _warn_short_margin(model, config, postprocess_radius if postprocess is not None else None)
    model.to(dev)
    with _inference_modes(model, dev, stochastic, generator, seed):
        runner = make_runner(module, backend=backend, device=dev, stochastic=stochastic, autocast=autocast,
                             quantize=quantize, optimise=False, precision=precision)
        sweep = TileSweep(runner, read, write, grid, config, progress=progress, cancel=cancel, fill_value=fill_value,
                          rows=rows, postprocess=postprocess)
        sweep.run()
    return _finish(sweep, height, width, grid, runner.name, t_start)


def _check_args(dev: torch.device, height: int, width: int, *, autocast: bool, stochastic: bool,
                backend: str) -> tuple[int, int]:
    """Refuse autocast off CUDA, stochastic mode off torch and a bad scene size; the size as ints."""
    if autocast and dev.type != "cuda":
        raise ConfigError(f"autocast is only supported on CUDA, not on device {str(dev)!r}; drop autocast or use a CUDA device")
    if stochastic and backend != "torch":
        raise ConfigError(f"stochastic mode (dropout on) needs backend='torch'; {backend!r} runs the eval-mode graph")
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ConfigError(f"scene {name}={value!r} must be a positive whole number of pixels")
    return int(height), int(width)


def _grid(model: nn.Module, height: int, width: int, config: TilingConfig, rows: tuple[int, int] | None) -> TileGrid:
    """Check the row band ``rows`` and lay out the whole scene's tile grid (logged at DEBUG)."""
    if rows is not None and not (0 <= int(rows[0]) < int(rows[1]) <= height):
        raise ConfigError(f"rows={tuple(rows)!r} must be (r0, r1) with 0 <= r0 < r1 <= height={height}")
    grid = tile_grid(height, width, config, model_downsampling(model))
    logger.debug(
        "tiling %dx%d px: %dx%d tiles of %dx%d, stride %d, margin %d, blend %d, batch %d",
        height, width, *grid.shape, *grid.tile_shape, config.stride, config.margin, config.blend_width,
        config.batch_size,
    )
    return grid


def _warn_short_margin(model: nn.Module, config: TilingConfig, postprocess_radius: int | None) -> None:
    """Warn when the tiling margin is below the model's receptive margin or the postprocess radius (None: none)."""
    needed = getattr(model, "receptive_margin", None)  # optional model attribute, pixels
    if postprocess_radius is not None and postprocess_radius > (needed or 0):
        needed = postprocess_radius
    if needed is not None and config.margin < needed:
        logger.warning(
            "margin=%d px is below the model's receptive-field margin of %d px: tiles will differ slightly near"
            " their edges (the blend hides seams, but the result is not the whole-image one); use a tiling"
            " with margin >= %d px (engine.choose_tiling picks one; overlap >= 2 * margin)",
            config.margin, needed, needed,
        )


@contextlib.contextmanager
def _inference_modes(model: nn.Module, dev: torch.device, stochastic: bool, generator: torch.Generator | None,
                     seed: int) -> Iterator[None]:
    """Eval mode (seeded dropout hooks in stochastic mode) under ``torch.inference_mode``; modes restored on exit."""
    saved = _set_modes(model)
    hooks: list[Any] = []
    try:
        with contextlib.ExitStack() as stack:
            if stochastic:
                if generator is None:
                    generator = torch.Generator(device=dev).manual_seed(int(seed))
                hooks = _seeded_dropout(model, generator)
            stack.enter_context(torch.inference_mode())
            yield
    finally:
        for h in hooks:
            h.remove()
        for m, training in saved.items():
            m.training = training


def _finish(sweep: TileSweep, height: int, width: int, grid: TileGrid, backend: str, t_start: float) -> TilingStats:
    """The :class:`TilingStats` of a finished sweep (logged at INFO)."""
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
        backend=backend,
    )
    logger.info(
        "tiled inference: %dx%d px, %d tiles (%d skipped as nodata) in %d batches, %.1f s (%s)",
        height, width, stats.tiles, stats.tiles_skipped, stats.batches, stats.seconds, backend,
    )
    return stats
