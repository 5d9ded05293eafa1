"""Model grid at the card's spacing, UTM choice, crops and output grids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sar2opt_geo.errors import GeoreferencingError, NoValidDataError
from sar2opt_geo.preprocess.grid import (
    Grid,
    crop_window,
    model_grid,
    reprojected_grid,
    utm_crs_for,
)


@dataclass
class GeoStub:
    """Just the georeferencing a Scene carries."""

    width: int
    height: int
    crs: CRS | None = None
    transform: Affine | None = None
    gcps: tuple | None = None
    path: Path = field(default_factory=lambda: Path("stub.tif"))


@pytest.mark.parametrize(
    "lon, lat, epsg", [(2.5, 43.0, 32631), (-118.2, 34.0, 32611), (10.0, -30.0, 32732), (13.0, -30.0, 32733), (179.9, 1.0, 32660)]
)
def test_utm_zone_of_a_point(lon, lat, epsg):
    assert utm_crs_for(lon, lat).to_epsg() == epsg


def test_projected_scene_at_20m_gets_exact_10m_grid_with_same_bounds():
    s = GeoStub(268, 217, CRS.from_epsg(32631), from_origin(620048.241204, 4830114.70107, 20, 20))
    g = model_grid(s, 10.0)
    assert g.crs.to_epsg() == 32631 and g.res == (10.0, 10.0)
    assert (g.width, g.height) == (536, 434)
    own = Grid(s.crs, s.transform, s.width, s.height)
    assert g.bounds == pytest.approx(own.bounds)


def test_scene_already_at_model_spacing_keeps_its_grid():
    t = from_origin(600000.0, 4800000.0, 10.02, 10.02)  # within 0.5 %
    s = GeoStub(100, 80, CRS.from_epsg(32631), t)
    g = model_grid(s, 10.0)
    assert g.transform == t and (g.width, g.height) == (100, 80)


def test_lonlat_scene_goes_to_utm_of_its_centre_with_aligned_pixels():
    s = GeoStub(200, 100, CRS.from_epsg(4326), from_origin(-118.5, 34.2, 0.0005, 0.0005))
    g = model_grid(s, 10.0)
    assert g.crs.to_epsg() == 32611
    assert g.res == (10.0, 10.0)
    assert g.transform.c % 10 == pytest.approx(0) and g.transform.f % 10 == pytest.approx(0)
    # about 0.1 deg x 0.05 deg: ~9.2 km x ~5.5 km at 34 N
    assert 850 < g.width < 1000 and 520 < g.height < 600


def test_gcp_scene_goes_to_utm_of_its_centre():
    gcps = [GroundControlPoint(row=r, col=c, x=3.0 + c * 1e-4, y=45.0 - r * 1e-4) for r in (0, 500) for c in (0, 400)]
    s = GeoStub(400, 500, gcps=(gcps, CRS.from_epsg(4326)))
    g = model_grid(s, 10.0)
    assert g.crs.to_epsg() == 32631
    assert 280 < g.width < 360 and 520 < g.height < 600


def test_no_georeferencing_is_a_clear_error():
    with pytest.raises(GeoreferencingError, match="stub.tif"):
        model_grid(GeoStub(10, 10), 10.0)


def test_crop_window_snaps_outwards_and_clips():
    g = Grid(CRS.from_epsg(32631), from_origin(1000.0, 2000.0, 10.0, 10.0), 100, 100)
    w = crop_window(g, (1015.0, 1500.0, 1101.0, 1905.0))
    assert (w.col_off, w.row_off, w.width, w.height) == (1, 9, 10, 41)
    w = crop_window(g, (500.0, 500.0, 1050.0, 5000.0))  # clipped to the grid
    assert (w.col_off, w.row_off, w.width, w.height) == (0, 0, 5, 100)


def test_crop_window_in_another_crs():
    g = Grid(CRS.from_epsg(32631), from_origin(500000.0, 4800000.0, 10.0, 10.0), 1000, 1000)
    from rasterio.warp import transform_bounds

    ll = transform_bounds(g.crs, "EPSG:4326", 502000.0, 4795000.0, 504000.0, 4797000.0)
    w = crop_window(g, ll, "EPSG:4326")
    assert 195 <= w.col_off <= 201 and 295 <= w.row_off <= 301
    assert 199 <= w.width <= 206 and 199 <= w.height <= 206


def test_crop_outside_the_grid_is_no_valid_data():
    g = Grid(CRS.from_epsg(32631), from_origin(0.0, 1000.0, 10.0, 10.0), 100, 100)
    with pytest.raises(NoValidDataError, match="do not overlap"):
        crop_window(g, (5000.0, 5000.0, 6000.0, 6000.0))


def test_reprojected_grid():
    g = Grid(CRS.from_epsg(32631), from_origin(500000.0, 4800000.0, 10.0, 10.0), 300, 200)
    same = reprojected_grid(g, None, 20.0)
    assert same.crs == g.crs and same.res == (20.0, 20.0) and (same.width, same.height) == (150, 100)
    ll = reprojected_grid(g, "EPSG:4326")
    assert ll.crs.to_epsg() == 4326 and ll.res[0] < 0.001
    left, bottom, _right, _top = ll.bounds
    assert 2.99 < left < 3.01 and 43.3 < bottom < 43.4


# -- regressions of issue 12 (georeferencing) ---------------------------------------------


def _gcp_hull_in(crs, gcps):
    from rasterio.warp import transform as warp_transform
    from shapely.geometry import MultiPoint

    xs, ys = warp_transform(CRS.from_epsg(4326), crs, [g.x for g in gcps], [g.y for g in gcps])
    return MultiPoint(list(zip(xs, ys))).convex_hull


def test_gcp_grid_covers_far_range_corner_bug(s1_safe):
    """Real S1B geolocation grid (210 GCPs): GDAL's polynomial fit put the model grid's left edge
    732 m east of the south-west far-range GCP; the thin-plate spline covers the whole GCP footprint."""
    from shapely.geometry import box

    from sar2opt_geo.sensors import open_scene

    with open_scene(s1_safe) as s:
        grid = model_grid(s, 10.0)
        hull = _gcp_hull_in(grid.crs, s.gcps[0])
    left, bottom, right, top = grid.bounds
    assert hull.difference(box(left, bottom, right, top)).area == 0.0
    h_left, h_bottom, h_right, h_top = hull.bounds
    # covering, but not by much more than the half pixel of image beyond the outer GCPs and the 10 m snapping
    assert 0 <= h_left - left < 40 and 0 <= h_bottom - bottom < 40
    assert 0 <= right - h_right < 40 and 0 <= top - h_top < 40


def test_rotated_geotransform_bounds_use_four_corners():
    import math

    a = math.radians(30)
    t = Affine.translation(500000.0, 4800000.0) * Affine.rotation(30) * Affine.scale(10.0, -10.0)
    g = Grid(CRS.from_epsg(32631), t, 300, 200)
    corners = [t @ (c, r) for c, r in ((0, 0), (300, 0), (0, 200), (300, 200))]
    left, bottom, right, top = g.bounds
    assert left == pytest.approx(min(x for x, _ in corners)) and right == pytest.approx(max(x for x, _ in corners))
    assert bottom == pytest.approx(min(y for _, y in corners)) and top == pytest.approx(max(y for _, y in corners))
    # the envelope of a 3 km x 2 km raster turned by 30 degrees
    assert right - left == pytest.approx(3000 * math.cos(a) + 2000 * math.sin(a))
    assert top - bottom == pytest.approx(3000 * math.sin(a) + 2000 * math.cos(a))


def test_rotated_scene_model_grid_covers_all_corners():
    t = Affine.translation(500000.0, 4800000.0) * Affine.rotation(30) * Affine.scale(20.0, -20.0)
    s = GeoStub(150, 100, CRS.from_epsg(32631), t)
    g = model_grid(s, 10.0)
    left, bottom, right, top = g.bounds
    for c, r in ((0, 0), (150, 0), (0, 100), (150, 100)):
        x, y = t @ (c, r)
        assert left <= x <= right and bottom <= y <= top
    assert g.res == (10.0, 10.0) and g.transform.b == 0 and g.transform.d == 0


def _antimeridian_gcps():
    """A synthetic 200 x 300 px GCP raster from 179.99 E to 180.01 (= -179.99), 16 S, 1e-4 deg per pixel."""
    def wrap(lon):
        return (lon + 180.0) % 360.0 - 180.0

    return [GroundControlPoint(row=r, col=c, x=wrap(179.99 + c * 1e-4), y=-16.0 - r * 1e-4, z=0.0)
            for r in range(0, 301, 50) for c in range(0, 201, 50)]


def test_utm_zone_across_antimeridian():
    """The plain mean of longitudes of a scene across 180 degrees is near 0 (UTM 25S before the fix)."""
    from sar2opt_geo.preprocess.grid import circular_mean_lon, scene_center_lonlat

    assert circular_mean_lon([179.5, -179.5]) == pytest.approx(180.0)
    assert circular_mean_lon([10.0, 20.0]) == pytest.approx(15.0)
    s = GeoStub(200, 300, gcps=(_antimeridian_gcps(), CRS.from_epsg(4326)))
    lon, lat = scene_center_lonlat(s)
    assert abs(abs(lon) - 180.0) < 0.01 and lat == pytest.approx(-16.015)
    g = model_grid(s, 10.0)
    assert g.crs.to_epsg() in (32760, 32701)
    # 0.02 deg x 0.03 deg at 16 S: about 2.1 km x 3.3 km
    assert 200 <= g.width <= 240 and 320 <= g.height <= 350


def test_bounds_in_metres_on_a_gcp_scene_name_bounds_crs_bug():
    """--bounds in metres on a GCP scene (bounds CRS = lon/lat) crashed with 'cannot convert float NaN to integer'."""
    g = Grid(CRS.from_epsg(32633), from_origin(330000.0, 4670000.0, 10.0, 10.0), 2000, 2000)
    with pytest.raises(GeoreferencingError) as info:
        crop_window(g, (335000.0, 4655000.0, 340000.0, 4660000.0), "EPSG:4326")
    msg = str(info.value)
    assert "--bounds-crs EPSG:32633" in msg and "335000.0" in msg and "EPSG:4326" in msg and "\n" not in msg
    # lon/lat bounds given as lon/lat still work
    w = crop_window(g, (13.0, 42.05, 13.05, 42.1), "EPSG:4326")
    assert w.width > 0 and w.height > 0


def test_tiny_tr_is_refused_with_size_and_fix_bug():
    """--tr so small that the output exceeds GDAL's 2**31 - 1 px per side: one line before any work."""
    from sar2opt_geo.errors import ConfigError

    g = Grid(CRS.from_epsg(32631), from_origin(500000.0, 4800000.0, 10.0, 10.0), 3000, 2000)
    with pytest.raises(ConfigError, match=r"30,000,000,000 x 20,000,000,000 px .* --tr .*e\.g\. --tr 10 "):
        reprojected_grid(g, None, 1e-6)
    with pytest.raises(ConfigError, match=r"EPSG:4326.*GDAL's limit of 2,147,483,647 px per side"):
        reprojected_grid(g, "EPSG:4326", 1e-12)
    assert reprojected_grid(g, "EPSG:4326", 1e-4).width < 10_000  # a sane one passes
