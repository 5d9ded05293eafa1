""":func:`run_batch`: plan, run serially or on Dask, and keep the summary up to date."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd

from ..errors import (
    ConfigError,
    InputError,
)
from . import aoi as aoi_mod
from .cluster import cluster_pays, run_dask
from .planning import plan_batch
from .records import BatchSummary, CropTask, Record, Split
from .summary import (
    SUMMARY_CRS,
    SUMMARY_NAME,
    read_summary,
    save_summary,
    storage_trouble,
)
from .tasks import bands_for, bands_per_scene, run_split_serial, run_task

log = logging.getLogger(__name__)


#: The summary is rewritten after every whole scene, after a crop that took this many seconds, and
#: when this long passed since the last write: a batch killed with kill -9 loses at most about this
#: much work per worker (crops finished since the last write are redone).
_CHECKPOINT_SECONDS = 5.0

def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create ``output_dir`` if missing and make sure outputs can be written there, before any work.

    An existing file at that path is a :class:`ConfigError`; a folder that cannot be created, is
    read-only (a real probe file is written and removed: permission bits say nothing when running
    as root) or sits on a full disk is an :class:`InputError`; each names the folder and the way out.
    """
    from ..io.atomic import check_writable

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: the output folder (--output-dir) is an existing file, not a folder; "
                          "give a folder path (a missing folder is created)")
    check_writable(folder / SUMMARY_NAME, overwrite=True)
    return folder

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

    ``aoi`` is a vector file (``layer``, ``name_field`` as in :func:`sar2opt_geo.batch.aoi.read_aoi`),
    an already read GeoDataFrame with a ``name`` column, or None for whole scenes; ``aoi_key`` names
    the AOI in crop file names (default: the AOI file's stem, :func:`sar2opt_geo.batch.aoi.aoi_key`); ``buffer_m``
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
    gdf, crs = _read_aoi_arguments(aoi, layer, name_field, aoi_key, buffer_m, keep_rectangle, split)
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
        if rec.status == "failed" and storage_trouble(rec.reason):  # every later output would fail the same way
            reason = rec.reason.removeprefix(f"{Path(rec.output).parent}: ")
            raise InputError(f"{output_dir}: batch stopped at {Path(rec.output).name}: {reason}; the outputs "
                             "finished before are kept and recorded in the summary, and a rerun resumes")
        if rec.status == "failed":
            log.warning("%s: failed: %s", rec.output, rec.reason)
        if progress is not None:
            progress(len(records) / max(total, 1), f"{len(records)}/{total} {what}s ({rec.name}: {rec.status})")
        if rec.fid < 0 or rec.seconds >= _CHECKPOINT_SECONDS or time.monotonic() - last_write >= _CHECKPOINT_SECONDS:
            save_summary(records, summary_path, crs)
            last_write = time.monotonic()

    def serial() -> None:
        n = bands_per_scene(split, len(tasks), 1)
        for task in tasks:
            finished(run_split_serial(task, n) if bands_for(task, n) > 1 else run_task(task, translate))

    if progress is not None:
        progress(len(records) / max(total, 1), f"{len(records)}/{total} {what}s planned")
    try:
        _dispatch(tasks, client, auto_workers, serial, lambda c: run_dask(c, tasks, translate, finished, split))
    except BaseException:  # also on interrupt: what finished is recorded, so a rerun resumes
        try:
            save_summary(records, summary_path, crs)
        except Exception as exc:  # noqa: BLE001 - the error being raised is the one to report
            log.warning("%s", exc)
        raise
    save_summary(records, summary_path, crs)
    records.sort(key=lambda r: r.order)
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    log.info("batch: %s in %.1f s; summary %s", ", ".join(f"{v} {k}" for k, v in counts.items()),
             time.perf_counter() - t0, summary_path)
    return BatchSummary(records, output_dir, summary_path, time.perf_counter() - t0, counts)


def _read_aoi_arguments(aoi: str | os.PathLike | gpd.GeoDataFrame | None, layer: str | None, name_field: str | None,
                        aoi_key: str | None, buffer_m: float, keep_rectangle: bool,
                        split: Split) -> tuple[gpd.GeoDataFrame | None, Any]:
    """The AOI features (None for whole scenes) and the summary's CRS; refuses AOI-only arguments without an AOI."""
    if aoi is None:
        for name, value in (("layer", layer), ("name_field", name_field)):
            if value is not None:
                raise ConfigError(f"{name}={value!r} needs an AOI file (--aoi)")
        if aoi_key is not None:
            raise ConfigError(f"aoi_key={aoi_key!r} needs an AOI file (--aoi)")
        if buffer_m or keep_rectangle:
            raise ConfigError("buffer_m / keep_rectangle need an AOI file (--aoi)")
        return None, SUMMARY_CRS
    gdf = aoi if isinstance(aoi, gpd.GeoDataFrame) else aoi_mod.read_aoi(aoi, layer=layer, name_field=name_field)
    if aoi_key is not None:
        gdf.attrs["aoi_key"] = aoi_mod.sanitize_name(aoi_key, "aoi")
    if gdf.empty:  # read_aoi refuses an empty layer itself; this is for a GeoDataFrame passed in
        raise ConfigError("the AOI GeoDataFrame has no features, so there is nothing to crop; pass one with polygons")
    if split not in (1, "auto"):
        raise ConfigError("split (row bands) applies to whole scenes; leave out --aoi, or --split")
    return gdf, gdf.crs


def _dispatch(tasks: list[CropTask], client: Any, auto_workers: int | None, serial: Callable[[], None],
              on_cluster: Callable[[Any], None]) -> None:
    """Run ``tasks`` here (``serial``) or on a Dask client (``on_cluster(client)``); a client factory is
    entered only when some task must run and, for the CLI's default worker count, when a cluster pays."""
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
                    on_cluster(started)
    elif tasks:
        on_cluster(client)
