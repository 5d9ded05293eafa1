"""Areas of interest (AOI) for batch cropping: reading, checking, reprojecting, buffering, naming.

An AOI file is any vector file GDAL/OGR reads (Shapefile, GeoPackage with a chosen layer,
GeoJSON, ...), read with geopandas (pyogrio engine). Each feature becomes one crop per scene.

CRS conventions: an AOI keeps its own CRS (often EPSG:4326 or a national grid) until
:func:`prepare_aoi` brings it into the scene CRS. Buffers are given in **metres** and applied
in a metric CRS: the scene CRS when it is projected (converted to its linear unit), else the
local UTM zone of the polygon. Polygon edges are densified before reprojection so that long
straight edges follow the curvature they have in the target CRS.

Naming: :func:`read_aoi` names each feature (``name`` column: the ``name_field`` value, sanitised,
else the feature id) and records where the features come from in ``gdf.attrs``: ``aoi_source``
(the resolved file path), ``aoi_layer`` (the layer read) and ``aoi_key`` (:func:`aoi_key`: the
file stem, plus ``.<layer>`` for a multi-layer file). A batch names a crop
``<aoi key>__<feature name>__<scene key>.tif`` (:func:`output_filename`), so crops of two AOI
files whose features share a name never land on one path.
"""

from __future__ import annotations

import logging
import math
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..errors import GeoreferencingError, InputError

__all__ = [
    "EMPTY_GEOMETRY",
    "NULL_GEOMETRY",
    "aoi_key",
    "geometry_problem",
    "metric_crs",
    "output_filename",
    "prepare_aoi",
    "read_aoi",
    "sanitize_name",
    "unique_names",
]

log = logging.getLogger(__name__)

#: Names that Windows refuses as file stems, whatever the extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_MAX_NAME = 80  # characters; leaves room for "<aoi>__<name>__<scene stem>.tif" under common 255-byte limits
_DENSIFY_STEPS = 64  # segments per polygon extent when densifying before reprojection
#: :func:`geometry_problem` reasons for features a batch skips (others fail).
EMPTY_GEOMETRY = "empty geometry"
NULL_GEOMETRY = "no geometry (null): the feature has attributes but no shape"


def sanitize_name(value: Any, fallback: str) -> str:
    """A file-system-safe stem from an attribute value.

    Accents are folded to ASCII, every run of characters other than letters, digits, ``.``,
    ``_`` and ``-`` becomes ``_``, leading/trailing ``._-`` are stripped, the result is cut to
    80 characters and Windows device names (CON, NUL, COM1 ...) get a trailing ``_``. An empty
    result (or a null value) gives ``fallback`` (itself sanitised).
    """
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:_MAX_NAME].rstrip("._-")
    if not text:
        return sanitize_name(fallback, "aoi") if fallback != "" else "aoi"
    if text.split(".")[0].upper() in _RESERVED:
        text += "_"
    return text


def unique_names(names: Iterable[str]) -> list[str]:
    """Make names unique, case-insensitively (macOS and Windows file systems), by appending
    ``_2``, ``_3`` ... to the second and later occurrences; first occurrences keep their name."""
    names = list(names)
    taken = {n.lower() for n in names}
    seen: set[str] = set()
    out: list[str] = []
    for n in names:
        if n.lower() not in seen:
            seen.add(n.lower())
            out.append(n)
            continue
        i = 2
        while f"{n}_{i}".lower() in taken or f"{n}_{i}".lower() in seen:
            i += 1
        new = f"{n}_{i}"
        seen.add(new.lower())
        out.append(new)
    return out


def aoi_key(path: str | os.PathLike, layer: str | None = None) -> str:
    """The AOI part of a crop's file name: the file's stem, sanitised (:func:`sanitize_name`),
    plus ``.<layer>`` when ``layer`` is given (a layer of a multi-layer file), e.g. ``fields``,
    ``parcels.fields_2024``."""
    stem = sanitize_name(Path(path).stem, "aoi")
    return stem if layer is None else f"{stem}.{sanitize_name(layer, 'layer')}"


def read_aoi(path: str | os.PathLike, layer: str | None = None, name_field: str | None = None) -> gpd.GeoDataFrame:
    """Read an AOI vector file into a GeoDataFrame indexed by feature id (OGR FID).

    Adds a ``name`` column: the sanitised value of ``name_field`` (null or empty values fall
    back to the feature id), else the feature id; collisions get ``_2``, ``_3`` ... The CRS is
    the file's; a file without one is refused (a crop cannot guess where the polygon is), and so
    is a layer without features (a batch would have nothing to do). ``gdf.attrs`` gets
    ``aoi_source`` (resolved path), ``aoi_layer`` (the layer read) and ``aoi_key``
    (:func:`aoi_key`; the layer is part of it only when the file has several layers).
    """
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: AOI file not found")
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise InputError(f"{path}: not a vector file GDAL/OGR can read ({exc})") from None
    if layer is None and len(layers) > 1:
        raise InputError(f"{path}: has several layers ({', '.join(layers)}); choose one with --layer")
    if layer is not None and layer not in layers:
        raise InputError(f"{path}: no layer {layer!r}; it has {', '.join(layers)}")
    gdf = gpd.read_file(path, layer=layer, engine="pyogrio", fid_as_index=True)
    layer_read = layer if layer is not None else (layers[0] if layers else path.stem)
    if gdf.empty:
        others = [n for n in layers if n != layer_read]
        way_out = f"choose another layer with --layer ({', '.join(others)}) or add" if others else "add"
        raise InputError(f"{path}: AOI layer {layer_read!r} has no features, so there is nothing to crop; "
                         f"{way_out} polygons to it (QGIS: Toggle Editing, Add Polygon Feature)")
    if gdf.crs is None:
        raise GeoreferencingError(f"{path}: AOI layer has no CRS; assign one (QGIS: Assign projection; ogr2ogr -a_srs EPSG:4326)")
    if name_field is not None and name_field not in gdf.columns:
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(f"{path}: no attribute field {name_field!r}; fields are {', '.join(fields) or '(none)'}")
    fids = [str(i) for i in gdf.index]
    raw = gdf[name_field].tolist() if name_field is not None else fids
    gdf["name"] = unique_names(sanitize_name(v, fid) for v, fid in zip(raw, fids))
    gdf.attrs.update(aoi_source=str(path.resolve()), aoi_layer=layer_read,
                     aoi_key=aoi_key(path, layer_read if len(layers) > 1 else None))
    log.info("%s: %d AOI feature(s) in %s", path, len(gdf), gdf.crs.to_string())
    return gdf


def geometry_problem(geom: BaseGeometry | None, buffer_m: float = 0.0) -> str | None:
    """Why ``geom`` cannot be used as a crop polygon, or None if it can.

    Points and lines are accepted only with a positive buffer (which makes them areas). A null
    geometry (None, or the NaN pandas gives for it) is :data:`NULL_GEOMETRY`.
    """
    if not isinstance(geom, BaseGeometry):
        return NULL_GEOMETRY
    if geom.is_empty:
        return EMPTY_GEOMETRY
    if not geom.is_valid:
        return (
            f"invalid geometry ({shapely.is_valid_reason(geom)}); repair it "
            "(QGIS: Fix geometries; shapely.make_valid)"
        )
    if geom.area == 0 and buffer_m <= 0:
        return f"{geom.geom_type} has no area; give a positive buffer or use polygons"
    return None


def metric_crs(crs: CRS, geom: BaseGeometry) -> tuple[CRS, float]:
    """A CRS to buffer ``geom`` (given in ``crs``) in, and its metres per CRS unit.

    A projected ``crs`` is used as is; otherwise the UTM zone of the geometry's centre.
    """
    if crs.is_projected:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return crs, float(factor or 1.0)
    utm = gpd.GeoSeries([geom], crs=crs).estimate_utm_crs()
    return utm, 1.0


def _densify(geom: BaseGeometry) -> BaseGeometry:
    minx, miny, maxx, maxy = geom.bounds
    extent = max(maxx - minx, maxy - miny)
    return shapely.segmentize(geom, extent / _DENSIFY_STEPS) if extent > 0 else geom


def _to_crs(geom: BaseGeometry, src_crs: CRS, dst_crs: CRS) -> BaseGeometry:
    if src_crs == dst_crs:
        return geom
    return gpd.GeoSeries([_densify(geom)], crs=src_crs).to_crs(dst_crs).iloc[0]


def prepare_aoi(
    geom: BaseGeometry, src_crs: Any, dst_crs: Any, buffer_m: float = 0.0
) -> BaseGeometry:
    """Reproject ``geom`` from ``src_crs`` (the AOI's) to ``dst_crs`` (the scene's) and buffer it
    by ``buffer_m`` metres in a metric CRS. Multi-polygons and holes are kept; a negative buffer
    shrinks. Returns a geometry in ``dst_crs`` (possibly empty after a negative buffer)."""
    src_crs, dst_crs = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    if not buffer_m:
        return _to_crs(geom, src_crs, dst_crs)
    in_dst = _to_crs(geom, src_crs, dst_crs)
    buf_crs, factor = metric_crs(dst_crs, in_dst)
    if buf_crs == dst_crs:
        return in_dst.buffer(buffer_m / factor)
    buffered = _to_crs(geom, src_crs, buf_crs).buffer(buffer_m)
    return _to_crs(buffered, buf_crs, dst_crs)


def output_filename(aoi: str, name: str, scene: str) -> str:
    """``<aoi key>__<feature name>__<scene key>.tif``: the file of one scene x AOI feature crop
    (``aoi`` from :func:`aoi_key`, ``name`` the feature's, ``scene`` the batch's key of the
    scene: its stem, with a short hash when stems collide)."""
    return f"{aoi}__{name}__{scene}.tif"
