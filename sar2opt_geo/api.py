"""The one public entry point: :func:`translate` a SAR (or optical) scene into a georeferenced RGB GeoTIFF.

The CLI (``sar2opt translate``), the QGIS plugin and the AOI batch runner are thin shells
over this function. What happens, in order:

1. open the scene (:func:`sar2opt_geo.sensors.open_scene`): calibrated, lazily read;
2. load the model (a checkpoint path, the bundled default for the scene type, or an already
   loaded ``(module, card)``) and choose the input bands from its card
   (:func:`sar2opt_geo.preprocess.plan_bands`; mismatches warn, or refuse with ``strict``);
3. the *model grid*: the card's pixel spacing (10 m) in the scene's projected CRS, or in the
   UTM zone of the scene centre for lon/lat and GCP-georeferenced scenes; cropped to
   ``bounds`` / ``aoi`` plus context for the receptive field;
4. scene statistics for the card's normalisation (streaming percentile), calibrated values
   resampled in linear power (WarpedVRT), optional Lee filter, normalised to [-1, 1];
5. tiled, blended inference (:func:`sar2opt_geo.engine.run_tiled`) streamed into a scratch
   raster; ``aoi`` pixels outside the polygon become nodata (unless ``keep_rectangle``);
6. optional reprojection (``dst_crs`` / ``dst_res`` / ``match_input_grid``), then a COG
   GeoTIFF with mask, band names and provenance tags, and an optional PNG quicklook;
   written under temporary names and renamed at the very end (nothing at ``dst`` on error
   or cancel).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import __version__
from .errors import (
    CheckpointError,
    ConfigError,
    GeoreferencingError,
    NoValidDataError,
    OutputExistsError,
)

__all__ = ["Result", "TranslateOptions", "resolve_device", "translate"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class TranslateOptions:
    """How to translate a scene. Sizes are in pixels of the model grid; resolutions in CRS units.

    Attributes:
        bands: scene bands fed to the model (names such as ``"HH"`` or 1-based indices);
            default from the model card (e.g. ``("VH",)``), see :mod:`sar2opt_geo.preprocess.bands`.
        tile_size, overlap, batch_size: tiling of the model grid (pixels; multiples of 16).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dst_crs: reproject the result to this CRS (any rasterio/pyproj string, e.g. ``"EPSG:4326"``).
        dst_res: output resolution in ``dst_crs`` units (default: GDAL's choice for a reprojection,
            the model spacing otherwise).
        match_input_grid: resample the result back onto the input's own grid (map-projected inputs).
        resampling: GDAL resampling for upsampling the input and reprojecting the output.
        dtype: ``"uint8"`` (``round(255 * (y + 1) / 2)`` + internal mask) or ``"float32"``
            (``(y + 1) / 2``, NaN nodata).
        speckle_filter, speckle_window: ``"lee"`` filter on linear power, window in input pixels (odd).
        calibration_factor_db: PALSAR-2 calibration factor override (dB; default from the product, -83.0).
        thermal_noise_removal: apply Sentinel-1 SAFE noise LUTs.
        stochastic, seed: keep dropout on at inference, seeded (the article's mode).
        strict: refuse a sensor/band mismatch with the card instead of warning.
        bounds, bounds_crs: crop ``(left, bottom, right, top)``; ``bounds_crs`` defaults to
            ``dst_crs`` if set, else the input's CRS (lon/lat for GCP-georeferenced scenes).
            Real data around the bounds is read as context; only the bounds are written.
        aoi, aoi_crs, keep_rectangle: a shapely geometry; pixels outside it become nodata
            unless ``keep_rectangle``; it also sets ``bounds`` when those are not given.
        quicklook: also write ``<dst stem>.png`` (<= 1024 px, transparent where nodata).
        overwrite: replace an existing output (else :class:`~sar2opt_geo.errors.OutputExistsError`).
    """

    bands: tuple[str, ...] | None = None
    tile_size: int = 512
    overlap: int = 128
    batch_size: int = 4
    device: str = "auto"
    dst_crs: str | None = None
    dst_res: float | None = None
    match_input_grid: bool = False
    resampling: str = "bilinear"
    dtype: Literal["uint8", "float32"] = "uint8"
    speckle_filter: Literal["none", "lee"] = "none"
    speckle_window: int = 7
    calibration_factor_db: float | None = None
    thermal_noise_removal: bool = True
    stochastic: bool = False
    seed: int = 0
    strict: bool = False
    bounds: tuple[float, float, float, float] | None = None
    bounds_crs: str | None = None
    aoi: object | None = None
    aoi_crs: str | None = None
    keep_rectangle: bool = False
    quicklook: bool = False
    overwrite: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.bands, (str, int)):
            object.__setattr__(self, "bands", tuple(b.strip() for b in str(self.bands).split(",") if b.strip()))
        elif self.bands is not None:
            object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        if self.dtype not in ("uint8", "float32"):
            raise ConfigError(f"dtype must be 'uint8' or 'float32', got {self.dtype!r}")
        if self.speckle_filter not in ("none", "lee"):
            raise ConfigError(f"speckle_filter must be 'none' or 'lee', got {self.speckle_filter!r}")
        if self.speckle_filter == "lee" and (self.speckle_window < 3 or self.speckle_window % 2 == 0):
            raise ConfigError(f"speckle_window must be an odd number of pixels >= 3, got {self.speckle_window}")
        from rasterio.enums import Resampling

        if self.resampling not in Resampling.__members__:
            raise ConfigError(f"unknown resampling {self.resampling!r}; e.g. nearest, bilinear, cubic, average")
        if self.dst_res is not None and not self.dst_res > 0:
            raise ConfigError(f"dst_res must be a positive resolution in dst_crs units, got {self.dst_res}")
        if self.match_input_grid and (self.dst_crs or self.dst_res):
            raise ConfigError("match_input_grid cannot be combined with dst_crs/dst_res; choose one")
        from .engine import TilingConfig

        TilingConfig(tile_size=self.tile_size, overlap=self.overlap, batch_size=self.batch_size)  # checks sizes
        if self.bounds is not None:
            object.__setattr__(self, "bounds", tuple(float(v) for v in self.bounds))
            if len(self.bounds) != 4:
                raise ConfigError(f"bounds must be (left, bottom, right, top), got {self.bounds}")

    def replace(self, **changes: Any) -> TranslateOptions:
        """A copy with ``changes``; unknown names raise ``TypeError`` listing the valid ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown translate option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


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


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU, else ``"cpu"``; others are checked and returned (a string)."""
    from .devices import resolve_device as _resolve

    return str(_resolve(device))


def _tensor_hash(module: Any, card: Any) -> str:
    h = hashlib.sha256(card.to_json().encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _resolve_model(model: Any, scene: Any, device: str) -> tuple[Any, Any, str, str]:
    """``(module, card, card_hash, model_file)`` from a path, None (bundled default) or a loaded tuple."""
    from .models.card import ModelCard
    from .models.checkpoint import card_hash, default_model_path, load_model

    if isinstance(model, (tuple, list)):
        if len(model) not in (2, 3) or not isinstance(model[1], ModelCard):
            raise CheckpointError(f"model tuple must be (module, ModelCard) or (module, ModelCard, hash), got {type(model[1]).__name__}")
        module, card = model[0], model[1]
        chash = str(model[2]) if len(model) == 3 else _tensor_hash(module, card)
        return module.to(device).eval(), card, chash, ""
    path = Path(model) if model is not None else default_model_path("sar" if scene.is_sar else "gray")
    if model is None:
        log.info("model: bundled %s for a %s scene", path.name, "SAR" if scene.is_sar else "optical")
    module, card = load_model(path, device)
    return module, card, card_hash(path), str(path)


def _to_crs(value: Any):
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise GeoreferencingError(f"CRS {value!r} is not understood ({exc}); use e.g. EPSG:4326 or EPSG:32631") from None


def _input_crs(scene: Any):
    from rasterio.crs import CRS

    if scene.crs is not None:
        return CRS.from_user_input(scene.crs)
    if scene.gcps:
        return scene.gcps[1] or CRS.from_epsg(4326)
    return None


def _aoi_in(geometry: Any, src_crs: Any, dst_crs: Any) -> Any:
    """``geometry`` (shapely) from ``src_crs`` to ``dst_crs``."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    if src_crs is None or src_crs == dst_crs:
        return geometry
    return shape(transform_geom(src_crs, dst_crs, mapping(geometry)))


def _scene_key(scene: Any, opts: TranslateOptions) -> tuple | None:
    """Identifies a scene's calibrated values (file, modification time, calibration options) for caching."""
    try:
        st = os.stat(scene.path)
    except OSError:
        return None
    return (str(Path(scene.path).resolve()), st.st_mtime_ns, st.st_size, scene.product_id, scene.calibration,
            opts.calibration_factor_db, opts.thermal_noise_removal, scene.width, scene.height)


def _context_window(out_win: Any, width: int, height: int, pad: int) -> Any:
    """``out_win`` grown by ``pad`` pixels of real data (receptive-field context), clipped to the grid.

    The origin is rounded down to a multiple of 16 (the generator's downsampling) so that the
    engine's tiles of a crop sit on the same pixel lattice as a whole-scene run: crops then
    match the whole-scene result and each other.
    """
    from rasterio.windows import Window

    c0 = max(0, (int(out_win.col_off) - pad) // 16 * 16)
    r0 = max(0, (int(out_win.row_off) - pad) // 16 * 16)
    c1 = min(width, int(out_win.col_off + out_win.width) + pad)
    r1 = min(height, int(out_win.row_off + out_win.height) + pad)
    return Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def _same_file(a: Any, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except (OSError, TypeError, ValueError):
        return False


def _sub(progress: ProgressFn | None, lo: float, hi: float) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda f, msg="": progress(lo + (hi - lo) * min(max(float(f), 0.0), 1.0), msg)


def translate(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: Any = None,
    options: TranslateOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    **overrides: Any,
) -> Result:
    """Translate the scene ``src`` into an RGB Cloud Optimized GeoTIFF at ``dst``.

    Args:
        src: scene path (GeoTIFF, Sentinel-1 SAFE folder/zip, PALSAR-2 product, ...).
        dst: output GeoTIFF path; ``<dst stem>.png`` too with ``quicklook``.
        model: checkpoint path, None (bundled default: ``"sar"`` for SAR scenes, ``"gray"``
            for optical), or an already loaded ``(module, card)`` / ``(module, card, card_hash)``.
        options: :class:`TranslateOptions`; ``overrides`` replace single fields of it.
        progress: ``progress(fraction, message)``, fraction in [0, 1].
        cancel: polled regularly; returning True raises :class:`~sar2opt_geo.errors.CancelledError`.

    Returns:
        :class:`Result`. Sensor/band mismatch warnings are logged, returned and tagged.

    Raises:
        sar2opt_geo.errors.Sar2OptError subclasses with one-line messages; nothing is left at
        ``dst`` (or the quicklook path) when anything fails or is cancelled.
    """
    opts = (options or TranslateOptions()).replace(**overrides) if overrides else (options or TranslateOptions())
    from .io import atomic_outputs, quicklook_path, work_dir

    t0 = time.perf_counter()
    dst = Path(dst)
    ql = quicklook_path(dst) if opts.quicklook else None
    device = resolve_device(opts.device)
    if _same_file(src, dst):
        raise OutputExistsError(f"{dst}: is the input itself; choose another output path")
    with atomic_outputs(dst, ql, overwrite=opts.overwrite) as (tmp_tif, tmp_png), work_dir(dst) as work:
        result = _translate(src, dst, tmp_tif, tmp_png, model, opts, device, work, progress, cancel)
    result = dataclasses.replace(result, seconds=time.perf_counter() - t0)
    log.info("wrote %s (%d x %d px, %s) in %.1f s", dst, result.width, result.height, result.crs, result.seconds)
    return result


def _translate(
    src: Any, dst: Path, tmp_tif: Path, tmp_png: Path | None, model: Any, opts: TranslateOptions, device: str,
    work: Path, progress: ProgressFn | None, cancel: CancelFn | None,
) -> Result:
    import rasterio
    from rasterio.windows import Window

    from .engine import TilingConfig, run_tiled
    from .io import ScratchRaster, quicklook_path, write_cog, write_quicklook
    from .preprocess import (
        crop_window,
        make_normaliser,
        model_grid,
        native_grid,
        open_linear_source,
        plan_bands,
        reprojected_grid,
    )
    from .sensors import open_scene

    scene = open_scene(src, bands=list(opts.bands) if opts.bands else None,
                       calibration_factor_db=opts.calibration_factor_db,
                       thermal_noise_removal=opts.thermal_noise_removal)
    with scene:
        if opts.match_input_grid and native_grid(scene) is None:
            raise GeoreferencingError(
                f"{scene.path}: match_input_grid needs a map-projected input, this one has GCPs only; "
                "use dst_crs/dst_res (--t-srs/--tr) instead"
            )
        module, card, chash, model_file = _resolve_model(model, scene, device)
        plan = plan_bands(scene, card, list(scene.bands) if opts.bands else None, opts.strict)
        for w in plan.warnings:
            log.warning(w)
        config = TilingConfig(tile_size=opts.tile_size, overlap=opts.overlap, batch_size=opts.batch_size)

        # -- grids: the model grid, the crop to write, and the context around it to read
        full = model_grid(scene, card.input.pixel_spacing_m)
        in_crs = _input_crs(scene)
        default_crs = _to_crs(opts.dst_crs) if opts.dst_crs else in_crs
        aoi = None
        if opts.aoi is not None:
            aoi_crs = _to_crs(opts.aoi_crs) if opts.aoi_crs else default_crs
            aoi = _aoi_in(opts.aoi, aoi_crs, full.crs)
        if opts.bounds is not None:
            out_win = crop_window(full, opts.bounds, _to_crs(opts.bounds_crs) if opts.bounds_crs else default_crs)
        elif aoi is not None:
            out_win = crop_window(full, aoi.bounds, full.crs)
        else:
            out_win = full.full_window()
        ctx_win = _context_window(out_win, full.width, full.height, max(config.overlap, config.margin + 16))
        ctx_grid, out_grid = full.window_grid(ctx_win), full.window_grid(out_win)
        # crop offset inside the context, in pixels
        oc, orow = int(out_win.col_off - ctx_win.col_off), int(out_win.row_off - ctx_win.row_off)

        # -- statistics, resampled linear values, normalisation
        normaliser = make_normaliser(
            card.input, plan.bands, scene.read, scene.height, scene.width, gray=plan.gray, source=scene.path,
            cancel=cancel, progress=_sub(progress, 0.0, 0.05), cache_key=_scene_key(scene, opts),
        )
        log.info("input: %s, %s", ", ".join(plan.bands), normaliser.describe())
        source = open_linear_source(
            scene, plan.bands, ctx_grid, work_dir=work, resampling=opts.resampling,
            speckle_window=opts.speckle_window if opts.speckle_filter == "lee" else None,
            cancel=cancel, progress=_sub(progress, 0.05, 0.15),
        )
        stage_path = work / "stage.tif"
        with source, ScratchRaster(stage_path, crs=out_grid.crs, transform=out_grid.transform,
                                   width=out_grid.width, height=out_grid.height, count=card.out_channels) as stage:

            def read(w: Window) -> np.ndarray:
                return normaliser(source.read(w))

            def write(w: Window, y: np.ndarray) -> None:
                # w is in context pixels; keep the part inside the crop, in crop pixels
                wr0, wc0 = int(w.row_off) - orow, int(w.col_off) - oc
                rr0, rr1 = max(0, wr0), min(out_grid.height, wr0 + int(w.height))
                cc0, cc1 = max(0, wc0), min(out_grid.width, wc0 + int(w.width))
                if rr1 <= rr0 or cc1 <= cc0:
                    return
                part = y[:, rr0 - wr0 : rr1 - wr0, cc0 - wc0 : cc1 - wc0]
                unit = np.clip((part + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)  # NaN stays NaN
                win = Window(col_off=cc0, row_off=rr0, width=cc1 - cc0, height=rr1 - rr0)
                if aoi is not None and not opts.keep_rectangle:
                    from rasterio.features import geometry_mask

                    outside = geometry_mask([aoi], out_shape=unit.shape[1:],
                                            transform=out_grid.window_grid(win).transform)
                    unit[:, outside] = np.nan
                stage.write(win, unit)

            stats = run_tiled(
                module, read, ctx_grid.height, ctx_grid.width, write, config, device=device,
                progress=_sub(progress, 0.15, 0.9), cancel=cancel, stochastic=opts.stochastic, seed=opts.seed,
            )
            resampling_note = source.description
        if stage.valid_pixels == 0:
            where = f" inside {tuple(round(v, 3) for v in out_grid.bounds)} ({out_grid.crs.to_string()})" \
                if out_win != full.full_window() else ""
            raise NoValidDataError(f"{scene.path}: no valid input pixel{where}; nothing to translate")

        # -- the output grid and the GeoTIFF
        if opts.match_input_grid:
            own = native_grid(scene)
            final = own if out_win == full.full_window() else own.window_grid(
                crop_window(own, out_grid.bounds, out_grid.crs))
        elif opts.dst_crs or opts.dst_res:
            final = reprojected_grid(out_grid, _to_crs(opts.dst_crs) if opts.dst_crs else None, opts.dst_res)
        else:
            final = out_grid
        tags = {
            "SAR2OPT_VERSION": __version__,
            "TIFFTAG_SOFTWARE": f"sar2opt-geo {__version__}",
            "SAR2OPT_MODEL": card.name,
            "SAR2OPT_MODEL_HASH": chash,
            "SAR2OPT_MODEL_FILE": model_file,
            "SAR2OPT_SOURCE": str(scene.path),
            "SAR2OPT_SOURCE_PRODUCT": scene.product_id,
            "SAR2OPT_SOURCE_SENSOR": scene.sensor,
            "SAR2OPT_INPUT_BANDS": ",".join(plan.bands),
            "SAR2OPT_NORMALISATION": normaliser.describe(),
            "SAR2OPT_RESAMPLING": resampling_note,
            "SAR2OPT_SPECKLE_FILTER": f"lee {opts.speckle_window}x{opts.speckle_window}" if opts.speckle_filter == "lee" else "none",
            "SAR2OPT_OUTPUT_SCALING": card.output.scaling,
            "SAR2OPT_WARNINGS": " | ".join(plan.warnings),
        }
        if opts.stochastic:
            tags["SAR2OPT_STOCHASTIC_SEED"] = str(opts.seed)
        with rasterio.open(stage_path) as staged:
            if final.same_as(out_grid):
                valid = write_cog(staged, tmp_tif, dtype=opts.dtype, band_names=card.output.bands, tags=tags,
                                  scratch_dir=work, progress=_sub(progress, 0.9, 0.98), cancel=cancel)
            else:
                from rasterio.enums import Resampling
                from rasterio.vrt import WarpedVRT

                with WarpedVRT(staged, crs=final.crs, transform=final.transform, width=final.width,
                               height=final.height, resampling=Resampling[opts.resampling],
                               src_nodata=float("nan"), nodata=float("nan"), dtype="float32") as vrt:
                    valid = write_cog(vrt, tmp_tif, dtype=opts.dtype, band_names=card.output.bands, tags=tags,
                                      scratch_dir=work, progress=_sub(progress, 0.9, 0.98), cancel=cancel)
        if valid == 0:
            raise NoValidDataError(f"{scene.path}: the output grid {final.bounds} holds no valid pixel")
        if tmp_png is not None:
            write_quicklook(tmp_tif, tmp_png)
        if progress is not None:
            progress(1.0, "done")
    return Result(
        path=dst, quicklook=quicklook_path(dst) if tmp_png is not None else None, crs=final.crs.to_string(),
        transform=tuple(final.transform)[:6], width=final.width, height=final.height, bounds=final.bounds,
        model_name=card.name, card_hash=chash, warnings=plan.warnings, tiles=stats.tiles,
        tiles_skipped=stats.tiles_skipped, seconds=0.0,
    )
