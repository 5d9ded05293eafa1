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
