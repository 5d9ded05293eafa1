"""What a translation will do, decided before any pixel is translated: :func:`plan_translation` -> :class:`Plan`.

A :class:`Plan` is a frozen value built from the scene, the loaded model and the options:

* the bands fed to the model (:func:`~sar2opt_geo.preprocess.plan_bands`, with mismatch warnings);
* the **model grid** of the whole scene (the card's pixel spacing in the scene's projected CRS,
  or the UTM zone of the scene centre), the window of it to **write** (``bounds`` / ``aoi``,
  or all of it) and the larger window to **read** around it: the write window grown by the
  receptive-field context and aligned to the model's downsampling, so that a crop sits on
  the same tile lattice as a whole-scene run and matches it;
* the AOI polygon in the model grid's CRS (pixels outside it become nodata), if any;
* the **final grid** of the output (the model grid, the input's own grid for
  ``match_input_grid``, or a reprojection for ``dst_crs`` / ``dst_res``);
* the tiling and the :class:`~sar2opt_geo.preprocess.Normaliser` to the model's input domain,
  with the scene statistics it needs (a streaming percentile; see :func:`statistics_area`).

Pixel windows are in pixels of the model grid ``full``; bounds are ``(left, bottom, right, top)``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from ..engine import TilingConfig, choose_tiling, exact_margin, prepare_module
from ..errors import GeoreferencingError, NoValidDataError
from ..models.loading import LoadedModel
from ..options import TranslateOptions
from ..preprocess import (
    BandPlan,
    Grid,
    Normaliser,
    crop_window,
    make_normaliser,
    model_grid,
    native_grid,
    plan_bands,
    reprojected_grid,
)
from ..preprocess.domain import DEFAULT_MAX_PIXELS, MIN_SAMPLE_PIXELS
from ..progress import CancelFn, ProgressFn

__all__ = ["Plan", "context_window", "crop_block", "plan_translation", "to_crs"]

log = logging.getLogger(__name__)


#: Below this many valid pixels in the whole-scene statistics sample, statistics come from the crop area.
MIN_STATISTICS_PIXELS = 4096


@dataclass(frozen=True)
class Plan:
    """Everything :func:`sar2opt_geo.translate` needs to run and write (see the module docstring)."""

    bands: BandPlan
    tiling: TilingConfig
    full: Grid  # the model grid of the whole scene
    out_window: Window  # what is written, pixels of ``full``
    context_window: Window  # what is read and translated, pixels of ``full`` (contains ``out_window``)
    aoi: Any  # shapely geometry in ``full.crs`` masking the output, or None
    final: Grid  # the grid of the written GeoTIFF
    normaliser: Normaliser
    statistics_area: str  # where the normaliser's statistics come from ("" when it needs none)

    @property
    def out_grid(self) -> Grid:
        """The model grid of what is written."""
        return self.full.window_grid(self.out_window)

    @property
    def context_grid(self) -> Grid:
        """The model grid of what is read and translated."""
        return self.full.window_grid(self.context_window)

    @property
    def crop_offset(self) -> tuple[int, int]:
        """``(row, col)`` of the written window inside the context window, pixels."""
        return (int(self.out_window.row_off - self.context_window.row_off),
                int(self.out_window.col_off - self.context_window.col_off))

    @property
    def is_crop(self) -> bool:
        return self.out_window != self.full.full_window()

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.bands.warnings


def to_crs(value: Any):
    """A rasterio CRS from any user input; :class:`GeoreferencingError` naming the value otherwise."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise GeoreferencingError(f"CRS {value!r} is not understood ({exc}); use e.g. EPSG:4326 or EPSG:32631") from None


def input_crs(scene: Any):
    """The CRS a user's coordinates default to: the scene's CRS, else its GCPs' (lon/lat), else None."""
    from rasterio.crs import CRS

    if scene.crs is not None:
        return CRS.from_user_input(scene.crs)
    if scene.gcps:
        return scene.gcps[1] or CRS.from_epsg(4326)
    return None


def _reproject_geometry(geometry: Any, src_crs: Any, dst_crs: Any) -> Any:
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    if src_crs is None or src_crs == dst_crs:
        return geometry
    return shape(transform_geom(src_crs, dst_crs, mapping(geometry)))


def context_window(out_window: Window, width: int, height: int, pad: int, align: int) -> Window:
    """``out_window`` grown by ``pad`` pixels of real data (receptive-field context), clipped to the grid.

    The origin is rounded down to a multiple of ``align`` (the model's downsampling) so that
    the engine's tiles of a crop sit on the same pixel lattice as a whole-scene run: crops
    then match the whole-scene result and each other.
    """
    c0 = max(0, (int(out_window.col_off) - pad) // align * align)
    r0 = max(0, (int(out_window.row_off) - pad) // align * align)
    c1 = min(width, int(out_window.col_off + out_window.width) + pad)
    r1 = min(height, int(out_window.row_off + out_window.height) + pad)
    return Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def crop_block(plan: Plan, window: Window, block: np.ndarray) -> tuple[Window, np.ndarray] | None:
    """The part of an engine output ``block`` at ``window`` (context pixels) that lies in the written
    window: ``(window in out-grid pixels, block part)``, or None if it lies outside."""
    orow, ocol = plan.crop_offset
    out = plan.out_window
    wr0, wc0 = int(window.row_off) - orow, int(window.col_off) - ocol
    rr0, rr1 = max(0, wr0), min(int(out.height), wr0 + int(window.height))
    cc0, cc1 = max(0, wc0), min(int(out.width), wc0 + int(window.width))
    if rr1 <= rr0 or cc1 <= cc0:
        return None
    part = block[:, rr0 - wr0 : rr1 - wr0, cc0 - wc0 : cc1 - wc0]
    return Window(col_off=cc0, row_off=rr0, width=cc1 - cc0, height=rr1 - rr0), part


#: Resampling factors (per side) beyond which the change of scale is a warning, not an INFO line.
LARGE_RESAMPLING = 1.5


def _warn_large_resampling(scene: Any, spacing_m: float, opts: TranslateOptions) -> None:
    """Say so when the input is resampled by more than :data:`LARGE_RESAMPLING` to the model's spacing:
    a 25 m mosaic becomes a 6x larger, mostly interpolated grid; 6.25 m detail is averaged away."""
    if opts.pixel_spacing_m is not None:
        return  # the user chose the spacing
    try:
        native = float(scene.pixel_spacing_m())
    except Exception:  # noqa: BLE001 - a scene without a known spacing: nothing to compare
        return
    if not (native > 0 and math.isfinite(native)):
        return
    factor = native / spacing_m
    if factor > LARGE_RESAMPLING or factor < 1 / LARGE_RESAMPLING:
        how = f"upsampled x{factor:.2g} per side ({factor * factor:.3g}x the pixels)" if factor > 1 else \
            f"averaged /{1 / factor:.2g} per side (detail finer than {spacing_m:g} m is lost)"
        log.warning("%s: %.3g m pixels %s to the model's %g m; --pixel-spacing %.3g runs the model at the input's "
                    "own spacing (other scale than it was trained on), --match-input-grid writes the result "
                    "on the input's grid", scene.path, native, how, spacing_m, native)


def _final_grid(scene: Any, plan_out: Grid, full: Grid, is_crop: bool, opts: TranslateOptions) -> Grid:
    if opts.match_input_grid:
        own = native_grid(scene)
        assert own is not None  # plan_translation refused a GCP-only scene with match_input_grid
        return own if not is_crop else own.window_grid(crop_window(own, plan_out.bounds, plan_out.crs))
    if opts.dst_crs or opts.dst_res:
        grid = reprojected_grid(plan_out, to_crs(opts.dst_crs) if opts.dst_crs else None, opts.dst_res)
        own = native_grid(scene)
        if not is_crop and own is not None and own.crs == grid.crs and grid.crs != plan_out.crs:
            # back to the scene's own CRS: its own footprint, not the bounding box of the rotated model grid
            # (near a pole that box is several times wider than the scene)
            grid = reprojected_grid(own, None, abs(grid.transform.a))
        return grid
    return plan_out


def _scene_key(scene: Any, opts: TranslateOptions) -> tuple | None:
    """Identifies a scene's calibrated values (file, modification time, calibration options) for caching."""
    try:
        st = os.stat(scene.path)
    except OSError:
        return None
    return (str(Path(scene.path).resolve()), st.st_mtime_ns, st.st_size, scene.product_id, scene.calibration,
            opts.calibration_factor_db, opts.thermal_noise_removal, scene.width, scene.height)


def _normaliser(scene: Any, model: LoadedModel, bands: BandPlan, context: Grid, is_crop: bool,
                opts: TranslateOptions, progress: ProgressFn | None, cancel: CancelFn | None) -> tuple[Normaliser, str]:
    """The normaliser and a description of the area its statistics come from.

    Scene percentiles describe the *whole scene* (the training data were scaled by their
    scenes' percentiles), so crops of one scene share them. On a large, mostly empty scene
    the sampled blocks can miss the data a crop holds: then the statistics come from the
    crop's own area (with its context), and the output's tags say so.
    """
    def normaliser(read_band: Callable, height: int, width: int, key: Any, min_sample: int) -> Normaliser:
        return make_normaliser(card.input, bands.bands, read_band, height, width, gray=bands.gray,
                               source=scene.path, cancel=cancel, progress=progress, cache_key=key,
                               min_sample=min_sample)

    card = model.card
    if card.input.normalisation == "db_clip":
        return make_normaliser(card.input, bands.bands, gray=bands.gray, source=scene.path), ""
    sampled = scene.height * scene.width > DEFAULT_MAX_PIXELS  # only every k-th block is read
    try:
        # a crop of a sparse sampled scene has its own way out (its area's statistics, below),
        # so the sample is kept as it is rather than swept in full
        norm = normaliser(scene.read, scene.height, scene.width, _scene_key(scene, opts),
                          0 if (is_crop and sampled) else MIN_SAMPLE_PIXELS)
        seen = norm.valid_pixels
        if not (is_crop and sampled) or seen is None or seen >= MIN_STATISTICS_PIXELS:
            return norm, "whole scene" + (f" (sampled, {seen} valid pixels)" if sampled else "")
        reason = f"the whole-scene sample held only {seen} valid pixels"
    except NoValidDataError:
        if not (is_crop and sampled):
            raise
        reason = "the whole-scene sample held no valid pixel"
    from ..preprocess.resample import source_window

    win = source_window(scene, context, pad=0)  # native pixels under the crop and its context
    c0, r0 = int(win.col_off), int(win.row_off)

    def read_crop(band: str, w: Window) -> np.ndarray:
        return scene.read(band, Window(col_off=c0 + int(w.col_off), row_off=r0 + int(w.row_off),
                                       width=w.width, height=w.height))

    area = f"the crop area (native pixels {c0},{r0} +{int(win.width)}x{int(win.height)})"
    log.warning("%s: %s; statistics come from %s", scene.path, reason, area)
    return normaliser(read_crop, int(win.height), int(win.width), None, MIN_SAMPLE_PIXELS), area


def plan_translation(
    scene: Any,
    model: LoadedModel,
    opts: TranslateOptions,
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Plan:
    """Decide bands, grids, crop, mask, tiling and normalisation for translating ``scene`` with ``model`` on ``device``.

    The tiling (:func:`sar2opt_geo.engine.choose_tiling`) keeps the model's exact margin and takes
    the tile size and batch that compute least within ``opts.max_memory_mb`` for the read window;
    explicit ``tile_size`` / ``overlap`` / ``batch_size`` win.

    Reads scene statistics when the card's normalisation needs them (``progress`` and
    ``cancel`` cover that pass). Raises the library's one-line errors for impossible
    requests (no overlap, GCP-only scene with ``match_input_grid``, unknown CRS ...).
    """
    if opts.match_input_grid and native_grid(scene) is None:
        raise GeoreferencingError(
            f"{scene.path}: match_input_grid needs a map-projected input, this one has GCPs only; "
            "use dst_crs/dst_res (--t-srs/--tr) instead"
        )
    card = model.card
    bands = plan_bands(scene, card, list(scene.bands) if opts.bands else None, opts.strict)
    for w in bands.warnings:
        log.warning(w)
    spacing = opts.pixel_spacing_m or card.input.pixel_spacing_m
    _warn_large_resampling(scene, spacing, opts)
    full = model_grid(scene, spacing, prefer_crs=to_crs(opts.dst_crs) if opts.dst_crs else None)
    default_crs = to_crs(opts.dst_crs) if opts.dst_crs else input_crs(scene)
    aoi = None
    if opts.aoi is not None:
        aoi = _reproject_geometry(opts.aoi, to_crs(opts.aoi_crs) if opts.aoi_crs else default_crs, full.crs)
    if opts.bounds is not None:
        out_win = crop_window(full, opts.bounds, to_crs(opts.bounds_crs) if opts.bounds_crs else default_crs)
    elif aoi is not None:
        out_win = crop_window(full, aoi.bounds, full.crs)
    else:
        out_win = full.full_window()
    align = model.downsampling
    margin = exact_margin(model.module)
    overlap = opts.overlap if opts.overlap is not None else math.ceil(2 * margin / align) * align
    ctx_win = context_window(out_win, full.width, full.height, max(overlap, margin + align), align)
    tiling = choose_tiling(
        prepare_module(model.module, stochastic=opts.stochastic).to(device), int(ctx_win.height), int(ctx_win.width),
        tile_size=opts.tile_size, overlap=opts.overlap, batch_size=opts.batch_size, max_memory_mb=opts.max_memory_mb,
        device=device,
    )
    is_crop = out_win != full.full_window()
    out_grid = full.window_grid(out_win)
    normaliser, stats_area = _normaliser(scene, model, bands, full.window_grid(ctx_win), is_crop, opts, progress,
                                         cancel)
    log.info("input: %s, %s", ", ".join(bands.bands), normaliser.describe())
    return Plan(
        bands=bands, tiling=tiling, full=full, out_window=out_win, context_window=ctx_win,
        aoi=aoi if not opts.keep_rectangle else None,
        final=_final_grid(scene, out_grid, full, is_crop, opts), normaliser=normaliser, statistics_area=stats_area,
    )
