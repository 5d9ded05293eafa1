"""Co-registered training pairs from any georeferenced SAR scene and optical scene: :func:`make_pairs`.

``sar2opt pairs SAR OPTICAL OUT`` turns two scenes into a dataset ``sar2opt train OUT`` reads
directly (layout ``pairs``, :func:`sar2opt_geo.data.built_pairs.find_built_pairs`). It is the
article's "create a large number of PALSAR-2 image datasets" as a command.

What it does, in order:

1. **read** both scenes through the library's readers (:func:`sar2opt_geo.sensors.open_scene`:
   Sentinel-1 SAFE/GeoTIFF, PALSAR-2 L2.1, Sentinel-2 SAFE/GeoTIFF, any GDAL raster; bands by
   name or 1-based index), calibrated: SAR as linear power sigma0, optical as reflectance
   (or DN where the product defines no reflectance);
2. **one grid**: the *model grid* of the SAR scene (:func:`sar2opt_geo.preprocess.model_grid`:
   the SAR scene's projected CRS, or the UTM zone of its centre for lon/lat and GCP
   scenes, at ``pixel_spacing_m``), cropped to the overlap with the optical footprint; a
   planned translation of the SAR scene with ``--bounds`` of that overlap gives the same grid
   and the same scene statistics (:func:`sar2opt_geo.translation.plan.plan_translation`);
3. **resample** both onto it window by window (:func:`sar2opt_geo.preprocess.open_linear_source`):
   the SAR side in linear power (``average`` when downsampling by more than 1.5 x, else
   bilinear; never in dB), the optical side through GDAL's warper (``WarpedVRT``, same rule);
   a Sentinel-2 SCL band (or ``scl``) with ``nearest``/``mode``;
4. **tiles** of ``tile_size`` px every ``stride`` px, on a lattice of the SAR model grid
   (origins on multiples of the stride, so tiles of one SAR scene line up across scene
   pairs), kept where the fraction of pixels invalid on either side is at most
   ``max_nodata`` and the fraction failing the cloud/saturation test
   (:mod:`sar2opt_geo.data.cloudmask`) at most ``max_cloud``;
5. **write** the kept tiles in the *input domain of a model card* (``model``, default the
   bundled ``sar`` model), so that training on the pairs and translating a scene agree:

   =================  =====================================================  ==================================
   card rule          SAR tile ``sar/<name>.tif``                            optical tile ``opt/<name>.tif``
   =================  =====================================================  ==================================
   ``percentile``     uint8 ``round(255 * clip(sigma0 / p, 0, 1))``, ``p`` =  uint8 RGB, each band / its p99 over
   (bundled ``sar``)  the SAR scene's p99 exactly as ``translate`` computes   the clear, valid pixels of the
                      it (streaming, whole scene, native grid)               overlap, clipped, x 255
   ``db_clip``        float32 sigma0 in dB, NaN nodata                       uint16 reflectance x 10000
   =================  =====================================================  ==================================

   The uint8 SAR values are exactly what ``translate`` feeds the model (quantised to 255
   levels, as the card says): ``x / 255`` in training recovers them bit for bit. Pixels
   that are nodata on either side (only with ``max_nodata > 0``) hold the card's nodata fill
   on the SAR side (128 = the model-domain 0) and 0 on the optical side, and an internal mask;
6. **metadata.json** (written last, atomically): the storage rule, the pairs' input domain
   (sensor, bands, quantity, frequency band, pixel spacing, normalisation: what a card
   trained on them says), one entry per scene pair (id ``p001`` ..., scene paths and
   product ids, sensors, acquisition dates and where they came from, days apart, CRS,
   grid, bounds, the percentiles used, tile counts and rejections) and one per tile
   (name, pair, CRS, bounds ``(left, bottom, right, top)``, nodata and cloud fractions),
   so that ``--split area`` and ``--split scene`` work.

A new dataset is built in a hidden folder beside ``out_dir`` and renamed into place at the
end; ``append=True`` adds a scene pair to an existing dataset (tiles staged in a hidden
folder inside it, moved in, then ``metadata.json`` replaced): after an error or a cancel
the dataset is as it was. Bad input (no overlap, different areas, all tiles cloudy or
empty, dates too far apart) raises one-line errors of :mod:`sar2opt_geo.errors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    DatasetError,
    InputError,
    NoValidDataError,
)
from ..progress import CancelFn, ProgressFn
from ..progress import sub_range as _sub
from .built_pairs import read_pairs_metadata
from .cloudmask import open_scl
from .pairs_options import PairsOptions
from .pairs_store import (
    Storage,
    check_cancel,
    existing_dataset,
    new_metadata,
    optical_entry,
    publish,
    sar_entry,
    scene_pair_entry,
    staging,
    write_tiles,
)
from .pairs_tiles import (
    cloud_test_description,
    dn_max,
    lattice,
    nothing_kept_message,
    optical_scales,
    row_reader,
    survey_tiles,
)

__all__ = ["PairsOptions", "PairsResult", "make_pairs", "pairs_card"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairsResult:
    """What :func:`make_pairs` added. ``bounds`` are ``(left, bottom, right, top)`` in ``crs``."""

    out_dir: Path
    pair_id: str
    tiles_kept: int
    tiles_total: int
    rejected_nodata: int
    rejected_cloud: int
    days_apart: float | None
    crs: str
    bounds: tuple[float, float, float, float]
    cloud_test: str
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def metadata(self) -> Path:
        return self.out_dir / "metadata.json"


def _storage(card: Any) -> Storage:
    from ..normalize import SEN1_2_DB_RANGE

    d = card.input
    if d.normalisation == "percentile":
        if d.quantize_levels not in (None, 255):
            log.warning("model %s quantises to %s levels; the pairs are stored as 8-bit (255 levels)", card.name,
                        d.quantize_levels)
        return "percentile"
    if tuple(d.db_range or ()) != tuple(SEN1_2_DB_RANGE):
        raise ConfigError(f"model {card.name!r} clips dB to {d.db_range}; training reads dB pairs with "
                          f"{SEN1_2_DB_RANGE}: use a model with that range or a percentile model (--model sar)")
    return "db"


def _pairs_card(base: Any, scene: Any, bands: Sequence[str], spacing: float) -> Any:
    """``base`` with the input domain of the pairs: this scene's sensor, bands, quantity, radar band and spacing."""
    quantity = getattr(scene.bands[bands[0]].quantity, "value", scene.bands[bands[0]].quantity)
    if quantity not in ("sigma0", "gamma0", "beta0"):
        quantity = base.input.quantity  # DN of an uncalibrated SAR raster: keep the card's name for it
    freq = scene.frequency_band if scene.frequency_band not in (None, "") else base.input.frequency_band
    inp = dataclasses.replace(base.input, sensor=scene.sensor, bands=tuple(bands), quantity=quantity,
                              frequency_band=freq, pixel_spacing_m=float(spacing), gray_from=None, gray_weights=None)
    args = {"in_channels": len(bands), "out_channels": base.out_channels}
    return base.replace(input=inp, architecture_args=args)


def pairs_card(root: str | os.PathLike, name: str, description: str = "", mode: str = "sar",
               sar_bands: Sequence[str] | None = None) -> Any:
    """The template :class:`~sar2opt_geo.models.ModelCard` for training on the pairs dataset ``root``:
    the input domain recorded in its ``metadata.json`` (``mode="colorize"``: gray from its optical side)."""
    from ..models.card import InputDomain, ModelCard, Normalisation, OutputSpec
    from ..normalize import GRAY_WEIGHTS
    from ..radiometry import Quantity, Scale

    meta = read_pairs_metadata(root)
    output = meta["output"]
    out = OutputSpec(bands=tuple(output["bands"]), scaling=output["scaling"], sensor=output["sensor"])
    if mode == "colorize":
        inp = InputDomain(sensor="optical", bands=("gray",), quantity=Quantity.GRAY,
                          normalisation=Normalisation.PERCENTILE, units=Scale.LINEAR, percentile=99.0, quantize_levels=255,
                          pixel_spacing_m=meta["input"]["pixel_spacing_m"], gray_from=("red", "green", "blue"),
                          gray_weights=GRAY_WEIGHTS)
    else:
        d = dict(meta["input"])
        for k in ("bands", "db_range", "gray_from", "gray_weights"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if sar_bands:
            d["bands"] = tuple(sar_bands)
        inp = InputDomain(**d)
    return ModelCard(name=name, architecture="unet_article", architecture_args={}, input=inp, output=out,
                     description=description)


# -- grids -------------------------------------------------------------------------------


def _footprint(scene: Any, crs: Any) -> tuple[float, float, float, float]:
    """Bounds of ``scene`` in ``crs`` (envelope of its grid's edges, or of its GCPs)."""
    from rasterio.warp import transform as warp_transform
    from rasterio.warp import transform_bounds

    from ..preprocess import native_grid

    own = native_grid(scene)
    if own is not None:
        return tuple(transform_bounds(own.crs, crs, *own.bounds, densify_pts=21))
    if scene.gcps and scene.gcps[0]:
        from rasterio.crs import CRS

        gcps, gcp_crs = scene.gcps
        xs, ys = warp_transform(gcp_crs or CRS.from_epsg(4326), crs, [g.x for g in gcps], [g.y for g in gcps])
        return (min(xs), min(ys), max(xs), max(ys))
    raise InputError(f"{scene.path}: no georeferencing (neither CRS + geotransform nor GCPs); georeference it first")


def _fmt_bounds(b: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in b) + ")"


# -- the builder -------------------------------------------------------------------------


def make_pairs(
    sar: str | os.PathLike,
    optical: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PairsOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    command: str | None = None,
    **overrides: Any,
) -> PairsResult:
    """Build training pairs from the scenes ``sar`` and ``optical`` into ``out_dir`` (see the module docstring).

    Args:
        sar, optical: scene paths (anything :func:`sar2opt_geo.sensors.open_scene` reads).
        out_dir: dataset folder (new, empty, or an existing pairs dataset with ``append``).
        options: :class:`PairsOptions`; ``overrides`` replace single fields of it.
        progress: ``progress(fraction, message)``; cancel: polled; True raises ``CancelledError``.
        command: the command line recorded in ``metadata.json``.

    Returns:
        :class:`PairsResult`.

    Raises:
        sar2opt_geo.errors.Sar2OptError subclasses with one-line messages; the dataset is unchanged then.
    """
    from ..models.loading import load
    from ..sensors import open_scene, select_bands

    t0 = time.perf_counter()
    opts = options or PairsOptions()
    if overrides:
        opts = opts.replace(**overrides)
    out_dir = Path(out_dir)
    existing = existing_dataset(out_dir, opts.append)
    base = load(opts.model, "cpu", kind="sar").card
    from ..preprocess.bands import is_sar_card

    if not is_sar_card(base):
        raise ConfigError(f"model {opts.model!r} ({base.name}) does not take SAR input; pairs are stored in a SAR "
                          "model's input domain: use --model sar or a SAR checkpoint")
    storage = _storage(base)
    spacing = float(opts.pixel_spacing_m or base.input.pixel_spacing_m)
    with contextlib.ExitStack() as stack:
        sscene = stack.enter_context(open_scene(sar, bands=list(opts.sar_bands) if opts.sar_bands else None,
                                                calibration_factor_db=opts.calibration_factor_db,
                                                thermal_noise_removal=opts.thermal_noise_removal))
        oscene = stack.enter_context(open_scene(optical))
        if not sscene.is_sar:
            raise InputError(f"{sscene.path}: is a {sscene.sensor} optical scene, not SAR; give the SAR scene first "
                             "(sar2opt pairs SAR OPTICAL OUT)")
        if oscene.is_sar:
            raise InputError(f"{oscene.path}: is a {oscene.sensor} SAR scene; the second scene must be optical")
        select_bands(oscene, list(opts.optical_bands))
        return _build(sscene, oscene, out_dir, opts, existing, base, storage, spacing, t0=t0, progress=progress,
                      cancel=cancel, command=command)


def _dates(sscene: Any, oscene: Any, opts: PairsOptions) -> tuple[dict, dict, float | None]:
    from .acquisition import acquisition_time, days_apart

    ts, ws = acquisition_time(sscene, opts.sar_date)
    to, wo = acquisition_time(oscene, opts.optical_date)
    days = days_apart(ts, to)
    if opts.max_days is not None:
        for t, scene, flag in ((ts, sscene, "--sar-date"), (to, oscene, "--optical-date")):
            if t is None:
                raise InputError(f"{scene.path}: acquisition date unknown (not in its metadata, tags or name), so "
                                 f"--max-days cannot be checked; give it with {flag} YYYY-MM-DD")
        assert ts is not None and to is not None and days is not None  # both dates known (checked above)
        if days > opts.max_days:
            raise InputError(f"{sscene.path} and {oscene.path}: acquired {days:.1f} days apart "
                             f"({ts.date()} and {to.date()}), more than --max-days {opts.max_days:g}; "
                             "choose scenes closer in time or raise --max-days")
    iso = (lambda t: t.isoformat().replace("+00:00", "Z") if t is not None else None)
    return {"date": iso(ts), "date_from": ws}, {"date": iso(to), "date_from": wo}, days


def _compatible(existing: dict, meta_input: dict, storage: str, tile: int, sscene: Any, oscene: Any,
                out_dir: Path) -> None:
    """Refuse appending a scene pair whose domain differs from the dataset's, or one it already holds."""
    old = existing["input"]
    for key in ("bands", "quantity", "frequency_band", "pixel_spacing_m", "normalisation", "db_range", "percentile"):
        a, b = old.get(key), meta_input.get(key)
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            raise DatasetError(f"{out_dir}: cannot append: its pairs have input {key} {a!r}, this scene pair "
                               f"{b!r}; build a separate dataset")
    if existing["storage"]["rule"] != storage or int(existing["tile_size"]) != tile:
        raise DatasetError(f"{out_dir}: cannot append: dataset stores {existing['storage']['rule']} tiles of "
                           f"{existing['tile_size']} px, this run {storage} tiles of {tile} px")
    for p in existing["scene_pairs"]:
        if p["sar"]["product_id"] == sscene.product_id and p["optical"]["product_id"] == oscene.product_id \
                and list(p["sar"]["bands"]) == list(meta_input["bands"]):
            raise DatasetError(f"{out_dir}: already holds this scene pair ({sscene.product_id} + {oscene.product_id}) "
                               f"as {p['id']}; nothing to add")


def _build(sscene: Any, oscene: Any, out_dir: Path, opts: PairsOptions, existing: dict | None, base: Any,
           storage: Storage, spacing: float, *, t0: float, progress: ProgressFn | None, cancel: CancelFn | None,
           command: str | None) -> PairsResult:
    """Check, plan, survey, write and publish the pairs of two opened scenes (see the module docstring)."""
    from ..io.atomic import work_dir
    from ..preprocess import open_linear_source
    from ..radiometry import Quantity

    card = _pairs_card(base, sscene, _pairs_bands(sscene, base, opts), spacing)
    if storage == "db" and any(oscene.bands[b].quantity != Quantity.REFLECTANCE for b in oscene.bands):
        raise InputError(f"{oscene.path}: optical bands are digital numbers, not reflectance; the dB storage of "
                         f"model {base.name!r} keeps reflectance x 10000: use a percentile model (--model sar)")
    meta_input = json.loads(json.dumps(dataclasses.asdict(card.input)))
    sar_when, opt_when, days = _dates(sscene, oscene, opts)
    full, inter = _overlap(sscene, oscene, spacing)
    crs_name = full.crs.to_string()
    if existing is not None:
        _compatible(existing, meta_input, storage, opts.tile_size, sscene, oscene, out_dir)
    plan = _plan(sscene, card, full, inter, opts, progress, cancel)
    grid, win = plan.out_grid, plan.out_window
    T = opts.tile_size
    rows, cols = _tile_origins(sscene, oscene, grid, win, opts, spacing)

    warnings: list[str] = []
    pair_id = f"p{(len(existing['scene_pairs']) if existing else 0) + 1:03d}"
    with work_dir(out_dir) as work, staging(out_dir, existing is not None) as stage:
        sar_src = open_linear_source(sscene, plan.bands.bands, grid, work_dir=work, resampling=opts.resampling,
                                     cancel=cancel, progress=_sub(progress, 0.15, 0.25))
        opt_src = open_linear_source(oscene, tuple(oscene.bands), grid, work_dir=work, resampling=opts.resampling,
                                     cancel=cancel, progress=_sub(progress, 0.25, 0.35))
        with sar_src, opt_src, open_scl(oscene, opts.scl, grid) as scl:
            reflectance = all(oscene.bands[b].quantity == Quantity.REFLECTANCE for b in oscene.bands)
            saturation = dn_max(oscene)
            cloud_test = cloud_test_description(scl, reflectance, saturation)
            if scl is None and not reflectance:
                warnings.append(f"{oscene.path}: no SCL and no reflectance: clouds are not tested ({cloud_test})")
            read = row_reader(sar_src, opt_src, scl, cols, T, reflectance, saturation)
            decisions, hists = survey_tiles(read, rows, cols, T, opts.tile_stride, opts, storage,
                                            progress=_sub(progress, 0.35, 0.6), cancel=cancel)
            kept = [d for d in decisions if d["keep"]]
            n_nodata = sum(1 for d in decisions if d["reason"] == "nodata")
            n_cloud = sum(1 for d in decisions if d["reason"] == "cloud")
            if not kept:
                raise NoValidDataError(nothing_kept_message(sscene, oscene, len(decisions), n_nodata, n_cloud, opts,
                                                            T, cloud_test))
            scales = optical_scales(oscene, hists) if storage == "percentile" else None
            tiles = write_tiles(read, kept, cols, T, grid, win, stage, pair_id, plan=plan, card=card, storage=storage,
                                scales=scales, sscene=sscene, oscene=oscene, progress=_sub(progress, 0.6, 0.97),
                                cancel=cancel)
            check_cancel(cancel, str(out_dir))
            counts = {"candidates": len(decisions), "kept": len(kept), "rejected_nodata": n_nodata,
                      "rejected_cloud": n_cloud}
            pair = scene_pair_entry(pair_id, sar_entry(sscene, plan, sar_src, sar_when),
                                    optical_entry(oscene, opt_src, opt_when, scales), days, crs_name, grid, opts,
                                    counts=counts, cloud_test=cloud_test, warnings=warnings, command=command)
            metadata = existing or new_metadata(storage, card, meta_input, oscene, T)
            metadata["scene_pairs"].append(pair)
            metadata["tiles"].extend(tiles)
            publish(stage, out_dir, metadata, existing is not None)
    if progress is not None:
        progress(1.0, "done")
    seconds = time.perf_counter() - t0
    log.info("%s: %s, %d of %d tiles kept (%d nodata, %d cloud) in %.1f s", out_dir, pair_id, len(kept),
             len(decisions), n_nodata, n_cloud, seconds)
    return PairsResult(out_dir, pair_id, len(kept), len(decisions), n_nodata, n_cloud, days, crs_name,
                       tuple(grid.bounds), cloud_test, seconds, tuple(warnings))


def _pairs_bands(sscene: Any, base: Any, opts: PairsOptions) -> tuple[str, ...]:
    """The SAR bands of the pairs: those asked for, else the ones translate would feed ``base``'s model."""
    from ..preprocess import plan_bands

    if opts.sar_bands:
        return tuple(sscene.bands)
    chosen = plan_bands(sscene, base)
    bands = chosen.bands
    if chosen.warnings:
        log.info("pairs from %s of %s: the band%s %s would be fed (%s)", ", ".join(bands), sscene.path,
                 "s" if len(bands) > 1 else "", base.name, chosen.warnings[0])
    return bands


def _overlap(sscene: Any, oscene: Any, spacing: float) -> tuple[Any, tuple[float, float, float, float]]:
    """The SAR scene's model grid and its overlap with the optical footprint (an error if none)."""
    from ..preprocess import model_grid

    full = model_grid(sscene, spacing)
    sb, ob = full.bounds, _footprint(oscene, full.crs)
    inter = (max(sb[0], ob[0]), max(sb[1], ob[1]), min(sb[2], ob[2]), min(sb[3], ob[3]))
    if not (inter[2] > inter[0] and inter[3] > inter[1]):
        raise NoValidDataError(f"{sscene.path} and {oscene.path}: the scenes do not overlap (SAR {_fmt_bounds(sb)}, "
                               f"optical {_fmt_bounds(ob)} in {full.crs.to_string()}); give scenes of the same area")
    return full, inter


def _plan(sscene: Any, card: Any, full: Any, inter: tuple[float, float, float, float], opts: PairsOptions,
          progress: ProgressFn | None, cancel: CancelFn | None) -> Any:
    """The translation plan of the SAR scene cropped to the overlap (its grid, window, bands and statistics)."""
    from torch import nn

    from ..models.loading import LoadedModel
    from ..options import TranslateOptions
    from ..translation.plan import plan_translation

    pseudo = LoadedModel(nn.Identity(), card, "pairs", None)
    topts = TranslateOptions(bounds=inter, bounds_crs=full.crs.to_wkt(), device="cpu", resampling=opts.resampling,
                             calibration_factor_db=opts.calibration_factor_db,
                             thermal_noise_removal=opts.thermal_noise_removal)
    return plan_translation(sscene, pseudo, topts, progress=_sub(progress, 0.0, 0.15), cancel=cancel)


def _tile_origins(sscene: Any, oscene: Any, grid: Any, win: Any, opts: PairsOptions,
                  spacing: float) -> tuple[list[int], list[int]]:
    """Tile origin rows and columns on the lattice of the SAR model grid (an error if no tile fits)."""
    T, S = opts.tile_size, opts.tile_stride
    rows = lattice(int(win.row_off), grid.height, T, S)
    cols = lattice(int(win.col_off), grid.width, T, S)
    if not rows or not cols:
        raise NoValidDataError(f"{sscene.path} and {oscene.path}: their overlap is {grid.width} x {grid.height} px at "
                               f"{spacing:g} m, smaller than one tile of {T} px; use a smaller --tile")
    return rows, cols
