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

GCP scenes use GDAL's thin-plate-spline GCP transformer (``SRC_METHOD=GCP_TPS``) everywhere
(the model grid here, source windows and warping in :mod:`.resample`): it passes exactly
through every GCP, whereas GDAL's default polynomial fit misses the real Sentinel-1 geolocation
grid by up to 0.017 deg (about 1.5 km) and cut 732 m off the far-range corner of the model
grid. The scene centre takes the circular mean of GCP longitudes, and GCPs across the
antimeridian are warped in the model grid's CRS (:func:`warp_gcps`), so such a scene gets the
UTM zone of its real centre and one continuous footprint.

Sizes are checked before any work (:func:`check_grid_size`): a side over GDAL's limit of
2**31 - 1 pixels is a :class:`~sar2opt_geo.errors.ConfigError` naming the resolution to use.
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
from ..io.crs import lon_wrapped, warp_crs

__all__ = [
    "GDAL_MAX_SIDE",
    "SAME_SPACING_RTOL",
    "Grid",
    "check_grid_size",
    "circular_mean_lon",
    "clean_gcps",
    "crop_window",
    "crosses_antimeridian",
    "gcp_transformer_options",
    "is_metric",
    "model_grid",
    "native_grid",
    "reprojected_grid",
    "scene_center_lonlat",
    "utm_crs_for",
    "warp_crs",
    "warp_gcps",
]

SAME_SPACING_RTOL = 0.005  # spacings within 0.5 % count as equal: no resampling
GDAL_MAX_SIDE = 2**31 - 1  # GDAL raster sizes are C ints
#: Largest grid (pixels) one run makes: 2**32 px is a 65536 px square, 12 GiB of RGB and hours of inference;
#: beyond it a --tr in the wrong units (metres vs degrees) is far likelier than an intended product.
MAX_GRID_PIXELS = 2**32


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: ``crs``, ``transform`` (pixel -> CRS units), ``width`` x ``height`` pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units: the envelope of all four corners (rotated grids too)."""
        t = self.transform
        xs, ys = zip(*(t @ (c, r) for c, r in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height))))
        return (min(xs), min(ys), max(xs), max(ys))

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


def circular_mean_lon(lons: Sequence[float]) -> float:
    """Mean longitude in degrees (-180, 180] on the circle: 179.5 and -179.5 average to 180, not 0."""
    sx = sum(math.cos(math.radians(v)) for v in lons)
    sy = sum(math.sin(math.radians(v)) for v in lons)
    if abs(sx) < 1e-12 and abs(sy) < 1e-12:  # spread all round the globe: no meaningful mean
        return float(sum(lons) / len(lons))
    mean = math.degrees(math.atan2(sy, sx))
    return 180.0 if mean <= -180.0 else mean


def _wrap_near(lon: float, ref: float) -> float:
    """``lon`` plus a multiple of 360 so that it lies within 180 degrees of ``ref``."""
    return lon + 360.0 * round((ref - lon) / 360.0)


def gcp_transformer_options(gcps: Sequence[Any]) -> dict[str, str]:
    """GDAL transformer options for warping by ``gcps``: the thin-plate spline (``GCP_TPS``) from 3 GCPs on.

    One place so that the model grid, the source windows and the warp use the same transform.
    """
    return {"SRC_METHOD": "GCP_TPS"} if len(gcps) >= 3 else {}


def crosses_antimeridian(gcps: Sequence[Any], gcp_crs: CRS | None) -> bool:
    """True for geographic GCPs whose longitudes, taken around their circular mean, pass +-180 degrees."""
    if gcp_crs is not None and not gcp_crs.is_geographic or not gcps:
        return False
    ref = circular_mean_lon([g.x for g in gcps])
    return any(abs(_wrap_near(g.x, ref)) > 180.0 for g in gcps)


def warp_gcps(
    gcps: Sequence[Any], gcp_crs: CRS | None, dst_crs: CRS | None = None
) -> tuple[list[GroundControlPoint], CRS]:
    """``(gcps, crs)`` ready for GDAL's warper: ``z`` filled in, CRS defaulted to EPSG:4326.

    Geographic GCPs across the antimeridian are projected into ``dst_crs`` (the model grid's CRS,
    e.g. UTM zone 60 or 1), where their footprint is continuous: GDAL maps destination pixels back
    to longitudes in [-180, 180], which would miss GCPs on the other side of 180 degrees (half the
    scene came out empty). All other GCPs, and their CRS, come back unchanged.
    """
    crs = gcp_crs or CRS.from_epsg(4326)
    out = clean_gcps(gcps)
    if dst_crs is None or not crosses_antimeridian(out, crs):
        return out, crs
    from rasterio.warp import transform as warp_transform

    dst = CRS.from_user_input(dst_crs)
    xs, ys = warp_transform(crs, dst, [g.x for g in out], [g.y for g in out])
    return [GroundControlPoint(row=g.row, col=g.col, x=x, y=y, z=g.z, id=g.id, info=g.info)
            for g, x, y in zip(out, xs, ys)], dst


def check_grid_size(
    width: int, height: int, res: float, crs: CRS, what: str = "output grid", typical: float | None = None
) -> None:
    """Raise :class:`ConfigError` if a ``width`` x ``height`` grid exceeds GDAL's size limit (per side)
    or :data:`MAX_GRID_PIXELS` in all.

    Called where grids are made, before any pixel is read, so that a tiny ``--tr`` fails at once.
    ``typical``: a sensible resolution to suggest (CRS units), e.g. the model grid's spacing there.
    """
    side = max(width, height)
    if side <= GDAL_MAX_SIDE and width * height <= MAX_GRID_PIXELS:
        return
    units = "deg" if crs.is_geographic else "m" if is_metric(crs) else "CRS units"
    needed = max(res * side / GDAL_MAX_SIDE, res * math.sqrt(width * height / MAX_GRID_PIXELS))
    example = f", e.g. --tr {typical:.6g} (about the model's pixel spacing)" if typical and typical > needed else ""
    limit = (f"GDAL's limit of {GDAL_MAX_SIDE:,} px per side" if side > GDAL_MAX_SIDE
             else f"the limit of {MAX_GRID_PIXELS:,} px per run")
    raise ConfigError(
        f"{what} would be {width:,} x {height:,} px at a resolution of {res:g} {units} ({crs.to_string()}), "
        f"over {limit}; --tr is in the CRS's units: use a coarser --tr (dst_res), at least {needed:.3g}{example}"
    )


#: UTM's latitude limits, degrees: beyond them the model grid is in the Universal Polar Stereographic CRS.
UTM_NORTH_LIMIT = 84.0
UTM_SOUTH_LIMIT = -80.0


def is_metric(crs: CRS | str) -> bool:
    """Whether ``crs`` is projected with linear units (metres, feet): a CRS the model grid can use."""
    return _metres_per_unit(CRS.from_user_input(crs)) is not None


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS 84 UTM zone CRS (EPSG:326xx / 327xx) containing ``(lon, lat)`` degrees, chosen by pyproj;
    longitudes are wrapped to [-180, 180); beyond UTM's limits (84 N, 80 S) the WGS 84 UPS North /
    South CRS (EPSG:32661 / 32761)."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    if not (math.isfinite(lon) and math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise GeoreferencingError(f"scene centre lon={lon}, lat={lat} is not on the Earth; check the georeferencing")
    lon = (lon + 180.0) % 360.0 - 180.0  # a scene across the antimeridian may be centred at 180.002
    if lat > UTM_NORTH_LIMIT:
        return CRS.from_epsg(32661)  # WGS 84 / UPS North (N,E)
    if lat < UTM_SOUTH_LIMIT:
        return CRS.from_epsg(32761)  # WGS 84 / UPS South (N,E)
    infos = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    # pyproj may list several zones on a zone edge; the standard 6-degree zone comes first
    codes = [int(i.code) for i in infos if i.auth_name == "EPSG" and int(i.code) // 100 in (326, 327)]
    if not codes:
        raise GeoreferencingError(f"no WGS 84 UTM zone for lon={lon:.4f}, lat={lat:.4f}; pass dst_crs (--t-srs) in metres")
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    wanted = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(wanted if wanted in codes else codes[0])


def _lonlat(crs: CRS, xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    from rasterio.warp import transform as warp_transform

    lon, lat = warp_transform(crs, CRS.from_epsg(4326), list(xs), list(ys))
    return list(lon), list(lat)


def scene_center_lonlat(scene: Any) -> tuple[float, float]:
    """Longitude and latitude (degrees) of the scene centre, from its transform or its GCPs.

    For GCPs: the circular mean of their longitudes (a scene across the antimeridian is centred
    near 180 degrees, not near 0) and the mean of their latitudes.
    """
    if scene.gcps and scene.gcps[0]:
        gcps, gcp_crs = scene.gcps
        lon, lat = _lonlat(gcp_crs or CRS.from_epsg(4326), [g.x for g in gcps], [g.y for g in gcps])
        return circular_mean_lon(lon), sum(lat) / len(lat)
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


def model_grid(scene: Any, spacing_m: float, dst_crs: CRS | str | None = None,
               prefer_crs: CRS | str | None = None) -> Grid:
    """The grid the model runs on: ``spacing_m`` metres per pixel, covering the whole scene.

    ``dst_crs`` forces the CRS (it must be projected in metres or feet); ``prefer_crs`` (the
    user's output CRS, ``--t-srs``) is taken when it is projected in metres or feet and
    ignored otherwise; by default the scene's own projected CRS, else the UTM zone of the scene
    centre (UPS beyond 84 N / 80 S).
    """
    from rasterio.warp import calculate_default_transform

    _require_georeferencing(scene)
    own = native_grid(scene)
    if dst_crs is None and prefer_crs is not None and is_metric(prefer_crs):
        dst_crs = prefer_crs
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
        kw: dict[str, Any] = dict(zip(("left", "bottom", "right", "top"), own.bounds))  # all four corners
        src_crs = warp_crs(own.crs, own.bounds)
    else:  # thin-plate spline through the GCPs, as the warp in resample uses
        gcp_list, gcp_crs = scene.gcps
        gcps, src_crs = warp_gcps(gcp_list, gcp_crs, crs)
        kw = {"gcps": gcps, **gcp_transformer_options(gcps)}
    transform, width, height = calculate_default_transform(
        src_crs, crs, scene.width, scene.height, resolution=res, **kw
    )
    left, top = transform.c, transform.f
    right, bottom = transform @ (width, height)
    grid = _aligned(crs, res, (left, bottom, right, top))
    check_grid_size(grid.width, grid.height, res, crs, f"{scene.path}: model grid")
    return grid


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
    src = CRS.from_user_input(bounds_crs) if bounds_crs is not None else grid.crs
    if src.is_geographic and not (-360.0 <= left and right <= 360.0 and -90.0 <= bottom and top <= 90.0):
        raise _bounds_crs_error(grid, bounds, src, "are not longitude/latitude degrees")
    if src != grid.crs:
        left, bottom, right, top = transform_bounds(src, grid.crs, left, bottom, right, top, densify_pts=21)
        if not all(math.isfinite(v) for v in (left, bottom, right, top)):
            raise _bounds_crs_error(grid, bounds, src, f"cannot be transformed to {grid.crs.to_string()}")
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


def _bounds_crs_error(grid: Grid, bounds: Sequence[float], src: CRS, problem: str) -> GeoreferencingError:
    """One line naming the bounds, their CRS and ``--bounds-crs`` (bounds in metres given as lon/lat ...)."""
    shown = tuple(round(float(v), 6) for v in bounds)
    hint = f"e.g. --bounds-crs {grid.crs.to_string()} for the model grid's CRS"
    left, bottom, right, top = grid.bounds
    if bounds[0] < right and bounds[2] > left and bounds[1] < top and bounds[3] > bottom:
        hint = f"they fall inside the scene in {grid.crs.to_string()}: pass --bounds-crs {grid.crs.to_string()}"
    return GeoreferencingError(
        f"bounds {shown} in {src.to_string()} {problem}; give --bounds in that CRS, or name the CRS they are "
        f"in with --bounds-crs (bounds_crs=): {hint}"
    )


def reprojected_grid(grid: Grid, dst_crs: CRS | str | None = None, dst_res: float | None = None) -> Grid:
    """The grid ``grid``'s footprint gets in ``dst_crs`` at ``dst_res`` (CRS units; default: GDAL's choice).

    Raises :class:`ConfigError` (size and the resolution to use) when the result would exceed
    GDAL's size limit: call it before the work, not after.
    """
    from rasterio.warp import calculate_default_transform

    crs = CRS.from_user_input(dst_crs) if dst_crs is not None else grid.crs
    kw = {"resolution": dst_res} if dst_res else {}
    left, bottom, right, top = grid.bounds
    if crs == grid.crs and dst_res:
        width, height = _cells(right - left, dst_res), _cells(top - bottom, dst_res)
        check_grid_size(width, height, dst_res, crs, typical=grid.res[0])
        return Grid(crs, Affine(dst_res, 0.0, left, 0.0, -dst_res, top), width, height)
    if crs == grid.crs:
        return grid
    transform, width, height = calculate_default_transform(
        grid.crs, crs, grid.width, grid.height, left=left, bottom=bottom, right=right, top=top, **kw
    )
    if crs.is_geographic:  # across the antimeridian: continuous longitudes (up to 180.x) via +lon_wrap=180
        wrapped = lon_wrapped(crs, 180)
        t2, w2, h2 = calculate_default_transform(
            grid.crs, wrapped, grid.width, grid.height, left=left, bottom=bottom, right=right, top=top, **kw)
        if w2 > 0 and h2 > 0 and t2.c + w2 * t2.a > 180.0 and (
                min(width, height) <= 0 or w2 * abs(t2.a) < width * abs(transform.a)):
            transform, width, height = t2, w2, h2
    if min(width, height) <= 0:
        raise GeoreferencingError(f"the output grid in {crs.to_string()} is empty (the footprint cannot be mapped"
                                  " into it); choose another --t-srs")
    if max(width, height) > GDAL_MAX_SIDE or width * height > MAX_GRID_PIXELS:
        typical = abs(calculate_default_transform(grid.crs, crs, grid.width, grid.height, left=left, bottom=bottom,
                                                  right=right, top=top)[0].a)  # GDAL's own choice
        check_grid_size(width, height, dst_res or abs(transform.a), crs, typical=typical)
    return Grid(crs, transform, width, height)
