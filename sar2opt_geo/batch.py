"""AOI batches: translate every scene x AOI feature into its own masked GeoTIFF, resumably,
serially or on Dask distributed.

Three steps:

1. :func:`plan_batch` (in the calling process, cheap): open each scene's metadata, reproject
   and buffer each AOI feature into the scene CRS, drop unusable or non-overlapping features
   (reported, not fatal), hash the inputs of each crop and skip those whose output is already
   complete from an earlier run (same hash, same file size and mtime as recorded).
2. :func:`run_task` (in any process): load the model once per process
   (:func:`load_model_cached`), call :func:`sar2opt_geo.translate` with ``bounds`` (the crop
   window, with the engine's context margin read around it) and ``aoi`` (mask outside the
   polygon to nodata unless ``keep_rectangle``). Never raises: a failure becomes a record.
3. :func:`run_batch` runs the tasks serially (``client=None``) or as Dask futures
   (``client.map`` + ``as_completed``), and writes ``summary.gpkg`` (layer ``summary``) with
   each AOI footprint, scene, output, status (done / skipped / failed), reason, timing and
   input hash. The summary is also checkpointed every 30 s so an interrupted batch resumes.

Outputs are ``<name>__<scene stem>.tif`` (``<name>.tif`` with one scene), written atomically
by translate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
import uuid
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
from .errors import GeoreferencingError, InputError, NoValidDataError, Sar2OptError
from .models.loading import file_stamp, load_model_cached

__all__ = [
    "SUMMARY_LAYER",
    "SUMMARY_NAME",
    "BatchSummary",
    "CropTask",
    "Record",
    "SceneInfo",
    "dask_client",
    "expand_scenes",
    "input_hash",
    "load_model_cached",
    "plan_batch",
    "read_summary",
    "run_batch",
    "run_task",
    "scene_info",
    "write_summary",
]

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.gpkg"
SUMMARY_LAYER = "summary"
Status = Literal["done", "skipped", "failed"]

_SCENE_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2", ".zip"}
#: TranslateOptions fields that do not change the pixels of a crop (left out of the input hash);
#: the crop fields are hashed through the prepared polygon instead.
_UNHASHED_OPTIONS = {"device", "batch_size", "overwrite", "bounds", "bounds_crs", "aoi", "aoi_crs", "keep_rectangle"}
_CHECKPOINT_SECONDS = 30.0
NO_VALID_DATA = "no valid data in the polygon"


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


def _fingerprint(path: Path) -> dict[str, Any]:
    """Resolved path, size in bytes and mtime (ns) of a scene; for a product folder, totals over its files."""
    path = path.resolve()
    if path.is_dir():
        size, mtime, count = 0, 0, 0
        for root, _dirs, files in os.walk(path):
            for f in files:
                st = os.stat(os.path.join(root, f))
                size, mtime, count = size + st.st_size, max(mtime, st.st_mtime_ns), count + 1
        return {"path": str(path), "size": size, "mtime_ns": mtime, "files": count}
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


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
    return SceneInfo(path, path.stem, _crs_string(crs), footprint, is_sar, _fingerprint(path))


def _crs_string(crs: Any) -> str:
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.to_wkt()


# -- tasks and records -----------------------------------------------------------------


@dataclass(frozen=True)
class CropTask:
    """One scene x AOI crop to translate; picklable (sent to Dask workers)."""

    order: int  # position in the summary (scene-major)
    name: str
    fid: int
    scene: str
    output: str
    geometry: BaseGeometry  # buffered AOI in ``crs`` (the scene CRS)
    crs: str
    bounds: tuple[float, float, float, float]  # crop bounds in ``crs``: polygon bounds within the scene
    keep_rectangle: bool
    model: str  # checkpoint path
    options: Any  # TranslateOptions | None
    input_hash: str
    aoi_geometry: BaseGeometry | None  # the feature as read, in the AOI CRS (summary footprint)


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - datetime.UTC needs 3.11


def _record(task: CropTask, status: Status, reason: str = "", seconds: float = 0.0) -> Record:
    return Record(task.order, task.name, task.fid, task.scene, task.output, status, reason, round(seconds, 3),
                  task.input_hash, finished=_now(), geometry=task.aoi_geometry)


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


def input_hash(scene: SceneInfo, geometry: BaseGeometry, model: str, options: Any, keep_rectangle: bool) -> str:
    """SHA-256 (first 16 hex digits) of what determines a crop's pixels: the scene's path, size
    and mtime, the prepared polygon's WKB (scene CRS, buffered), the model card hash, the options."""
    payload = {
        "scene": scene.fingerprint,
        "crs": scene.crs,
        "polygon_wkb": shapely.to_wkb(geometry, hex=True),
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


def plan_batch(
    scenes: Sequence[str | os.PathLike],
    aoi: gpd.GeoDataFrame,
    output_dir: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    options: Any = None,
    buffer_m: float = 0.0,
    keep_rectangle: bool = False,
    redo: bool = False,
    previous: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[CropTask], list[Record]]:
    """Split the batch into crops to run and rows already decided (skipped or failed at planning).

    ``aoi`` comes from :func:`sar2opt_geo.aoi.read_aoi`; ``buffer_m`` is in metres; ``previous``
    maps output paths to rows of an earlier summary (:func:`read_summary`).
    """
    from .models.checkpoint import default_model_path
    from .models.loading import resolve_model_path

    output_dir = Path(output_dir).resolve()
    previous = previous or {}
    scene_paths = expand_scenes(scenes)
    stems = aoi_mod.unique_names(p.stem for p in scene_paths)
    tasks: list[CropTask] = []
    decided: list[Record] = []
    order = 0
    for scene_path, stem in zip(scene_paths, stems):
        try:
            info = scene_info(scene_path)
        except Sar2OptError as exc:
            info, scene_error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a reader bug must not stop the batch either
            info, scene_error = None, f"{scene_path}: cannot open scene: {exc}"
        for fid, row in aoi.iterrows():
            order += 1
            name = str(row["name"])
            out = output_dir / aoi_mod.output_filename(name, None if len(scene_paths) == 1 else stem)
            geom = row.geometry
            base = {"order": order, "name": name, "fid": int(fid), "scene": str(scene_path), "output": str(out), "geometry": geom}
            if info is None:
                decided.append(Record(**base, status="failed", reason=scene_error, finished=_now()))
                continue
            problem = aoi_mod.geometry_problem(geom, buffer_m)
            if problem is not None:
                status: Status = "skipped" if problem == "empty geometry" else "failed"
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
            model_path = str(resolve_model_path(model).resolve() if model is not None
                             else default_model_path("sar" if info.is_sar else "gray"))
            h = input_hash(info, prepared, model_path, options, keep_rectangle)
            prev = previous.get(str(out))
            if not redo and prev is not None and prev.get("input_hash") == h:
                if prev.get("status") in ("done", "skipped") and _output_matches(prev, out):
                    decided.append(Record(**base, status="skipped", reason="up to date (same inputs as the earlier run)",
                                          input_hash=h, output_size=int(prev["output_size"]),
                                          output_mtime_ns=int(prev["output_mtime_ns"]), finished=_now()))
                    continue
                if prev.get("status") == "skipped" and str(prev.get("reason", "")).startswith(NO_VALID_DATA):
                    decided.append(Record(**base, status="skipped", reason=str(prev["reason"]), input_hash=h,
                                          finished=_now()))
                    continue
            pb, sb = prepared.bounds, info.footprint.bounds
            bounds = (max(pb[0], sb[0]), max(pb[1], sb[1]), min(pb[2], sb[2]), min(pb[3], sb[3]))
            tasks.append(CropTask(order, name, int(fid), str(scene_path), str(out), prepared, info.crs, bounds,
                                  keep_rectangle, model_path, options, h, geom))
    return tasks, decided


# -- running ---------------------------------------------------------------------------


def run_task(task: CropTask, translate: Callable[..., Any] | None = None) -> Record:
    """Translate one crop; never raises for a failed crop (the record says why), only on interrupt."""
    from .api import resolve_device

    if translate is None:
        from .api import translate
    t0 = time.perf_counter()
    try:
        device = resolve_device(getattr(task.options, "device", "auto") or "auto")
        model = load_model_cached(task.model, device)
        Path(task.output).parent.mkdir(parents=True, exist_ok=True)
        translate(
            task.scene, task.output, model, task.options,
            bounds=task.bounds, bounds_crs=task.crs, aoi=task.geometry, aoi_crs=task.crs,
            keep_rectangle=task.keep_rectangle, overwrite=True,
        )
    except NoValidDataError as exc:  # the polygon covers only the scene's nodata (fill) area
        return _record(task, "skipped", f"{NO_VALID_DATA}: {exc}", time.perf_counter() - t0)
    except Sar2OptError as exc:
        return _record(task, "failed", str(exc), time.perf_counter() - t0)
    except Exception as exc:  # keep the batch going; the summary carries the error
        log.debug("crop %s failed", task.output, exc_info=True)
        return _record(task, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    rec = _record(task, "done", "", time.perf_counter() - t0)
    st = Path(task.output).stat()
    rec.output_size, rec.output_mtime_ns = st.st_size, st.st_mtime_ns
    return rec


@dataclass
class BatchSummary:
    """Outcome of a batch: one :class:`Record` per scene x AOI feature, in plan order."""

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


def read_summary(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Rows of an earlier ``summary.gpkg`` keyed by output path; empty if absent or unreadable."""
    import pyogrio

    path = Path(path)
    if not path.exists():
        return {}
    try:
        df = pyogrio.read_dataframe(path, layer=SUMMARY_LAYER, read_geometry=False)
    except Exception as exc:  # noqa: BLE001 - a damaged summary only means redoing the crops
        log.warning("%s: cannot read the earlier summary (%s); every crop will be redone", path, exc)
        return {}
    return {str(r["output"]): dict(r) for r in df.to_dict("records")}


def write_summary(records: Sequence[Record], path: str | os.PathLike, crs: Any) -> Path:
    """Write the summary layer (AOI footprints in the AOI ``crs``) to a GeoPackage atomically."""
    path = Path(path)
    rows = sorted(records, key=lambda r: r.order)
    data = {
        "name": [r.name for r in rows],
        "aoi_fid": [r.fid for r in rows],
        "scene": [r.scene for r in rows],
        "output": [r.output for r in rows],
        "status": [r.status for r in rows],
        "reason": [r.reason for r in rows],
        "seconds": [float(r.seconds) for r in rows],
        "input_hash": [r.input_hash for r in rows],
        "output_size": [int(r.output_size) for r in rows],
        "output_mtime_ns": [int(r.output_mtime_ns) for r in rows],
        "finished": [r.finished for r in rows],
    }
    geoms = [None if r.geometry is None or r.geometry.is_empty else r.geometry for r in rows]
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.gpkg")
    try:
        # GeoPackage 1.3: the GDAL of pip's pyogrio writes 1.4 by default, which QGIS 3.22's GDAL 3.6
        # opens with "may only be partially supported"; 1.3 has all the summary needs
        gdf.to_file(tmp, layer=SUMMARY_LAYER, driver="GPKG", engine="pyogrio", dataset_options={"VERSION": "1.3"})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def run_batch(
    scenes: Sequence[str | os.PathLike],
    aoi: str | os.PathLike | gpd.GeoDataFrame,
    output_dir: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    options: Any = None,
    layer: str | None = None,
    name_field: str | None = None,
    buffer_m: float = 0.0,
    keep_rectangle: bool = False,
    redo: bool = False,
    client: Any = None,
    translate: Callable[..., Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BatchSummary:
    """Translate each scene x AOI feature into ``output_dir`` and write ``summary.gpkg``.

    ``aoi`` is a vector file (``layer``, ``name_field`` as in :func:`sar2opt_geo.aoi.read_aoi`)
    or an already read GeoDataFrame with a ``name`` column; ``buffer_m`` in metres; ``model`` a
    checkpoint path (default: the bundled model for the scene type); ``options`` a
    :class:`sar2opt_geo.TranslateOptions`; ``client`` a Dask ``Client``, or a zero-argument
    callable returning a context manager that yields one (or None for serial), entered only when
    some crop must run (e.g. ``functools.partial(dask_client, 2)``: a rerun with nothing to do
    starts no cluster); None runs serially in this process; ``translate`` defaults to :func:`sar2opt_geo.translate`. Without ``redo``,
    crops whose output is complete with the same input hash are skipped; failed or partial ones
    are redone. ``progress(fraction, message)`` is called after each crop.
    """
    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary_path = output_dir / SUMMARY_NAME
    gdf = aoi if isinstance(aoi, gpd.GeoDataFrame) else aoi_mod.read_aoi(aoi, layer=layer, name_field=name_field)
    tasks, records = plan_batch(
        scenes, gdf, output_dir, model=model, options=options, buffer_m=buffer_m, keep_rectangle=keep_rectangle,
        redo=redo, previous=read_summary(summary_path),
    )
    total = len(tasks) + len(records)
    log.info("batch: %d crop(s) to run, %d decided at planning", len(tasks), len(records))
    last_write = time.monotonic()

    def finished(rec: Record) -> None:
        nonlocal last_write
        records.append(rec)
        if rec.status == "failed":
            log.warning("%s: failed: %s", rec.output, rec.reason)
        if progress is not None:
            progress(len(records) / max(total, 1), f"{len(records)}/{total} crops ({rec.name}: {rec.status})")
        if time.monotonic() - last_write > _CHECKPOINT_SECONDS:
            write_summary(records, summary_path, gdf.crs)
            last_write = time.monotonic()

    if progress is not None:
        progress(len(records) / max(total, 1), f"{len(records)}/{total} crops planned")
    try:
        if client is None:
            for task in tasks:
                finished(run_task(task, translate))
        elif callable(client) and not hasattr(client, "submit"):  # a factory: start the cluster only if needed
            if tasks:
                with client() as started:
                    if started is None:
                        for task in tasks:
                            finished(run_task(task, translate))
                    else:
                        _run_dask(started, tasks, translate, finished)
        elif tasks:
            _run_dask(client, tasks, translate, finished)
    finally:  # also on interrupt: what finished is recorded, so a rerun resumes
        write_summary(records, summary_path, gdf.crs)
    records.sort(key=lambda r: r.order)
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    log.info("batch: %s in %.1f s; summary %s", ", ".join(f"{v} {k}" for k, v in counts.items()),
             time.perf_counter() - t0, summary_path)
    return BatchSummary(records, output_dir, summary_path, time.perf_counter() - t0, counts)


def _run_dask(client: Any, tasks: list[CropTask], translate: Callable[..., Any] | None,
              finished: Callable[[Record], None]) -> None:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # fresh keys: a rerun with --redo must not reuse earlier results
    futures = client.map(run_task, tasks, translate=translate, pure=False,
                         key=[f"sar2opt-crop-{token}-{t.order}" for t in tasks])
    by_key = {f.key: t for f, t in zip(futures, tasks)}
    try:
        for fut in as_completed(futures):
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died or the task could not be unpickled
                task = by_key[fut.key]
                rec = _record(task, "failed", f"Dask task failed: {type(exc).__name__}: {exc}")
            finished(rec)
    except BaseException:
        client.cancel(futures)
        raise
