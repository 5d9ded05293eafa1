"""The steps of one translation, as typed public functions (shared by :func:`~.api.translate`
and the row-band assembly :mod:`sar2opt_geo.translation.rowbands`).

:func:`run_inference` (tiled inference of a plan into a product or a sample stack) ->
:func:`encode_product` (checks, COG with provenance tags, quicklook, spread layer) ->
:func:`make_result` (the :class:`Result` the caller gets).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import NoValidDataError
from ..options import TranslateOptions
from ..progress import CancelFn, ProgressFn
from ..progress import sub_range as _sub
from ..version import __version__

if TYPE_CHECKING:
    from rasterio.windows import Window

    from ..engine import TilingStats
    from ..io.product import Product
    from ..models.loading import LoadedModel
    from ..sensors.base import Scene
    from .plan import Plan
    from .sampling import SampleProduct

__all__ = ["Result", "encode_product", "make_result", "provenance_tags", "run_inference"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What :func:`translate` wrote. ``bounds`` are ``(left, bottom, right, top)`` in ``crs``."""

    path: Path
    quicklook: Path | None
    crs: str
    transform: tuple
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    model_name: str
    card_hash: str
    warnings: tuple[str, ...]
    tiles: int
    tiles_skipped: int
    seconds: float
    spread: Path | None = None  # <stem>_spread.tif with samples > 1 (sar2opt_geo.translation.sampling)


def encode_product(scene: Scene, loaded: LoadedModel, plan: Plan, opts: TranslateOptions, product: Product,
                   valid_pixels: int, resampling_note: str, *, progress: ProgressFn | None, cancel: CancelFn | None,
                   samples: SampleProduct | None = None) -> None:
    """Check that something valid was translated, then encode ``product`` (COG, tags, quicklook)
    and, with ``samples``, the spread product.

    Shared by :func:`translate` and the assembly of row bands (:mod:`sar2opt_geo.translation.rowbands`), so a
    scene translated in bands is encoded exactly like one translated in one pass.
    """
    if valid_pixels == 0:
        where = f" inside {tuple(round(v, 3) for v in plan.out_grid.bounds)} " \
                f"({plan.out_grid.crs.to_string()})" if plan.is_crop else ""
        raise NoValidDataError(f"{scene.path}: no valid input pixel{where}; nothing to translate")
    final = None if plan.final.same_as(plan.out_grid) else plan.final
    tags = provenance_tags(scene, loaded, plan, opts, resampling_note)
    valid = product.finish(dtype=opts.dtype, band_names=loaded.card.output.bands, tags=tags, final=final,
                           resampling=opts.resampling, progress=_sub(progress, 0.9, 0.98), cancel=cancel)
    if valid == 0:
        raise NoValidDataError(f"{scene.path}: the output grid {plan.final.bounds} holds no valid pixel")
    if samples is not None:
        samples.finish(tags={**tags, **samples.tags()}, final=final, resampling=opts.resampling, cancel=cancel)
    if progress is not None:
        progress(1.0, "done")


def make_result(dst: Path, product: Product, plan: Plan, loaded: LoadedModel, tiles: int, tiles_skipped: int, t0: float,
                spread: Path | None = None) -> Result:
    """The :class:`Result` of a finished translation (``t0``: its :func:`time.perf_counter` start);
    a pipeline step shared with the assembly of row bands."""
    final = plan.final
    result = Result(
        path=dst, quicklook=product.quicklook, crs=final.crs.to_string(), transform=tuple(final.transform)[:6],
        width=final.width, height=final.height, bounds=final.bounds, model_name=loaded.name,
        card_hash=loaded.card_hash, warnings=plan.warnings, tiles=tiles, tiles_skipped=tiles_skipped,
        seconds=time.perf_counter() - t0, spread=spread,
    )
    log.info("wrote %s (%d x %d px, %s) in %.1f s", dst, result.width, result.height, result.crs, result.seconds)
    return result


def run_inference(scene: Scene, loaded: LoadedModel, plan: Plan, opts: TranslateOptions, product: Product, device: str,
                  *, progress: ProgressFn | None, cancel: CancelFn | None, rows: tuple[int, int] | None = None,
                  samples: SampleProduct | None = None) -> tuple[TilingStats, str]:
    """Tiled inference of ``plan``'s context window, the written window streamed into ``product``.

    ``rows``: only rows ``[r0, r1)`` of the context window, on the tile grid of the whole window
    (a row band, :mod:`sar2opt_geo.translation.rowbands`); ``product`` then gets those rows only. The source is
    read in fixed row blocks of the context window (:func:`~sar2opt_geo.preprocess.aligned.aligned_reader`),
    so that every pixel is read and resampled the same way whatever band or tiling asks for it.
    With ``samples`` (``opts.samples`` > 1, :func:`sar2opt_geo.translation.sampling.open_samples`): one
    stochastic sweep per seed into the sample stack, whose mean then goes into ``product``.

    Returns the engine's :class:`~sar2opt_geo.engine.TilingStats` and a description of the resampling.
    """
    from ..engine import run_tiled
    from ..engine.structure import RADIUS_PX as STRUCTURE_RADIUS_PX
    from ..engine.structure import structure_step
    from ..preprocess import aligned, open_linear_source
    from .band_rows import source_rows
    from .plan import crop_block
    from .sampling import sample_seeds

    ctx = plan.context_grid
    source = open_linear_source(
        scene, plan.bands.bands, ctx, work_dir=product.work, resampling=opts.resampling,
        speckle_window=opts.speckle_window if opts.speckle_filter == "lee" else None,
        cancel=cancel, progress=_sub(progress, 0.05, 0.15),
        rows=None if rows is None else source_rows(plan, loaded.downsampling, rows),
    )
    sink = product if samples is None else samples
    seeds = sample_seeds(opts.seed, opts.samples if samples is not None else 1)

    def write(window: Window, y: np.ndarray) -> None:
        block = crop_block(plan, window, y)
        if block is not None:
            out_window, part = block
            sink.write(out_window, np.clip((part + 1.0) / 2.0, 0.0, 1.0).astype(np.float32))  # NaN stays NaN

    span = 0.75 / len(seeds)
    structure = structure_step(loaded.card.input, opts.structure_strength) if opts.keep_structure else None
    with source:
        read = aligned.aligned_reader(lambda w: plan.normaliser(source.read(w)), ctx.height, ctx.width, plan.tiling.tile_size)
        for k, seed in enumerate(seeds):
            if samples is not None:
                samples.begin(k)
            stats = run_tiled(
                loaded.module, read, ctx.height, ctx.width, write, plan.tiling, device=device,
                progress=_sub(progress, 0.15 + k * span, 0.15 + (k + 1) * span), cancel=cancel,
                stochastic=opts.stochastic or samples is not None, seed=seed, fill_value=loaded.card.input.nodata_fill,
                backend=opts.backend, quantize=opts.quantize, rows=rows, precision=opts.precision,
                postprocess=structure, postprocess_radius=STRUCTURE_RADIUS_PX,
            )
    if samples is not None:
        samples.emit(product, cancel=cancel)
    return stats, source.description


def provenance_tags(scene: Scene, loaded: LoadedModel, plan: Plan, opts: TranslateOptions,
                    resampling_note: str) -> dict[str, str]:
    """Provenance tags of the output GeoTIFF."""
    card = loaded.card
    tags = {
        "SAR2OPT_VERSION": __version__,
        "TIFFTAG_SOFTWARE": f"sar2opt-geo {__version__}",
        "SAR2OPT_MODEL": card.name,
        "SAR2OPT_MODEL_HASH": loaded.card_hash,
        "SAR2OPT_MODEL_FILE": str(loaded.path) if loaded.path is not None else "",
        "SAR2OPT_SOURCE": str(scene.path),
        "SAR2OPT_SOURCE_PRODUCT": scene.product_id,
        "SAR2OPT_SOURCE_SENSOR": scene.sensor,
        "SAR2OPT_INPUT_BANDS": ",".join(plan.bands.bands),
        "SAR2OPT_NORMALISATION": plan.normaliser.describe(),
        "SAR2OPT_RESAMPLING": resampling_note,
        "SAR2OPT_SPECKLE_FILTER": f"lee {opts.speckle_window}x{opts.speckle_window}" if opts.speckle_filter == "lee"
        else "none",
        "SAR2OPT_OUTPUT_SCALING": card.output.scaling,
        "SAR2OPT_PRECISION": opts.precision,
        "SAR2OPT_WARNINGS": " | ".join(plan.warnings),
    }
    if opts.sensor or opts.input_units:  # what the user said the input holds
        tags["SAR2OPT_INPUT_DECLARED"] = f"sensor={opts.sensor or 'detected'}, units={opts.input_units or 'detected'}"
    if plan.statistics_area and plan.statistics_area != "whole scene":
        tags["SAR2OPT_STATISTICS_AREA"] = plan.statistics_area
    if opts.keep_structure:
        tags["SAR2OPT_KEEP_STRUCTURE"] = (f"SAR band-pass detail added, strength {opts.structure_strength:g} "
                                          f"(sar2opt_geo.engine.structure)")
    if opts.stochastic or opts.samples > 1:
        tags["SAR2OPT_STOCHASTIC_SEED"] = str(opts.seed)
    if opts.samples > 1:
        tags["SAR2OPT_SAMPLES"] = f"mean of {opts.samples} stochastic runs, seeds {opts.seed}..{opts.seed + opts.samples - 1}"
    return tags
