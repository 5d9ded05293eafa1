"""Pixel grids: the model grid at the card's pixel spacing, crops, and output grids.

Conventions: a :class:`Grid` is a CRS, a north-up affine transform and a size in pixels;
bounds are ``(left, bottom, right, top)`` in the grid's CRS units; resolutions are in CRS
units per pixel. The *model grid* of a scene has the model's pixel spacing
(``card.input.pixel_spacing_m``, metres):

* map-projected scene in metres (UTM, ...): same CRS, same origin, pixels of the model
  spacing covering the scene's bounds (an exact multiple when the spacings divide);
  the scene's own grid when its spacing already equals the model's (within 0.5 %);
* geographic CRS (lon/lat), rotated grids and GCP-georeferenced scenes (Sentinel-1 GRD
  in radar geometry): the WGS 84 UTM zone of the scene centre (pyproj), with pixel
  edges on multiples of the spacing (like ``gdalwarp -tap``) so that neighbouring
  crops line up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import ConfigError, GeoreferencingError, NoValidDataError

__all__ = [
    "SAME_SPACING_RTOL",
    "Grid",
    "clean_gcps",
    "crop_window",
    "model_grid",
    "native_grid",
    "reprojected_grid",
    "scene_center_lonlat",
    "utm_crs_for",
]

SAME_SPACING_RTOL = 0.005  # spacings within 0.5 % count as equal: no resampling


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: ``crs``, ``transform`` (pixel -> CRS units), ``width`` x ``height`` pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        t = self.transform
        left, top = t.c, t.f
        right, bottom = t @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units (positive)."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def window_grid(self, window: Window) -> Grid:
        """The sub-grid covered by ``window`` (integer offsets and sizes, in pixels of this grid)."""
        col, row = int(window.col_off), int(window.row_off)
        return Grid(self.crs, self.transform @ Affine.translation(col, row), int(window.width), int(window.height))

    def full_window(self) -> Window:
        return Window(col_off=0, row_off=0, width=self.width, height=self.height)

    def same_as(self, other: Grid, rtol: float = 1e-9) -> bool:
        """True if both grids have the same CRS, size and (almost) the same transform."""
        return (
            self.crs == other.crs and self.width == other.width and self.height == other.height
            and self.transform.almost_equals(other.transform, precision=rtol * max(self.res))
        )


def clean_gcps(gcps: Sequence[Any]) -> list[GroundControlPoint]:
    """GCPs with ``z = 0`` where it is missing (GDAL's GCP XML cannot carry ``None``)."""
    return [
        GroundControlPoint(row=g.row, col=g.col, x=g.x, y=g.y, z=g.z if g.z is not None else 0.0,
                           id=g.id, info=g.info)
        for g in gcps
    ]


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS 84 UTM zone CRS (EPSG:326xx / 327xx) containing ``(lon, lat)`` degrees, chosen by pyproj."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    infos = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    # pyproj may list several zones on a zone edge; the standard 6-degree zone comes first
    codes = [int(i.code) for i in infos if i.auth_name == "EPSG" and int(i.code) // 100 in (326, 327)]
    if not codes:
        raise GeoreferencingError(f"no WGS 84 UTM zone for lon={lon:.4f}, lat={lat:.4f} (polar area?); pass dst_crs")
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    wanted = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(wanted if wanted in codes else codes[0])


def _lonlat(crs: CRS, xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    from rasterio.warp import transform as warp_transform

    lon, lat = warp_transform(crs, CRS.from_epsg(4326), list(xs), list(ys))
    return list(lon), list(lat)


def scene_center_lonlat(scene: Any) -> tuple[float, float]:
    """Longitude and latitude (degrees) of the scene centre, from its transform or its GCPs."""
    if scene.gcps and scene.gcps[0]:
        gcps, gcp_crs = scene.gcps
        xs = [g.x for g in gcps]
        ys = [g.y for g in gcps]
        lon, lat = _lonlat(gcp_crs or CRS.from_epsg(4326), [sum(xs) / len(xs)], [sum(ys) / len(ys)])
        return lon[0], lat[0]
    x, y = scene.transform @ (scene.width / 2, scene.height / 2)
    lon, lat = _lonlat(scene.crs, [x], [y])
    return lon[0], lat[0]


def _has_transform(scene: Any) -> bool:
    return scene.crs is not None and scene.transform is not None and not scene.transform.is_identity


def native_grid(scene: Any) -> Grid | None:
    """The scene's own map grid, or None for GCP-georeferenced scenes."""
    if _has_transform(scene):
        return Grid(CRS.from_user_input(scene.crs), scene.transform, scene.width, scene.height)
    return None


def _metres_per_unit(crs: CRS) -> float | None:
    if crs.is_geographic:
        return None
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else None
    return float(factor) if factor else None


def _require_georeferencing(scene: Any) -> None:
    if not _has_transform(scene) and not (scene.gcps and scene.gcps[0]):
        raise GeoreferencingError(
            f"{scene.path}: no georeferencing (neither CRS + geotransform nor GCPs); "
            "georeference it first (e.g. gdal_translate -a_srs/-a_ullr or gdalwarp)"
        )


def model_grid(scene: Any, spacing_m: float, dst_crs: CRS | str | None = None) -> Grid:
    """The grid the model runs on: ``spacing_m`` metres per pixel, covering the whole scene.

    ``dst_crs`` forces the CRS (it must be projected in metres or feet); by default the
    scene's own projected CRS, else the UTM zone of the scene centre.
    """
    from rasterio.warp import calculate_default_transform

    _require_georeferencing(scene)
    own = native_grid(scene)
    if dst_crs is not None:
        crs = CRS.from_user_input(dst_crs)
    elif own is not None and _metres_per_unit(own.crs) is not None:
        crs = own.crs
    else:
        crs = utm_crs_for(*scene_center_lonlat(scene))
    factor = _metres_per_unit(crs)
    if factor is None:
        raise GeoreferencingError(f"model grid CRS {crs.to_string()} is not projected; choose a metric CRS")
    res = spacing_m / factor

    north_up = own is not None and own.transform.b == 0 and own.transform.d == 0 and own.transform.e < 0
    if own is not None and own.crs == crs and north_up:
        xres, yres = own.res
        if abs(xres - res) <= SAME_SPACING_RTOL * res and abs(yres - res) <= SAME_SPACING_RTOL * res:
            return own
        left, bottom, right, top = own.bounds
        width = _cells(right - left, res)
        height = _cells(top - bottom, res)
        return Grid(crs, Affine(res, 0.0, left, 0.0, -res, top), width, height)

    if own is not None:
        kw: dict[str, Any] = dict(zip(("left", "bottom", "right", "top"), own.bounds))
        src_crs = own.crs
    else:
        gcps, gcp_crs = scene.gcps
        kw = {"gcps": clean_gcps(gcps)}
        src_crs = gcp_crs or CRS.from_epsg(4326)
    transform, width, height = calculate_default_transform(
        src_crs, crs, scene.width, scene.height, resolution=res, **kw
    )
    left, top = transform.c, transform.f
    right, bottom = transform @ (width, height)
    return _aligned(crs, res, (left, bottom, right, top))


def _cells(length: float, res: float) -> int:
    """Number of pixels of size ``res`` covering ``length`` (exact multiples stay exact)."""
    n = length / res
    return max(1, round(n) if abs(n - round(n)) < 1e-6 else math.ceil(n))


def _aligned(crs: CRS, res: float, bounds: tuple[float, float, float, float]) -> Grid:
    """Grid with pixel edges on multiples of ``res`` that covers ``bounds``."""
    left, bottom, right, top = bounds
    left = math.floor(left / res + 1e-9) * res
    top = math.ceil(top / res - 1e-9) * res
    right = math.ceil(right / res - 1e-9) * res
    bottom = math.floor(bottom / res + 1e-9) * res
    return Grid(crs, Affine(res, 0.0, left, 0.0, -res, top), _cells(right - left, res), _cells(top - bottom, res))


def crop_window(
    grid: Grid, bounds: tuple[float, float, float, float], bounds_crs: CRS | str | None = None
) -> Window:
    """Pixel window of ``grid`` covering ``bounds`` (snapped outwards to whole pixels, clipped to the grid).

    ``bounds`` are ``(left, bottom, right, top)`` in ``bounds_crs`` (default: the grid's
    CRS). Raises :class:`NoValidDataError` if they do not overlap the grid.
    """
    from rasterio.warp import transform_bounds

    left, bottom, right, top = bounds
    if not (right > left and top > bottom):
        raise ConfigError(f"bounds {tuple(bounds)} must be (left, bottom, right, top) with right > left and top > bottom")
    if bounds_crs is not None and CRS.from_user_input(bounds_crs) != grid.crs:
        left, bottom, right, top = transform_bounds(CRS.from_user_input(bounds_crs), grid.crs, left, bottom, right, top,
                                                    densify_pts=21)
    inv = ~grid.transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((left, top), (right, top), (left, bottom), (right, bottom))))
    c0, c1 = max(0, math.floor(min(cols) + 1e-6)), min(grid.width, math.ceil(max(cols) - 1e-6))
    r0, r1 = max(0, math.floor(min(rows) + 1e-6)), min(grid.height, math.ceil(max(rows) - 1e-6))
    if c1 <= c0 or r1 <= r0:
        raise NoValidDataError(
            f"bounds {tuple(round(v, 6) for v in bounds)} ({bounds_crs or grid.crs.to_string()}) do not overlap "
            f"the scene (grid bounds {tuple(round(v, 3) for v in grid.bounds)} in {grid.crs.to_string()})"
        )
    return Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def reprojected_grid(grid: Grid, dst_crs: CRS | str | None = None, dst_res: float | None = None) -> Grid:
    """The grid ``grid``'s footprint gets in ``dst_crs`` at ``dst_res`` (CRS units; default: GDAL's choice)."""
    from rasterio.warp import calculate_default_transform

    crs = CRS.from_user_input(dst_crs) if dst_crs is not None else grid.crs
    kw = {"resolution": dst_res} if dst_res else {}
    left, bottom, right, top = grid.bounds
    if crs == grid.crs and dst_res:
        return Grid(crs, Affine(dst_res, 0.0, left, 0.0, -dst_res, top), _cells(right - left, dst_res),
                    _cells(top - bottom, dst_res))
    if crs == grid.crs:
        return grid
    transform, width, height = calculate_default_transform(
        grid.crs, crs, grid.width, grid.height, left=left, bottom=bottom, right=right, top=top, **kw
    )
    return Grid(crs, transform, width, height)
