"""Row bands: one scene translated by several processes, byte-identical to one process.

A scene too large for one worker (a full Sentinel-1 IW GRD scene is about 25000 x 16700 px at
10 m) is cut into **row bands** of its model grid. Each band is translated by any process
(a Dask worker, or this one), written as a float32 GeoTIFF of unit values, and the bands are
assembled into the one COG. The result is the file :func:`sar2opt_geo.translate` writes for
the whole scene with the same options, byte for byte:

1. :func:`plan_scene` makes the whole-scene :class:`~sar2opt_geo.translation.plan.Plan` once (grids, tiling,
   and the normaliser with the *whole scene's* statistics, so every band gets the same scaling)
   and cuts the rows at origins of the whole-scene tile grid (:func:`split_rows`).
2. :func:`run_band` runs the engine with ``rows=(r0, r1)`` (:func:`sar2opt_geo.engine.run_tiled`):
   on the whole-scene tile grid, only the tile rows touching the band, in the whole-scene order,
   writing only the band's rows. The tiles at a band edge are run by both neighbours (about
   one tile row of extra work per cut).
3. The source is read in fixed blocks of ``READ_BLOCK_ROWS`` rows of the model grid
   (:func:`aligned_reader`, also used by a plain translate), because GDAL's warper gives
   last-bit (or, when a block holds nodata, larger) differences for the same pixel when asked
   for different windows; the calibrated, resampled source of a band keeps the whole scene's
   warp setup and calibrates only the native rows the band needs
   (:func:`~sar2opt_geo.preprocess.open_linear_source` ``rows=``).
4. :func:`assemble` puts the band files side by side in a VRT and encodes it through the same
   product writer as a plain translate (:func:`sar2opt_geo.io.open_product` ``staged=``).

Per-band resume: bands are written atomically to ``.<output stem>.bands/rows-<r0>-<r1>.tif``
beside the output, each with a JSON record of its key (scene fingerprint, model hash, options,
grid, statistics, rows), size and mtime; a rerun after a crash (even ``kill -9``) redoes only
the bands that are missing, partial or made for other inputs, then assembles. The folder is
removed once the output is in place.

Memory per process is bounded by the engine's streaming (a few tile rows of the scene's width),
whatever the band height; the band's calibrated source on disk grows with its height only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError, InputError
from ..io.stamps import file_fingerprint
from ..options import TranslateOptions, options_with_effect
from ..preprocess.aligned import READ_BLOCK_ROWS, aligned_reader
from ..progress import CancelFn, ProgressFn
from .band_rows import row_axis, source_rows, touching_tile_rows

if TYPE_CHECKING:
    from ..io.product import Product

__all__ = [
    "READ_BLOCK_ROWS",
    "BandResult",
    "ScenePlan",
    "aligned_reader",
    "assemble",
    "band_folder",
    "plan_scene",
    "run_band",
    "source_rows",
    "split_rows",
    "splittable",
    "touching_tile_rows",
    "translate_split",
]

log = logging.getLogger(__name__)


#: Option fields that cannot change a band's pixels (nothing at all, or the final encoding only).
_BAND_UNHASHED = options_with_effect("nothing", "encoding")


# -- cutting the rows ------------------------------------------------------------------


def split_rows(axis: Any, bands: int) -> tuple[tuple[int, int], ...]:
    """Cut scene rows ``[0, axis.length)`` into at most ``bands`` row bands of about equal height.

    Cuts lie on tile-row origins of the whole-scene grid (multiples of 16 in scene rows), so that
    only the one tile row ending below a cut is shared by the two bands. Fewer bands come back
    when the scene has fewer tile rows.
    """
    if bands < 1:
        raise ConfigError(f"bands={bands} must be >= 1")
    cuts = [axis.origin(i) for i in range(1, axis.count) if 0 < axis.origin(i) < axis.length]
    chosen: list[int] = []
    for k in range(1, bands):
        if not cuts:
            break
        ideal = k * axis.length / bands
        best = min(cuts, key=lambda c: (abs(c - ideal), c))
        if best not in chosen and (not chosen or best > chosen[-1]):
            chosen.append(best)
    edges = [0, *chosen, axis.length]
    return tuple((a, b) for a, b in itertools.pairwise(edges))


# -- planning --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenePlan:
    """A whole-scene translation cut into row bands; picklable (sent to Dask workers).

    Attributes:
        src: the scene path.
        model: checkpoint path (or a loaded model, for in-process runs).
        options: the translate options.
        plan: the whole-scene :class:`~sar2opt_geo.translation.plan.Plan` (grids, tiling, normaliser with the
            scene statistics).
        downsampling: the model's tile alignment, pixels.
        card_hash: the model's hash.
        rows: the bands, ``(r0, r1)`` rows of the model grid each.
        key: identifies the pixels of the bands (scene fingerprint, model, options, grid,
            statistics): band files made under another key are redone.
        device: the resolved torch device.
    """

    src: str
    model: Any
    options: TranslateOptions
    plan: Any
    downsampling: int
    card_hash: str
    rows: tuple[tuple[int, int], ...]
    key: str
    device: str

    def band_key(self, k: int) -> str:
        r0, r1 = self.rows[k]
        return hashlib.sha256(f"{self.key}:{r0}:{r1}".encode()).hexdigest()[:16]


def _open(src: str, opts: TranslateOptions) -> Any:
    from ..sensors import open_scene

    return open_scene(src, bands=list(opts.bands) if opts.bands else None,
                      calibration_factor_db=opts.calibration_factor_db, sensor=opts.sensor, units=opts.input_units,
                      thermal_noise_removal=opts.thermal_noise_removal)


def _load(model: Any, device: str, is_sar: bool) -> Any:
    from ..models.loading import load

    return load(model, device, kind="sar" if is_sar else "gray", cache=True)


def splittable(options: TranslateOptions | None) -> bool:
    """Whether a translation with ``options`` can be split into row bands with the same bytes:
    not in stochastic mode (or with several samples), whose dropout masks follow the whole sweep."""
    return options is None or not (options.stochastic or int(getattr(options, "samples", 1) or 1) > 1)


def plan_scene(src: str | os.PathLike, model: Any = None, options: TranslateOptions | None = None,
               bands: int = 2, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ScenePlan:
    """Plan the whole-scene translation of ``src`` (computing its statistics) and cut it into
    at most ``bands`` row bands. ``model`` as for :func:`sar2opt_geo.translate`.

    Raises :class:`~sar2opt_geo.errors.ConfigError` for a crop (``bounds`` / ``aoi``): row bands
    split whole scenes; and in stochastic mode (:func:`splittable`).
    """
    from ..engine.backends import resolve_precision
    from .api import resolve_device
    from .plan import plan_translation

    opts = options or TranslateOptions()
    if opts.bounds is not None or opts.aoi is not None:
        raise ConfigError("row bands split whole scenes; translate a crop (bounds / aoi) in one process")
    if not splittable(opts):
        raise ConfigError("row bands cannot reproduce stochastic mode (dropout masks are drawn in the order of the "
                          "whole sweep); translate it in one process (split 1)")
    device = resolve_device(opts.device)
    # 'auto' is resolved here, once: every band (any worker, any CPU) runs the same arithmetic
    opts = opts.replace(precision=resolve_precision(opts.precision, device, opts.backend))
    with _open(str(src), opts) as scene:
        loaded = _load(model, device, scene.is_sar)
        plan = plan_translation(scene, loaded, opts, progress=progress, cancel=cancel)
    rows = split_rows(row_axis(plan, loaded.downsampling), bands)
    full = plan.full
    options_for_key = {k: v for k, v in dataclasses.asdict(opts).items() if k not in _BAND_UNHASHED}
    payload = {
        "scene": file_fingerprint(Path(src)), "model": loaded.card_hash, "options": options_for_key, "device": device,
        "grid": [full.crs.to_wkt(), list(full.transform)[:6], full.width, full.height],
        "tiling": dataclasses.asdict(plan.tiling), "normaliser": plan.normaliser.describe(),
        "bands": list(plan.bands.bands),
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    spec = str(loaded.path) if loaded.path is not None else loaded
    log.info("%s: %d x %d px model grid in %d row band(s) %s", src, full.width, full.height, len(rows), rows)
    return ScenePlan(str(src), spec, opts, plan, loaded.downsampling, loaded.card_hash, rows, key, device)


# -- one band --------------------------------------------------------------------------


@dataclass(frozen=True)
class BandResult:
    """One band written (or found up to date): rows ``(r0, r1)``, its file, what the engine did."""

    index: int
    rows: tuple[int, int]
    path: str
    valid_pixels: int
    tiles: int
    tiles_skipped: int
    seconds: float
    resampling: str
    reused: bool = False


def band_folder(dst: str | os.PathLike) -> Path:
    """The hidden folder of ``dst``'s band files: ``.<stem>.bands`` beside it (kept across crashes)."""
    dst = Path(dst)
    return dst.with_name(f".{dst.stem}.bands")


def _band_paths(sp: ScenePlan, k: int, dst: str | os.PathLike) -> tuple[Path, Path]:
    r0, r1 = sp.rows[k]
    path = band_folder(dst) / f"rows-{r0:07d}-{r1:07d}.tif"
    return path, path.with_suffix(".json")


def _band_record(sp: ScenePlan, k: int, dst: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON record of band ``k`` if its file is complete and was made for ``sp``'s key."""
    path, meta = _band_paths(sp, k, dst)
    try:
        rec = json.loads(meta.read_text())
        st = path.stat()
    except (OSError, ValueError):
        return None
    if rec.get("key") != sp.band_key(k) or rec.get("size") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
        return None
    return rec


class _BandSink:
    """Takes the engine's output rows of one band (whole-scene row numbers) into a scratch raster."""

    def __init__(self, path: Path, work: Path, grid: Any, count: int, r0: int) -> None:
        from ..io.geotiff import ScratchRaster

        self.work, self.r0 = work, r0
        self.raster = ScratchRaster(path, crs=grid.crs, transform=grid.transform, width=grid.width,
                                    height=grid.height, count=count)

    def write(self, window: Window, unit: np.ndarray) -> None:
        self.raster.write(Window(col_off=window.col_off, row_off=int(window.row_off) - self.r0,
                                 width=window.width, height=window.height), unit)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from ..io.atomic import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _band_progress(progress: ProgressFn | None, k: int, n: int) -> ProgressFn | None:
    """``progress`` for band ``k`` of ``n`` equal steps (None stays None)."""
    if progress is None:
        return None
    return lambda f, m: progress((k + f) / n, m)


def run_band(sp: ScenePlan, k: int, dst: str | os.PathLike, *, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> BandResult:
    """Translate band ``k`` of ``sp`` into its file beside ``dst`` (see the module docstring);
    a band already complete for the same key is not redone (``reused``)."""
    from ..errors import CheckpointError
    from ..io.atomic import atomic_outputs, work_dir
    from .pipeline import run_inference

    t0 = time.perf_counter()
    r0, r1 = sp.rows[k]
    path, meta = _band_paths(sp, k, dst)
    done = _band_record(sp, k, dst)
    if done is not None:
        log.info("%s: band rows %d-%d up to date", dst, r0, r1)
        return BandResult(k, (r0, r1), str(path), int(done["valid_pixels"]), int(done["tiles"]),
                          int(done["tiles_skipped"]), 0.0, str(done["resampling"]), reused=True)
    plan = sp.plan
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(sp.src, sp.options) as scene:
        loaded = _load(sp.model, sp.device, scene.is_sar)
        if loaded.card_hash != sp.card_hash:
            raise CheckpointError(f"{sp.model}: the model changed since the scene was planned "
                                  f"(hash {loaded.card_hash}, planned with {sp.card_hash}); run again")
        band_grid = plan.full.window_grid(Window(col_off=0, row_off=r0, width=plan.full.width, height=r1 - r0))
        with atomic_outputs(path) as (tmp,), work_dir(path) as work:
            assert tmp is not None  # the temporary of a path, not of None
            sink = _BandSink(tmp, work, band_grid, loaded.card.out_channels, r0)
            try:
                # run_inference uses only .work and .write() of its product (without samples), which _BandSink has
                stats, note = run_inference(scene, loaded, plan, sp.options, cast("Product", sink), sp.device,
                                            progress=progress, cancel=cancel, rows=(r0, r1))
            finally:
                sink.raster.close()
    st = path.stat()
    _write_json(meta, {"key": sp.band_key(k), "rows": [r0, r1], "valid_pixels": sink.raster.valid_pixels,
                       "tiles": stats.tiles, "tiles_skipped": stats.tiles_skipped, "resampling": note,
                       "size": st.st_size, "mtime_ns": st.st_mtime_ns, "scene": sp.src})
    seconds = time.perf_counter() - t0
    log.info("%s: band rows %d-%d (%d tiles) in %.1f s", dst, r0, r1, stats.tiles, seconds)
    return BandResult(k, (r0, r1), str(path), sink.raster.valid_pixels, stats.tiles, stats.tiles_skipped,
                      seconds, note)


# -- assembly --------------------------------------------------------------------------


def _write_vrt(path: Path, grid: Any, count: int, bands: Sequence[tuple[Path, tuple[int, int]]]) -> None:
    """A float32 VRT of ``grid`` made of the band files, each at its rows (NaN nodata)."""
    import rasterio

    with rasterio.open(bands[0][0]) as first:  # the CRS as GDAL reads it back from a band file
        srs = first.crs.to_wkt()
    t = grid.transform
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS").text = srs
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    for b in range(1, count + 1):
        band = ET.SubElement(root, "VRTRasterBand", dataType="Float32", band=str(b))
        ET.SubElement(band, "NoDataValue").text = "nan"
        for src, (r0, r1) in bands:
            s = ET.SubElement(band, "SimpleSource")
            ET.SubElement(s, "SourceFilename", relativeToVRT="0").text = str(Path(src).resolve())
            ET.SubElement(s, "SourceBand").text = str(b)
            ET.SubElement(s, "SrcRect", xOff="0", yOff="0", xSize=str(grid.width), ySize=str(r1 - r0))
            ET.SubElement(s, "DstRect", xOff="0", yOff=str(r0), xSize=str(grid.width), ySize=str(r1 - r0))
    from ..io.atomic import atomic_file

    with atomic_file(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")


def assemble(sp: ScenePlan, dst: str | os.PathLike, *, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> Any:
    """Encode the band files of ``sp`` into the COG at ``dst`` (the same writer and tags as
    :func:`sar2opt_geo.translate`), then remove the band folder. Returns a
    :class:`sar2opt_geo.Result`. Raises :class:`~sar2opt_geo.errors.InputError` naming the first
    band that is missing or outdated."""
    from ..io import open_product
    from .pipeline import encode_product, make_result

    t0 = time.perf_counter()
    dst = Path(dst)
    records = []
    for k, (r0, r1) in enumerate(sp.rows):
        rec = _band_record(sp, k, dst)
        if rec is None:
            raise InputError(f"{_band_paths(sp, k, dst)[0]}: band rows {r0}-{r1} of {dst.name} is missing or "
                             "outdated; run the bands again")
        records.append(rec)
    folder = band_folder(dst)
    vrt = folder / "mosaic.vrt"
    with _open(sp.src, sp.options) as scene:
        loaded = _load(sp.model, sp.device, scene.is_sar)
        count = loaded.card.out_channels
        _write_vrt(vrt, sp.plan.out_grid, count, [(_band_paths(sp, k, dst)[0], rows) for k, rows in enumerate(sp.rows)])
        opts = sp.options
        with open_product(dst, sp.plan.out_grid, count, quicklook=opts.quicklook, overwrite=opts.overwrite,
                          staged=vrt) as product:
            encode_product(scene, loaded, sp.plan, opts, product, sum(int(r["valid_pixels"]) for r in records),
                           str(records[0]["resampling"]), progress=progress, cancel=cancel)
    shutil.rmtree(folder, ignore_errors=True)
    return make_result(dst, product, sp.plan, loaded, sum(int(r["tiles"]) for r in records),
                   sum(int(r["tiles_skipped"]) for r in records), t0)


def translate_split(src: str | os.PathLike, dst: str | os.PathLike, model: Any = None,
                    options: TranslateOptions | None = None, *, bands: int = 2,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Any:
    """:func:`sar2opt_geo.translate` of a whole scene, in ``bands`` row bands run one after the
    other in this process (resumable per band); the same file as a one-pass translate.

    ``sar2opt batch --split`` runs the bands on Dask workers instead.
    """
    from ..io import check_outputs, quicklook_path

    opts = options or TranslateOptions()
    check_outputs([src], {"output": dst, "quicklook": quicklook_path(dst) if opts.quicklook else None},
                  overwrite=opts.overwrite)
    sp = plan_scene(src, model, opts, bands, cancel=cancel)
    for k in range(len(sp.rows)):
        run_band(sp, k, dst, cancel=cancel, progress=_band_progress(progress, k, len(sp.rows) + 1))
    return assemble(sp, dst, cancel=cancel)
