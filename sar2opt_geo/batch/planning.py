"""Planning a batch (in the calling process, cheap): scenes x AOI features -> tasks to run and rows already decided."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

from ..errors import (
    ConfigError,
    Sar2OptError,
)
from . import aoi as aoi_mod
from .hashing import input_hash, up_to_date
from .records import CropTask, Record, RecordBase, Status, utc_now
from .scenes import SceneInfo, expand_scenes, scene_info, scene_keys
from .summary import SUMMARY_CRS

log = logging.getLogger(__name__)


def _model_path(model: str | os.PathLike | None, info: SceneInfo) -> str:
    from ..models.checkpoint import default_model_path
    from ..models.loading import resolve_model_path

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

    ``aoi`` comes from :func:`sar2opt_geo.batch.aoi.read_aoi` (its ``attrs`` name the AOI file; a frame
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
            base: RecordBase = {"order": order, "name": key, "fid": -1, "scene": os.path.abspath(scene_path), "output": str(out),
                    "geometry": footprint}
            if info is None:
                decided.append(Record(**base, status="failed", reason=scene_error, finished=utc_now()))
                continue
            model_path = _model_path(model, info)
            h = input_hash(info, None, model_path, options, False)
            skip = up_to_date(previous.get(str(out)), h, out, redo, base)
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
                decided.append(Record(**base, status="failed", reason=scene_error, finished=utc_now()))
                continue
            problem = aoi_mod.geometry_problem(geom, buffer_m)
            if problem is not None:
                status: Status = "skipped" if problem in (aoi_mod.EMPTY_GEOMETRY, aoi_mod.NULL_GEOMETRY) else "failed"
                decided.append(Record(**base, status=status, reason=problem, finished=utc_now()))
                continue
            try:
                prepared = aoi_mod.prepare_aoi(geom, aoi.crs, info.crs, buffer_m)
            except Exception as exc:  # noqa: BLE001 - PROJ/GEOS errors become a failed row
                decided.append(Record(**base, status="failed", reason=f"cannot reproject to {info.crs}: {exc}", finished=utc_now()))
                continue
            if prepared.is_empty:
                decided.append(Record(**base, status="skipped", reason=f"empty after a buffer of {buffer_m:g} m", finished=utc_now()))
                continue
            overlap = prepared.intersection(info.footprint)
            if overlap.is_empty or overlap.area == 0:
                decided.append(Record(**base, status="skipped", reason="does not overlap the scene", finished=utc_now()))
                continue
            model_path = _model_path(model, info)
            h = input_hash(info, prepared, model_path, options, keep_rectangle)
            prev = previous.get(str(out))
            skip = up_to_date(prev, h, out, redo, base)
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
