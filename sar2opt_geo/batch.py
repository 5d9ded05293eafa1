"""Batches: translate whole scenes, or every scene x AOI feature into its own masked GeoTIFF,
resumably, serially or on Dask distributed; a large scene can be split into row bands run by
several workers, with the very bytes of a one-pass translate.

Three steps:

1. :func:`plan_batch` (in the calling process, cheap): open each scene's metadata; with an AOI,
   reproject and buffer each feature into the scene CRS and drop unusable or non-overlapping
   features (reported, not fatal); hash the inputs of each output and skip those already
   complete from an earlier run (same hash, same file size and mtime as recorded).
2. :func:`run_task` (in any process): load the model once per process
   (:func:`load_model_cached`), call :func:`sar2opt_geo.translate` on the whole scene, or with
   ``bounds`` (the crop window, with the engine's context margin read around it) and ``aoi``
   (mask outside the polygon to nodata unless ``keep_rectangle``). Never raises: a failure
   becomes a record. A scene split into row bands (``split``) runs as
   :func:`plan_scene_task` -> :func:`band_task` per band -> :func:`assemble_task`
   (:mod:`sar2opt_geo.translation.rowbands`), each a task of its own.
3. :func:`run_batch` runs the tasks serially (``client=None``) or as Dask futures
   (``client.submit`` + ``as_completed``), and merges its rows into ``summary.gpkg`` (layer
   ``summary``): footprint, scene, output, status (done / skipped / failed), reason, timing and
   input hash. Rows are keyed by output path and merged under a file lock, so several AOI files
   or concurrent batches can share one folder; the summary is rewritten after every whole scene
   and every crop that took a while (and at least every few seconds), so a batch killed with
   ``kill -9`` resumes without redoing finished scenes.

Output names say which scene, AOI file and feature an output comes from, whatever else is in the
batch or the folder, so that one output is never replaced by another's:

* whole scene: ``<scene key>.tif``;
* AOI crop: ``<aoi key>__<feature name>__<scene key>.tif``
  (:func:`sar2opt_geo.aoi.output_filename`), e.g. ``fields__Parcel_1__S1A_IW_GRDH_1SDV_...tif``.

The **scene key** is the scene's stem (file name without suffix; a product folder's name without
``.SAFE``). When scenes with the same stem meet, in one batch or in one output folder across
batches, the scene whose rows in the folder's summary already use the plain stem keeps it, and
the others get ``<stem>-<8 hex digits>``, the digits being a SHA-256 prefix of the scene's
resolved path; a scene once named with its hash keeps that name (:func:`scene_keys`). Names thus
never depend on the order of the scenes, so a rerun with the scenes listed in another order skips
what is done. The **aoi key** is the AOI file's stem, sanitised, plus ``.<layer>`` for a layer of
a multi-layer file (:func:`sar2opt_geo.aoi.aoi_key`): two AOI files whose features share a name
("field1") give two outputs and two summary rows. Two AOI files with the same stem (in different
folders) are the same AOI to a batch: the later one's crops replace the earlier one's, with a
warning naming both files. The feature name is the ``--name-field`` value or the feature id
(:func:`sar2opt_geo.aoi.read_aoi`). Outputs are written atomically by translate.

The output folder is checked before any work (created if missing, a real probe file written and
removed): an existing file there, a read-only folder or a full disk is one
:class:`~sar2opt_geo.errors.ConfigError` / :class:`~sar2opt_geo.errors.InputError` line naming
the folder. A disk that fills up (or turns read-only) during the batch stops it with one
:class:`~sar2opt_geo.errors.InputError` line; the outputs finished so far are kept and recorded,
and a rerun resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import shapely
from pyproj import CRS
from shapely.geometry import MultiPoint, box
from shapely.geometry.base import BaseGeometry

from . import aoi as aoi_mod
from .errors import (
    ConfigError,
    GeoreferencingError,
    InputError,
    NoValidDataError,
    Sar2OptError,
)
from .io.stamps import file_fingerprint
from .models.loading import file_stamp, load_model_cached

__all__ = [
    "SUMMARY_CRS",
    "SUMMARY_LAYER",
    "SUMMARY_NAME",
    "BatchSummary",
    "CropTask",
    "Record",
    "SceneInfo",
    "assemble_task",
    "band_task",
    "bands_per_scene",
    "check_output_dir",
    "dask_client",
    "expand_scenes",
    "input_hash",
    "load_model_cached",
    "plan_batch",
    "plan_scene_task",
    "read_summary",
    "run_batch",
    "run_task",
    "scene_info",
    "scene_keys",
    "summary_lock",
    "write_summary",
]

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.gpkg"
SUMMARY_LAYER = "summary"
#: CRS of the scene footprints in the summary of a whole-scene batch (an AOI batch uses the AOI's).
SUMMARY_CRS = "EPSG:4326"
Status = Literal["done", "skipped", "failed"]
Split = int | Literal["auto"]

_SCENE_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2", ".zip"}
#: TranslateOptions fields that do not change the pixels of a crop (left out of the input hash);
#: the crop fields are hashed through the prepared polygon instead.
_UNHASHED_OPTIONS = {"device", "batch_size", "overwrite", "bounds", "bounds_crs", "aoi", "aoi_crs", "keep_rectangle"}
#: The summary is rewritten after every whole scene, after a crop that took this many seconds, and
#: when this long passed since the last write: a batch killed with kill -9 loses at most about this
#: much work per worker (crops finished since the last write are redone).
_CHECKPOINT_SECONDS = 5.0
_LOCK_TIMEOUT_S = 300.0  # waiting longer than this for the summary lock is an error naming the lock file
NO_VALID_DATA = "no valid data in the polygon"
NO_VALID_DATA_SCENE = "no valid data in the scene"
#: errno values and wordings (GDAL's, SQLite's, io.atomic's) of a folder that cannot take more
#: outputs: a batch stops at the first output failing so, instead of failing every later one.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_STORAGE_WORDS = re.compile(
    r"no space left|disk quota|read-only file system|disk is full|not enough space|free disk space", re.IGNORECASE)


# -- scenes ----------------------------------------------------------------------------


def _is_product_dir(path: Path) -> bool:
    """A folder that is one product: Sentinel-1 SAFE, or a PALSAR-2 product (summary.txt)."""
    return path.suffix.upper() == ".SAFE" or (path / "manifest.safe").exists() or (path / "summary.txt").exists()


def expand_scenes(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Scene paths from files, product folders (SAFE, PALSAR-2) and folders of them (not recursive:
    raster files with a known suffix and product folders directly inside), without duplicates."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: scene not found")
        if p.is_dir() and not _is_product_dir(p):
            found = sorted(
                c for c in p.iterdir()
                if (c.is_file() and c.suffix.lower() in _SCENE_SUFFIXES) or (c.is_dir() and _is_product_dir(c))
            )
            if not found:
                raise InputError(f"{p}: folder holds no scene (GeoTIFF, .SAFE or PALSAR-2 product); pass scene files")
            out.extend(found)
        else:
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    return unique


@dataclass(frozen=True)
class SceneInfo:
    """What planning needs from a scene: its CRS (``crs``, a CRS string; for GCP-georeferenced
    products the GCP CRS), its footprint in that CRS, and whether it is SAR."""

    path: Path
    stem: str
    crs: str
    footprint: BaseGeometry
    is_sar: bool
    fingerprint: dict[str, Any]


def scene_info(path: str | os.PathLike) -> SceneInfo:
    """Open a scene's metadata with :func:`sar2opt_geo.sensors.open_scene` (no pixels read)."""
    from rasterio.transform import array_bounds

    from .sensors import open_scene

    path = Path(path)
    with open_scene(path) as scene:
        if scene.crs is not None and scene.transform is not None and not scene.transform.is_identity:
            left, bottom, right, top = array_bounds(scene.height, scene.width, scene.transform)
            crs, footprint = scene.crs, box(left, bottom, right, top)
        elif scene.gcps and scene.gcps[0]:
            gcps, crs = scene.gcps
            footprint = MultiPoint([(g.x, g.y) for g in gcps]).convex_hull
        else:
            raise GeoreferencingError(f"{path}: scene has neither a CRS with a transform nor GCPs; it cannot be cropped to an AOI")
        is_sar = scene.is_sar
    return SceneInfo(path, path.stem, _crs_string(crs), footprint, is_sar, file_fingerprint(path))


def _crs_string(crs: Any) -> str:
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.to_wkt()


def _path_hash(path: str) -> str:
    """8 hex digits identifying a resolved path (SHA-256 prefix)."""
    return hashlib.sha256(path.encode()).hexdigest()[:8]


def _keys_in(output_name: str) -> set[str]:
    """The scene keys an output file name may carry (case-folded, for macOS and Windows):
    ``<key>.tif`` (whole scene) or ``...__<key>.tif`` (AOI crop): the stem and every tail after a ``__``."""
    stem = output_name.casefold().removesuffix(".tif")
    parts = stem.split("__")
    return {"__".join(parts[i:]) for i in range(len(parts))}


def scene_keys(scenes: Sequence[Path], previous: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The scene part of each scene's output names: its stem, or ``<stem>-<8 hex digits>`` (a
    SHA-256 prefix of its resolved path) when stems collide; never dependent on the order of ``scenes``.

    ``previous`` holds the rows of the folder's summary (:func:`read_summary`). A scene keeps its
    plain stem when no other scene's row in the folder uses it and, in this batch, either no other
    scene has the same stem (compared case-insensitively) and the scene was not named with its
    hash before, or its own rows already use the plain stem (it had it first). Otherwise it gets
    the hashed key, so an output of another scene with the same stem (another folder) is never
    replaced, and reruns, in any order, find their outputs under the same names.
    """
    previous = previous or {}
    resolved = [str(Path(p).resolve()) for p in scenes]
    in_batch = Counter(Path(p).stem.casefold() for p in scenes)
    stems = {Path(p).stem.casefold() for p in scenes}
    hashed = {f"{Path(p).stem}-{_path_hash(r)}".casefold() for p, r in zip(scenes, resolved)}
    plain_users: dict[str, set[str]] = {}  # stem -> scenes (resolved) whose rows use it as their key
    hashed_used: set[tuple[str, str]] = set()  # (scene resolved, its hashed key) used by its rows
    for output, row in previous.items():
        scene = str(row.get("scene") or "")
        found = _keys_in(Path(output).name) if scene else set()
        for key in found & stems:
            plain_users.setdefault(key, set()).add(os.path.realpath(scene))
        for key in found & hashed:
            hashed_used.add((os.path.realpath(scene), key))
    keys = []
    for p, r in zip(scenes, resolved):
        stem = Path(p).stem
        hashed_key = f"{stem}-{_path_hash(r)}"
        users = plain_users.get(stem.casefold(), set())
        alone = in_batch[stem.casefold()] == 1 and (r, hashed_key.casefold()) not in hashed_used
        keys.append(stem if users == {r} or (not users and alone) else hashed_key)
    return keys


# -- tasks and records -----------------------------------------------------------------


@dataclass(frozen=True)
class CropTask:
    """One output to make: a scene x AOI crop, or a whole scene (``geometry`` and ``bounds`` None);
    picklable (sent to Dask workers)."""

    order: int  # position in the summary (scene-major)
    name: str
    fid: int  # AOI feature id; -1 for a whole scene
    scene: str
    output: str
    geometry: BaseGeometry | None  # buffered AOI in ``crs`` (the scene CRS); None for a whole scene
    crs: str
    bounds: tuple[float, float, float, float] | None  # crop bounds in ``crs``: polygon bounds within the scene
    keep_rectangle: bool
    model: str  # checkpoint path
    options: Any  # TranslateOptions | None
    input_hash: str
    aoi_geometry: BaseGeometry | None  # summary footprint: the feature as read (AOI CRS), or the scene's (lon/lat)
    aoi: str = ""  # the AOI file (resolved path); "" for a whole scene
    aoi_layer: str = ""  # its layer

    @property
    def whole_scene(self) -> bool:
        return self.geometry is None and self.bounds is None


@dataclass
class Record:
    """One row of the summary."""

    order: int
    name: str
    fid: int
    scene: str
    output: str
    status: Status
    reason: str = ""
    seconds: float = 0.0
    input_hash: str = ""
    output_size: int = 0  # bytes, 0 when there is no output
    output_mtime_ns: int = 0
    finished: str = ""  # UTC ISO time
    geometry: BaseGeometry | None = None
    bands: int = 0  # row bands the output was assembled from (0: one pass)
    aoi: str = ""  # the AOI file (resolved path); "" for a whole scene
    aoi_layer: str = ""  # its layer


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - datetime.UTC needs 3.11


def _record(task: CropTask, status: Status, reason: str = "", seconds: float = 0.0) -> Record:
    return Record(task.order, task.name, task.fid, task.scene, task.output, status, reason, round(seconds, 3),
                  task.input_hash, finished=_now(), geometry=task.aoi_geometry, aoi=task.aoi, aoi_layer=task.aoi_layer)


def _card_hash(path: str) -> str:
    """SHA-256 prefix of a checkpoint (``models.checkpoint.card_hash``), cached by path, size and mtime."""
    return _card_hash_stamped(path, file_stamp(path))


@functools.lru_cache(maxsize=16)
def _card_hash_stamped(path: str, stamp: tuple[int, int] | None) -> str:
    from .models.checkpoint import card_hash

    if stamp is None:
        return "missing"
    return card_hash(path)


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    d = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(vars(options))
    return {k: v for k, v in d.items() if k not in _UNHASHED_OPTIONS}


def input_hash(scene: SceneInfo, geometry: BaseGeometry | None, model: str, options: Any, keep_rectangle: bool) -> str:
    """SHA-256 (first 16 hex digits) of what determines an output's pixels: the scene's path, size
    and mtime, the prepared polygon's WKB (scene CRS, buffered; None for a whole scene), the model
    card hash, the options. How a whole scene is split into row bands is not in it: the bytes are
    the same."""
    payload = {
        "scene": scene.fingerprint,
        "crs": scene.crs,
        "polygon_wkb": shapely.to_wkb(geometry, hex=True) if geometry is not None else None,
        "model": _card_hash(model),
        "options": _options_dict(options),
        "keep_rectangle": keep_rectangle,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _output_matches(prev: dict[str, Any], output: Path) -> bool:
    try:
        st = output.stat()
    except OSError:
        return False
    return int(prev.get("output_size") or 0) == st.st_size and int(prev.get("output_mtime_ns") or 0) == st.st_mtime_ns


def _up_to_date(prev: dict[str, Any] | None, h: str, out: Path, redo: bool, base: dict[str, Any]) -> Record | None:
    """The 'skipped' row for an output an earlier run already made with the same inputs, else None."""
    if redo or prev is None or prev.get("input_hash") != h:
        return None
    if prev.get("status") in ("done", "skipped") and _output_matches(prev, out):
        from .translation.rowbands import band_folder

        stale = band_folder(out)  # band files of a run killed after its assembly
        if stale.is_dir():
            import shutil

            shutil.rmtree(stale, ignore_errors=True)
        return Record(**base, status="skipped", reason="up to date (same inputs as the earlier run)",
                      input_hash=h, output_size=int(prev["output_size"]),
                      output_mtime_ns=int(prev["output_mtime_ns"]), finished=_now(), bands=int(prev.get("bands") or 0))
    reason = str(prev.get("reason", ""))
    if prev.get("status") == "skipped" and reason.startswith((NO_VALID_DATA, NO_VALID_DATA_SCENE)):
        return Record(**base, status="skipped", reason=reason, input_hash=h, finished=_now())
    return None


def _model_path(model: str | os.PathLike | None, info: SceneInfo) -> str:
    from .models.checkpoint import default_model_path
    from .models.loading import resolve_model_path

    return str(resolve_model_path(model).resolve() if model is not None
               else default_model_path("sar" if info.is_sar else "gray"))


def _open_scene_info(scene_path: Path) -> tuple[SceneInfo | None, str]:
    try:
        return scene_info(scene_path), ""
    except Sar2OptError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not stop the batch either
        return None, f"{scene_path}: cannot open scene: {exc}"


def _lonlat_footprint(info: SceneInfo) -> BaseGeometry | None:
    """The scene footprint in :data:`SUMMARY_CRS` (densified edges), for the summary; None if it cannot be."""
    try:
        return aoi_mod.prepare_aoi(info.footprint, info.crs, SUMMARY_CRS)
    except Exception:  # noqa: BLE001 - only the summary's picture of the scene is lost
        return None


def plan_batch(
    scenes: Sequence[str | os.PathLike],
    aoi: gpd.GeoDataFrame | None,
    output_dir: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    options: Any = None,
    buffer_m: float = 0.0,
    keep_rectangle: bool = False,
    redo: bool = False,
    previous: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[CropTask], list[Record]]:
    """Split the batch into outputs to make and rows already decided (skipped or failed at planning).

    ``aoi`` comes from :func:`sar2opt_geo.aoi.read_aoi` (its ``attrs`` name the AOI file; a frame
    without them is named ``aoi``); None translates each whole scene into ``<scene key>.tif``.
    ``buffer_m`` is in metres; ``previous`` maps output paths to rows of an earlier summary
    (:func:`read_summary`); it also decides the scene keys (:func:`scene_keys`).
    """
    output_dir = Path(output_dir).resolve()
    previous = previous or {}
    scene_paths = expand_scenes(scenes)
    keys = scene_keys(scene_paths, previous)
    tasks: list[CropTask] = []
    decided: list[Record] = []
    outputs: dict[str, str] = {}  # output (case-folded) -> what it is, to refuse two outputs on one path
    order = 0

    def claim(out: Path, what: str) -> None:
        other = outputs.setdefault(str(out).casefold(), what)
        if other != what:
            raise ConfigError(f"{out}: {other} and {what} would both be written to this file; rename the "
                              "feature (--name-field) or the scene file")

    if aoi is None:
        for scene_path, key in zip(scene_paths, keys):
            order += 1
            out = output_dir / f"{key}.tif"
            claim(out, f"scene {scene_path}")
            info, scene_error = _open_scene_info(scene_path)
            footprint = _lonlat_footprint(info) if info is not None else None
            base = {"order": order, "name": key, "fid": -1, "scene": os.path.abspath(scene_path), "output": str(out),
                    "geometry": footprint}
            if info is None:
                decided.append(Record(**base, status="failed", reason=scene_error, finished=_now()))
                continue
            model_path = _model_path(model, info)
            h = input_hash(info, None, model_path, options, False)
            skip = _up_to_date(previous.get(str(out)), h, out, redo, base)
            if skip is not None:
                decided.append(skip)
                continue
            tasks.append(CropTask(order, key, -1, base["scene"], str(out), None, info.crs, None, False,
                                  model_path, options, h, footprint))
        return tasks, decided
    source, layer = str(aoi.attrs.get("aoi_source") or ""), str(aoi.attrs.get("aoi_layer") or "")
    akey = str(aoi.attrs.get("aoi_key") or "aoi")
    for scene_path, key in zip(scene_paths, keys):
        info, scene_error = _open_scene_info(scene_path)
        for fid, name, geom in zip(aoi.index, aoi["name"], aoi.geometry):
            order += 1
            name = str(name)
            geom = geom if isinstance(geom, BaseGeometry) else None  # a null geometry reads as None or NaN
            out = output_dir / aoi_mod.output_filename(akey, name, key)
            claim(out, f"feature {fid} ({name}) x scene {scene_path}")
            base = {"order": order, "name": name, "fid": int(fid), "scene": os.path.abspath(scene_path),
                    "output": str(out), "geometry": geom, "aoi": source, "aoi_layer": layer}
            if info is None:
                decided.append(Record(**base, status="failed", reason=scene_error, finished=_now()))
                continue
            problem = aoi_mod.geometry_problem(geom, buffer_m)
            if problem is not None:
                status: Status = "skipped" if problem in (aoi_mod.EMPTY_GEOMETRY, aoi_mod.NULL_GEOMETRY) else "failed"
                decided.append(Record(**base, status=status, reason=problem, finished=_now()))
                continue
            try:
                prepared = aoi_mod.prepare_aoi(geom, aoi.crs, info.crs, buffer_m)
            except Exception as exc:  # noqa: BLE001 - PROJ/GEOS errors become a failed row
                decided.append(Record(**base, status="failed", reason=f"cannot reproject to {info.crs}: {exc}", finished=_now()))
                continue
            if prepared.is_empty:
                decided.append(Record(**base, status="skipped", reason=f"empty after a buffer of {buffer_m:g} m", finished=_now()))
                continue
            overlap = prepared.intersection(info.footprint)
            if overlap.is_empty or overlap.area == 0:
                decided.append(Record(**base, status="skipped", reason="does not overlap the scene", finished=_now()))
                continue
            model_path = _model_path(model, info)
            h = input_hash(info, prepared, model_path, options, keep_rectangle)
            prev = previous.get(str(out))
            skip = _up_to_date(prev, h, out, redo, base)
            if skip is not None:
                decided.append(skip)
                continue
            _warn_if_replacing(prev, out, source, layer)
            pb, sb = prepared.bounds, info.footprint.bounds
            bounds = (max(pb[0], sb[0]), max(pb[1], sb[1]), min(pb[2], sb[2]), min(pb[3], sb[3]))
            tasks.append(CropTask(order, name, int(fid), base["scene"], str(out), prepared, info.crs, bounds,
                                  keep_rectangle, model_path, options, h, geom, source, layer))
    return tasks, decided


def _warn_if_replacing(prev: dict[str, Any] | None, out: Path, source: str, layer: str) -> None:
    """Warn when ``out`` was made from another AOI file with the same aoi key (same stem, other folder)."""
    if prev is None or not prev.get("aoi") or not source or not out.exists():
        return
    if (str(prev["aoi"]), str(prev.get("aoi_layer") or "")) != (source, layer):
        log.warning("%s: replaces the crop made from %s (an AOI file with the same name); rename one of the "
                    "AOI files to keep both", out, prev["aoi"])


# -- running ---------------------------------------------------------------------------


def _failure(task: CropTask, exc: BaseException, t0: float) -> Record:
    """The record of a task that raised: skipped for no valid data, else failed with the reason."""
    if isinstance(exc, NoValidDataError):  # the polygon (or scene) covers only nodata (fill)
        what = NO_VALID_DATA_SCENE if task.whole_scene else NO_VALID_DATA
        return _record(task, "skipped", f"{what}: {exc}", time.perf_counter() - t0)
    if isinstance(exc, Sar2OptError):
        return _record(task, "failed", str(exc), time.perf_counter() - t0)
    log.debug("output %s failed", task.output, exc_info=exc)
    return _record(task, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)


def _done(task: CropTask, t0: float, bands: int = 0) -> Record:
    rec = _record(task, "done", "", time.perf_counter() - t0)
    st = Path(task.output).stat()
    rec.output_size, rec.output_mtime_ns, rec.bands = st.st_size, st.st_mtime_ns, bands
    return rec


def run_task(task: CropTask, translate: Callable[..., Any] | None = None) -> Record:
    """Translate one crop or whole scene; never raises for a failed one (the record says why),
    only on interrupt."""
    from .translation.api import resolve_device

    if translate is None:
        from .translation.api import translate
    t0 = time.perf_counter()
    try:
        device = resolve_device(getattr(task.options, "device", "auto") or "auto")
        model = load_model_cached(task.model, device)
        Path(task.output).parent.mkdir(parents=True, exist_ok=True)
        if task.whole_scene:
            translate(task.scene, task.output, model, task.options, overwrite=True)
        else:
            translate(
                task.scene, task.output, model, task.options,
                bounds=task.bounds, bounds_crs=task.crs, aoi=task.geometry, aoi_crs=task.crs,
                keep_rectangle=task.keep_rectangle, overwrite=True,
            )
    except Exception as exc:  # noqa: BLE001 - keep the batch going; the summary carries the error
        return _failure(task, exc, t0)
    return _done(task, t0)


def _split_options(task: CropTask) -> Any:
    from .options import TranslateOptions

    return (task.options or TranslateOptions()).replace(overwrite=True)


def plan_scene_task(task: CropTask, bands: int) -> Any:
    """Plan a whole scene in ``bands`` row bands (:func:`sar2opt_geo.translation.rowbands.plan_scene`): the
    :class:`~sar2opt_geo.translation.rowbands.ScenePlan`, or a failed/skipped :class:`Record`; never raises."""
    from .translation.rowbands import plan_scene

    t0 = time.perf_counter()
    try:
        return plan_scene(task.scene, task.model, _split_options(task), bands)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        return _failure(task, exc, t0)


def band_task(task: CropTask, plan: Any, k: int) -> Any:
    """Translate band ``k`` of ``plan`` (:func:`sar2opt_geo.translation.rowbands.run_band`): a
    :class:`~sar2opt_geo.translation.rowbands.BandResult`, or a failed :class:`Record`; never raises."""
    from .translation.rowbands import run_band

    t0 = time.perf_counter()
    try:
        return run_band(plan, k, task.output)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        rec = _failure(task, exc, t0)
        r0, r1 = plan.rows[k]
        rec.reason = f"row band {r0}-{r1}: {rec.reason}"
        return rec


def assemble_task(task: CropTask, plan: Any, t_start: float | None = None) -> Record:
    """Assemble the bands of ``plan`` into the output (:func:`sar2opt_geo.translation.rowbands.assemble`);
    never raises. ``t_start``: ``time.time()`` when the scene's first task started, for the row's seconds."""
    from .translation.rowbands import assemble

    t0 = time.perf_counter() - (time.time() - t_start if t_start is not None else 0.0)
    try:
        assemble(plan, task.output)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        return _failure(task, exc, t0)
    return _done(task, t0, bands=len(plan.rows))


def bands_per_scene(split: Split, scenes: int, workers: int) -> int:
    """Row bands per whole scene: ``split`` itself, or for ``"auto"`` enough to give every worker
    thread a band when there are fewer scenes than workers (1 otherwise, or when serial)."""
    if split == "auto":
        return max(1, math.ceil(workers / scenes)) if scenes and workers > scenes else 1
    if int(split) < 1:
        raise ConfigError(f"split={split!r} must be a number of row bands >= 1, or 'auto'")
    return int(split)


def _bands_for(task: CropTask, bands: int) -> int:
    """The row bands ``task`` runs in: ``bands`` for a whole scene that can be split, else 1."""
    from .translation.rowbands import splittable

    return bands if task.whole_scene and bands > 1 and splittable(task.options) else 1


def _run_split_serial(task: CropTask, bands: int) -> Record:
    t_start = time.time()
    plan = plan_scene_task(task, bands)
    if isinstance(plan, Record):
        return plan
    for k in range(len(plan.rows)):
        band = band_task(task, plan, k)
        if isinstance(band, Record):
            return band
    return assemble_task(task, plan, t_start)


@dataclass
class BatchSummary:
    """Outcome of a batch: one :class:`Record` per output, in plan order."""

    records: list[Record]
    output_dir: Path
    summary_path: Path
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]

    def table(self) -> str:
        """Plain-text table: name, scene, status, reason, seconds."""
        rows = [("name", "scene", "status", "reason", "seconds")]
        rows += [(r.name, Path(r.scene).name, r.status, r.reason, f"{r.seconds:.2f}") for r in self.records]
        widths = [min(max(len(row[i]) for row in rows), 60) for i in range(4)]
        lines = ["  ".join(c[:w].ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
        return "\n".join(lines)


# -- the summary -----------------------------------------------------------------------


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def summary_lock(path: str | os.PathLike, timeout_s: float = _LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold an exclusive OS lock on ``.<summary name>.lock`` beside ``path`` (``fcntl.flock``; on
    Windows ``msvcrt.locking``): one process at a time reads, merges and rewrites the summary.

    The lock is released when the process dies (also ``kill -9``), so a killed batch never blocks
    the next one. Waiting more than ``timeout_s`` raises :class:`InputError` naming the lock file.
    The lock file itself stays (removing it would race with a waiting process).
    """
    lock = _lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _try_lock(fd)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InputError(f"{lock}: the summary is locked by another batch for over {timeout_s:.0f} s; "
                                     "wait for it, or remove the lock file if no batch is running") from None
                time.sleep(0.05)
        try:
            yield lock
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def read_summary(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Rows of an earlier ``summary.gpkg`` keyed by output path; empty if absent or unreadable."""
    import pyogrio

    path = Path(path)
    if not path.exists():
        return {}
    try:
        df = pyogrio.read_dataframe(path, layer=SUMMARY_LAYER, read_geometry=False)
    except Exception as exc:  # noqa: BLE001 - a damaged summary only means redoing the outputs
        log.warning("%s: cannot read the earlier summary (%s); every output will be redone", path, exc)
        return {}
    return {str(r["output"]): dict(r) for r in df.to_dict("records")}


_COLUMNS = ("name", "aoi_fid", "scene", "output", "status", "reason", "seconds", "input_hash", "output_size",
            "output_mtime_ns", "finished", "bands", "aoi", "aoi_layer")


def _frame(records: Sequence[Record], crs: Any) -> gpd.GeoDataFrame:
    rows = sorted(records, key=lambda r: r.order)
    data = {
        "name": [r.name for r in rows],
        "aoi_fid": [int(r.fid) for r in rows],
        "scene": [r.scene for r in rows],
        "output": [r.output for r in rows],
        "status": [r.status for r in rows],
        "reason": [r.reason for r in rows],
        "seconds": [float(r.seconds) for r in rows],
        "input_hash": [r.input_hash for r in rows],
        "output_size": [int(r.output_size) for r in rows],
        "output_mtime_ns": [int(r.output_mtime_ns) for r in rows],
        "finished": [r.finished for r in rows],
        "bands": [int(r.bands) for r in rows],
        "aoi": [r.aoi for r in rows],
        "aoi_layer": [r.aoi_layer for r in rows],
    }
    geoms = [r.geometry if isinstance(r.geometry, BaseGeometry) and not r.geometry.is_empty else None for r in rows]
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


def _merged(new: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    """The rows of the summary at ``path`` with ``new``'s rows replacing those of the same output
    (in place) and the others appended; in the existing summary's CRS."""
    import pandas as pd

    if not path.exists():
        return new
    try:
        old = gpd.read_file(path, layer=SUMMARY_LAYER, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - a damaged summary is replaced by this run's rows
        log.warning("%s: cannot read the summary to merge into (%s); it is replaced by this run's rows", path, exc)
        return new
    if old.empty:
        return new
    if old.crs is not None and new.crs is not None and not old.crs.equals(new.crs):
        new = new.to_crs(old.crs)
    for col in _COLUMNS:  # summaries of older versions lack some columns
        if col not in old.columns:
            old[col] = 0 if col in ("bands", "output_size", "output_mtime_ns") else ""
    old = old[[*_COLUMNS, old.geometry.name]].rename_geometry("geometry") if old.geometry.name != "geometry" \
        else old[[*_COLUMNS, "geometry"]]
    fresh = set(new["output"])
    by_output = {o: i for i, o in enumerate(new["output"])}
    keep = [old.iloc[[i]] if o not in fresh else new.iloc[[by_output[o]]] for i, o in enumerate(old["output"])]
    seen = set(old["output"])
    keep += [new.iloc[[i]] for i, o in enumerate(new["output"]) if o not in seen]
    out = pd.concat(keep, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=old.crs if old.crs is not None else new.crs)


def write_summary(records: Sequence[Record], path: str | os.PathLike, crs: Any) -> Path:
    """Merge ``records`` into the summary GeoPackage at ``path`` (footprints given in ``crs``).

    Under :func:`summary_lock`: read the summary, replace the rows of the same outputs, keep the
    rows of other outputs (another AOI file, a concurrent batch into the same folder), write a
    temporary GeoPackage (version 1.3, which QGIS 3.22 reads without a warning) and rename it
    over the summary. A summary in another CRS keeps its CRS; the new footprints are reprojected.
    """
    path = Path(path)
    new = _frame(records, crs)
    with summary_lock(path):
        gdf = _merged(new, path)
        from .io.atomic import temp_path_for

        tmp = temp_path_for(path)  # .summary.tmp-<host>-<pid>.gpkg: swept by the next writer if this one is killed
        try:
            gdf.to_file(tmp, layer=SUMMARY_LAYER, driver="GPKG", engine="pyogrio", dataset_options={"VERSION": "1.3"})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


# -- Dask ------------------------------------------------------------------------------


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: to ``scheduler`` (``tcp://HOST:PORT``) if given, else on a new
    ``LocalCluster`` with ``workers`` processes (default: CPU cores), one thread each, on
    127.0.0.1, dashboard off. Yields None for ``workers == 0`` (serial)."""
    if scheduler is None and workers == 0:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("Dask distributed is not installed: pip install 'sar2opt-geo[dask]' (or use --workers 0)") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"{scheduler}: cannot connect to the Dask scheduler ({exc}); start one (dask scheduler) "
                "or leave out --scheduler to use a local cluster"
            ) from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # no dashboard; the scheduler's own HTTP endpoint (health, metrics) on a free port, not 8787, which
    # another cluster may hold ("Port 8787 is already in use" warning)
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, Client(cluster) as client:
        yield client


#: Measured on the project machine (2 cores, bundled model, bf16; docs/BATCH.md "When a cluster
#: pays"): `sar2opt batch` of one 4.2 / 16.8 Mpx scene took 4.7 / 10.4 s in one process and
#: 9.7 / 17.4 s on a 2-worker LocalCluster (2 row bands). Fitted: one process needs about
#: SERIAL_S_PER_TASK + SERIAL_S_PER_MPX x Mpx of the model grid; the cluster CLUSTER_START_S
#: more, and its 1-thread workers do the work CLUSTER_WORK_FACTOR times slower than one 2-thread
#: process (band overlap, assembly, no intra-op threads). Beyond 2 workers the cluster's work is
#: assumed to shrink in proportion to the workers (not measured here).
CLUSTER_START_S = 3.5
CLUSTER_WORK_FACTOR = 1.35
SERIAL_S_PER_MPX = 0.45
SERIAL_S_PER_TASK = 1.0


def task_megapixels(task: CropTask, headers: dict[str, tuple[float, float] | None] | None = None) -> float:
    """Megapixels of ``task``'s output on the model grid (10 m), from the scene's header: its
    footprint, or the crop's bounds. A rough size for :func:`cluster_pays`, not a plan.
    ``headers``: what earlier calls read per scene (each scene is opened once for all its crops)."""
    from .sensors import open_scene

    headers = {} if headers is None else headers
    if task.scene not in headers:
        try:
            with open_scene(task.scene) as scene:
                spacing = scene.pixel_spacing_m() or 10.0
                unit = spacing / max(abs(scene.transform.a), 1e-12) if scene.transform is not None else 1.0
                headers[task.scene] = (scene.width * scene.height * (spacing / 10.0) ** 2 / 1e6, unit)
        except Exception:  # noqa: BLE001 - unknown size: counted as large, so the cluster is not ruled out
            headers[task.scene] = None
    header = headers[task.scene]
    if header is None:
        return 1e3
    whole_mpx, metres_per_unit = header
    if task.bounds is None:
        return whole_mpx
    left, bottom, right, top = task.bounds
    return (right - left) * (top - bottom) * metres_per_unit**2 / 100.0 / 1e6


def cluster_pays(tasks: Sequence[CropTask], workers: int) -> tuple[bool, float, float]:
    """Whether a new local cluster of ``workers`` processes is expected to beat this process on
    ``tasks``: ``(pays, serial seconds, cluster seconds)``, from the constants above (measured on
    2 cores: there a cluster never pays, whatever the size). A whole scene counts as splittable
    into ``workers`` row bands."""
    if workers < 2 or not tasks:
        return False, 0.0, 0.0
    headers: dict[str, tuple[float, float] | None] = {}
    sizes = [task_megapixels(t, headers) for t in tasks]
    serial = sum(SERIAL_S_PER_TASK + SERIAL_S_PER_MPX * m for m in sizes)
    units = sum(workers if t.whole_scene else 1 for t in tasks)
    cluster = CLUSTER_START_S + serial * CLUSTER_WORK_FACTOR * 2 / min(workers, max(units, 2))
    return cluster < serial, serial, cluster


def _worker_threads(client: Any) -> int:
    try:
        return int(sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - only the 'auto' split needs it
        return 1


def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create ``output_dir`` if missing and make sure outputs can be written there, before any work.

    An existing file at that path is a :class:`ConfigError`; a folder that cannot be created, is
    read-only (a real probe file is written and removed: permission bits say nothing when running
    as root) or sits on a full disk is an :class:`InputError`; each names the folder and the way out.
    """
    from .io.atomic import check_writable

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: the output folder (--output-dir) is an existing file, not a folder; "
                          "give a folder path (a missing folder is created)")
    check_writable(folder / SUMMARY_NAME, overwrite=True)
    return folder


def _storage_trouble(text: str) -> bool:
    """Whether an error text says the output folder is full or read-only."""
    return bool(_STORAGE_WORDS.search(text))


def _save_summary(records: Sequence[Record], path: Path, crs: Any) -> None:
    """:func:`write_summary`, with a full disk or read-only folder as one :class:`InputError` line."""
    try:
        write_summary(records, path, crs)
    except Sar2OptError:
        raise
    except Exception as exc:  # pyogrio/SQLite report a full disk without an errno, in words
        code = getattr(exc, "errno", None)
        if code in _STORAGE_ERRNOS or code in (errno.EACCES, errno.EPERM) or _storage_trouble(str(exc)):
            why = os.strerror(code) if code else " ".join(str(exc).split())
            fix = "make it writable" if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "read-only" in why.lower() \
                else "free some space there"
            raise InputError(f"{path.parent}: cannot write the batch summary {path.name} ({why}); {fix} or choose "
                             "another output folder, then rerun: finished outputs are kept") from None
        raise


def run_batch(
    scenes: Sequence[str | os.PathLike],
    aoi: str | os.PathLike | gpd.GeoDataFrame | None,
    output_dir: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    options: Any = None,
    layer: str | None = None,
    name_field: str | None = None,
    aoi_key: str | None = None,
    buffer_m: float = 0.0,
    keep_rectangle: bool = False,
    redo: bool = False,
    split: Split = 1,
    client: Any = None,
    translate: Callable[..., Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
    auto_workers: int | None = None,
) -> BatchSummary:
    """Translate each whole scene (``aoi=None``) or each scene x AOI feature into ``output_dir``
    and merge the rows into ``summary.gpkg``.

    ``aoi`` is a vector file (``layer``, ``name_field`` as in :func:`sar2opt_geo.aoi.read_aoi`),
    an already read GeoDataFrame with a ``name`` column, or None for whole scenes; ``aoi_key`` names
    the AOI in crop file names (default: the AOI file's stem, :func:`sar2opt_geo.aoi.aoi_key`); ``buffer_m``
    in metres; ``model`` a checkpoint path (default: the bundled model for the scene type);
    ``options`` a :class:`sar2opt_geo.TranslateOptions`; ``split`` the row bands per whole scene
    (``"auto"``: enough to keep every worker busy when there are fewer scenes than workers; the
    bytes do not depend on it); ``client`` a Dask ``Client``, or a zero-argument callable
    returning a context manager that yields one (or None for serial), entered only when some
    output must be made (e.g. ``functools.partial(dask_client, 2)``: a rerun with nothing to do
    starts no cluster); None runs serially in this process; ``translate`` defaults to
    :func:`sar2opt_geo.translate` (one-pass outputs only). Without ``redo``, outputs complete with
    the same input hash are skipped; failed or partial ones are redone (a split scene only redoes
    its missing bands). ``progress(fraction, message)`` is called after each output.
    ``auto_workers``: the worker count of a ``client`` factory that the user did not ask for (the
    CLI's default): the cluster starts only when :func:`cluster_pays` expects it to beat this
    process; else the batch runs here.
    """
    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    summary_path = output_dir / SUMMARY_NAME
    if aoi is None:
        gdf, crs = None, SUMMARY_CRS
        for name, value in (("layer", layer), ("name_field", name_field)):
            if value is not None:
                raise ConfigError(f"{name}={value!r} needs an AOI file (--aoi)")
        if aoi_key is not None:
            raise ConfigError(f"aoi_key={aoi_key!r} needs an AOI file (--aoi)")
        if buffer_m or keep_rectangle:
            raise ConfigError("buffer_m / keep_rectangle need an AOI file (--aoi)")
    else:
        gdf = aoi if isinstance(aoi, gpd.GeoDataFrame) else aoi_mod.read_aoi(aoi, layer=layer, name_field=name_field)
        if aoi_key is not None:
            gdf.attrs["aoi_key"] = aoi_mod.sanitize_name(aoi_key, "aoi")
        if gdf.empty:  # read_aoi refuses an empty layer itself; this is for a GeoDataFrame passed in
            raise ConfigError("the AOI GeoDataFrame has no features, so there is nothing to crop; pass one with polygons")
        crs = gdf.crs
        if split not in (1, "auto"):
            raise ConfigError("split (row bands) applies to whole scenes; leave out --aoi, or --split")
    bands_per_scene(split, 1, 1)  # checks the value before any work
    check_output_dir(output_dir)
    tasks, records = plan_batch(
        scenes, gdf, output_dir, model=model, options=options, buffer_m=buffer_m, keep_rectangle=keep_rectangle,
        redo=redo, previous=read_summary(summary_path),
    )
    total = len(tasks) + len(records)
    what = "crop" if gdf is not None else "scene"
    log.info("batch: %d %s(s) to run, %d decided at planning", len(tasks), what, len(records))
    last_write = time.monotonic()

    def finished(rec: Record) -> None:
        nonlocal last_write
        records.append(rec)
        if rec.status == "failed" and _storage_trouble(rec.reason):  # every later output would fail the same way
            reason = rec.reason.removeprefix(f"{Path(rec.output).parent}: ")
            raise InputError(f"{output_dir}: batch stopped at {Path(rec.output).name}: {reason}; the outputs "
                             "finished before are kept and recorded in the summary, and a rerun resumes")
        if rec.status == "failed":
            log.warning("%s: failed: %s", rec.output, rec.reason)
        if progress is not None:
            progress(len(records) / max(total, 1), f"{len(records)}/{total} {what}s ({rec.name}: {rec.status})")
        if rec.fid < 0 or rec.seconds >= _CHECKPOINT_SECONDS or time.monotonic() - last_write >= _CHECKPOINT_SECONDS:
            _save_summary(records, summary_path, crs)
            last_write = time.monotonic()

    def serial() -> None:
        n = bands_per_scene(split, len(tasks), 1)
        for task in tasks:
            finished(_run_split_serial(task, n) if _bands_for(task, n) > 1 else run_task(task, translate))

    if progress is not None:
        progress(len(records) / max(total, 1), f"{len(records)}/{total} {what}s planned")
    try:
        if client is None:
            serial()
        elif callable(client) and not hasattr(client, "submit"):  # a factory: start the cluster only if needed
            pays, serial_s, cluster_s = cluster_pays(tasks, auto_workers) if auto_workers is not None else (True, 0, 0)
            if tasks and not pays:
                log.info("batch: runs in this process (about %.0f s; a %d-worker cluster would take about %.0f s "
                         "with its start-up); --workers N starts one anyway", serial_s, auto_workers, cluster_s)
                serial()
            elif tasks:
                with client() as started:
                    if started is None:
                        serial()
                    else:
                        _run_dask(started, tasks, translate, finished, split)
        elif tasks:
            _run_dask(client, tasks, translate, finished, split)
    except BaseException:  # also on interrupt: what finished is recorded, so a rerun resumes
        try:
            _save_summary(records, summary_path, crs)
        except Exception as exc:  # noqa: BLE001 - the error being raised is the one to report
            log.warning("%s", exc)
        raise
    _save_summary(records, summary_path, crs)
    records.sort(key=lambda r: r.order)
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    log.info("batch: %s in %.1f s; summary %s", ", ".join(f"{v} {k}" for k, v in counts.items()),
             time.perf_counter() - t0, summary_path)
    return BatchSummary(records, output_dir, summary_path, time.perf_counter() - t0, counts)


@dataclass
class _Split:
    """A scene split into row bands, while its bands run."""

    plan: Any
    left: int
    started: float  # time.time()
    failure: Record | None = None


def _run_dask(client: Any, tasks: list[CropTask], translate: Callable[..., Any] | None,
              finished: Callable[[Record], None], split: Split = 1) -> None:
    """Run ``tasks`` as Dask futures; split whole scenes go plan -> bands -> assembly, each
    submitted when the step before it is done, so bands of several scenes share the workers."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # fresh keys: a rerun with --redo must not reuse earlier results
    n = bands_per_scene(split, sum(t.whole_scene for t in tasks), _worker_threads(client))
    meta: dict[str, tuple[str, CropTask]] = {}
    live: dict[str, Any] = {}
    splits: dict[int, _Split] = {}
    started: dict[int, float] = {}
    ac = as_completed()

    def submit(kind: str, fn: Callable[..., Any], task: CropTask, *args: Any, k: int = -1) -> None:
        key = f"sar2opt-{kind}-{token}-{task.order}" + (f"-{k}" if k >= 0 else "")
        fut = client.submit(fn, task, *args, key=key, pure=False)
        meta[fut.key], live[fut.key] = (kind, task), fut
        ac.add(fut)

    for task in tasks:
        started[task.order] = time.time()
        if _bands_for(task, n) > 1:
            submit("plan", plan_scene_task, task, n)
        else:
            submit("crop", run_task, task, translate)
    try:
        for fut in ac:
            kind, task = meta.pop(fut.key)
            live.pop(fut.key, None)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died or the task could not be unpickled
                res = _record(task, "failed", f"Dask task failed: {type(exc).__name__}: {exc}",
                              time.time() - started[task.order])
            if kind in ("crop", "assemble"):
                finished(res)
            elif kind == "plan":
                if isinstance(res, Record):
                    finished(res)
                    continue
                splits[task.order] = _Split(res, len(res.rows), started[task.order])
                for b in range(len(res.rows)):
                    submit("band", band_task, task, res, b, k=b)
            else:  # a band
                state = splits[task.order]
                state.left -= 1
                if isinstance(res, Record) and state.failure is None:
                    state.failure = res
                if state.left == 0:
                    if state.failure is not None:
                        state.failure.seconds = round(time.time() - state.started, 3)
                        finished(state.failure)
                    else:
                        submit("assemble", assemble_task, task, state.plan, state.started)
    except BaseException:
        client.cancel(list(live.values()))
        raise
