"""The batch summary GeoPackage (``summary.gpkg``, layer ``summary``): read, merge and write under a file lock."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

from ..errors import (
    InputError,
    Sar2OptError,
)
from .records import Record

log = logging.getLogger(__name__)


SUMMARY_NAME = "summary.gpkg"

SUMMARY_LAYER = "summary"

#: CRS of the scene footprints in the summary of a whole-scene batch (an AOI batch uses the AOI's).
SUMMARY_CRS = "EPSG:4326"

_LOCK_TIMEOUT_S = 300.0  # waiting longer than this for the summary lock is an error naming the lock file

#: errno values and wordings (GDAL's, SQLite's, io.atomic's) of a folder that cannot take more
#: outputs: a batch stops at the first output failing so, instead of failing every later one.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}

_STORAGE_WORDS = re.compile(
    r"no space left|disk quota|read-only file system|disk is full|not enough space|free disk space", re.IGNORECASE)

def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")

@contextlib.contextmanager
def summary_lock(path: str | os.PathLike, timeout_s: float = _LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold an exclusive OS lock on ``.<summary name>.lock`` beside ``path`` (:mod:`filelock`:
    ``fcntl.flock``, on Windows ``msvcrt.locking``): one process at a time reads, merges and
    rewrites the summary.

    The lock is released when the process dies (also ``kill -9``), so a killed batch never blocks
    the next one. Waiting more than ``timeout_s`` raises :class:`InputError` naming the lock file.
    The lock file itself stays (removing it would race with a waiting process).
    """
    from filelock import FileLock, Timeout

    lock = _lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(lock, timeout=timeout_s, thread_local=False, preserve_lock_file=True, fallback_to_soft=False)
    try:
        held.acquire()
    except Timeout:
        raise InputError(f"{lock}: the summary is locked by another batch for over {timeout_s:.0f} s; "
                         "wait for it, or remove the lock file if no batch is running") from None
    try:
        yield lock
    finally:
        held.release()


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
        from ..io.atomic import atomic_file

        with atomic_file(path) as tmp:  # .summary.tmp-<host>-<pid>.gpkg: swept by the next writer if this one is killed
            gdf.to_file(tmp, layer=SUMMARY_LAYER, driver="GPKG", engine="pyogrio", dataset_options={"VERSION": "1.3"})
    return path

def storage_trouble(text: str) -> bool:
    """Whether an error text says the output folder is full or read-only."""
    return bool(_STORAGE_WORDS.search(text))

def save_summary(records: Sequence[Record], path: Path, crs: Any) -> None:
    """:func:`write_summary`, with a full disk or read-only folder as one :class:`InputError` line."""
    try:
        write_summary(records, path, crs)
    except Sar2OptError:
        raise
    except Exception as exc:  # pyogrio/SQLite report a full disk without an errno, in words
        code = getattr(exc, "errno", None)
        if code in _STORAGE_ERRNOS or code in (errno.EACCES, errno.EPERM) or storage_trouble(str(exc)):
            why = os.strerror(code) if code else " ".join(str(exc).split())
            fix = "make it writable" if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "read-only" in why.lower() \
                else "free some space there"
            raise InputError(f"{path.parent}: cannot write the batch summary {path.name} ({why}); {fix} or choose "
                             "another output folder, then rerun: finished outputs are kept") from None
        raise
