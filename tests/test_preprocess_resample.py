"""Calibrated values on the model grid: direct reads, WarpedVRT in linear power, GCP scenes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sar2opt_geo.preprocess.grid import model_grid, native_grid
from sar2opt_geo.preprocess.resample import choose_resampling, open_linear_source
from sar2opt_geo.sensors import open_scene


def _db_tif(make_geotiff, db, res, name="s.tif", nodata=-9999.0):
    return make_geotiff(db.astype(np.float32), name=name, transform=from_origin(600000.0, 4800000.0, res, res),
                        nodata=nodata, descriptions=("VH",))


def test_scene_on_model_spacing_is_read_directly(make_geotiff, tmp_path):
    rng = np.random.default_rng(0)
    db = rng.uniform(-25, -5, size=(64, 80))
    with open_scene(_db_tif(make_geotiff, db, 10.0)) as s:
        grid = model_grid(s, 10.0)
        with open_linear_source(s, ["VH"], grid, work_dir=tmp_path) as src:
            x = src.read(grid.full_window())
            assert "no resampling" in src.description
        np.testing.assert_allclose(x[0], s.read("VH"), rtol=1e-6)
    assert not list(tmp_path.glob("calibrated-*"))  # nothing written for the direct path


def test_downsampling_averages_linear_power_not_db(make_geotiff, tmp_path):
    db = np.where((np.indices((64, 64)).sum(axis=0) % 2) == 0, -30.0, -10.0)  # checkerboard at 5 m
    with open_scene(_db_tif(make_geotiff, db, 5.0)) as s:
        grid = model_grid(s, 10.0)
        assert (grid.width, grid.height) == (32, 32)
        with open_linear_source(s, ["VH"], grid, work_dir=tmp_path) as src:
            x = src.read(grid.full_window())[0]
    # mean of 1e-3 and 1e-1 in power is 0.0505 (-13 dB); averaging dB would give -20 dB = 0.01
    np.testing.assert_allclose(x, 0.0505, rtol=1e-3)


def test_upsampling_keeps_nodata_and_brightness(make_geotiff, tmp_path):
    rng = np.random.default_rng(1)
    db = rng.uniform(-22, -8, size=(50, 60))
    db[:, :10] = -9999.0  # nodata strip on the left (200 m)
    with open_scene(_db_tif(make_geotiff, db, 20.0)) as s:
        grid = model_grid(s, 10.0)
        assert (grid.width, grid.height) == (120, 100) and grid.bounds == pytest.approx(native_grid(s).bounds)
        with open_linear_source(s, ["VH"], grid, work_dir=tmp_path) as src:
            x = src.read(grid.full_window())[0]
            part = src.read(rasterio.windows.Window(col_off=30, row_off=40, width=50, height=20))[0]
        native = s.read("VH")
    assert np.isnan(x[:, :19]).all()  # the 20 nodata columns at 10 m, less the bilinear edge
    assert np.isfinite(x[:, 22:]).all()
    assert np.nanmean(x[:, 22:]) == pytest.approx(np.nanmean(native[:, 11:]), rel=0.03)
    np.testing.assert_allclose(part, x[40:60, 30:80], rtol=1e-6)  # windows agree with the whole


def test_gcp_scene_is_warped_to_utm(tmp_path):
    # a 300 x 200 px lon/lat-GCP raster, 1e-4 deg per pixel, near 3 E 45 N: a bright east half
    h, w = 300, 200
    power = np.full((h, w), 0.01, np.float32)
    power[:, w // 2 :] = 0.1
    gcps = [GroundControlPoint(row=r, col=c, x=3.0 + c * 1e-4, y=45.0 - r * 1e-4, z=0.0)
            for r in range(0, h + 1, 50) for c in range(0, w + 1, 50)]
    path = tmp_path / "gcp_linear.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       nodata=float("nan"), gcps=gcps, crs=CRS.from_epsg(4326)) as ds:
        ds.write(power, 1)
        ds.set_band_description(1, "VV")
        ds.update_tags(UNITS="linear", SENSOR="Sentinel-1")
    with open_scene(path) as s:
        assert s.gcps and native_grid(s) is None
        grid = model_grid(s, 10.0)
        assert grid.crs.to_epsg() == 32631
        with open_linear_source(s, list(s.bands), grid, work_dir=tmp_path) as src:
            x = src.read(grid.full_window())[0]
            assert "GCP" in src.description
    valid = np.isfinite(x)
    assert valid.mean() > 0.8
    # 0.01 deg of longitude at 45 N is about 787 m: the bright half starts about 79 px in
    cols_bright = np.nanmean(np.where(valid, x > 0.05, np.nan), axis=0)
    edge = int(np.argmax(cols_bright > 0.5))
    assert 70 <= edge <= 90
    assert np.nanmax(x) == pytest.approx(0.1, rel=1e-3) and np.nanmin(x) == pytest.approx(0.01, rel=1e-3)


def test_choose_resampling():
    assert choose_resampling(5.0, 10.0).name == "average"
    assert choose_resampling(20.0, 10.0).name == "bilinear"
    assert choose_resampling(10.0, 10.0, "cubic").name == "cubic"
    with pytest.raises(ValueError, match="unknown resampling"):
        choose_resampling(10.0, 10.0, "magic")


def test_crop_of_a_full_size_safe_calibrates_only_its_part(s1_safe, tmp_path):
    """Real S1 GRD SAFE (26102 x 16705, GCPs): a 256 px crop of the model grid reads a few hundred pixels."""
    from rasterio.windows import Window

    from sar2opt_geo.preprocess.resample import source_window

    with open_scene(s1_safe) as s:
        assert s.gcps and (s.width, s.height) == (26102, 16705)
        grid = model_grid(s, 10.0)
        assert grid.crs.to_epsg() == 32633 and grid.res == (10.0, 10.0)
        crop = grid.window_grid(Window(col_off=14000, row_off=10000, width=256, height=256))
        win = source_window(s, crop, pad=4)
        assert 256 <= win.width < 600 and 256 <= win.height < 600
        with open_linear_source(s, list(s.bands), crop, work_dir=tmp_path) as src:
            x = src.read(crop.full_window())
            assert x.shape == (1, 256, 256)
            (temp,) = tmp_path.glob("calibrated-*.tif")
            with rasterio.open(temp) as t:
                assert win.width <= t.width <= win.width + 8 and win.height <= t.height <= win.height + 8
                assert len(t.gcps[0]) == 210


# -- regressions of issue 12 (georeferencing) ---------------------------------------------


def test_gcp_crop_context_has_no_nan_inside_the_footprint_bug(s1_safe, tmp_path):
    """Real S1B GCPs: a 256 px model-grid crop around GCP (pixel 14366, line 2005) read 17 % NaN
    (the polynomial GCP fit chose too small a source window); with the thin-plate spline none.
    The SAFE's measurement is an all-zero placeholder, so the scene reads a constant instead."""
    from rasterio.warp import transform as warp_transform
    from rasterio.windows import Window

    with open_scene(s1_safe) as s:
        gcp = next(g for g in s.gcps[0] if (g.col, g.row) == (14366.0, 2005.0))
        s.read = lambda band, window=None: np.full((int(window.height), int(window.width)), 0.05, np.float32)
        grid = model_grid(s, 10.0)
        (x,), (y,) = warp_transform(CRS.from_epsg(4326), grid.crs, [gcp.x], [gcp.y])
        col, row = ~grid.transform @ (x, y)
        crop = grid.window_grid(Window(col_off=int(col) - 128, row_off=int(row) - 128, width=256, height=256))
        with open_linear_source(s, list(s.bands), crop, work_dir=tmp_path) as src:
            out = src.read(crop.full_window())
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 0.05, rtol=1e-5)


def test_gcp_scene_across_the_antimeridian_is_warped_whole(tmp_path):
    """GCPs from 179.99 E to -179.99: GDAL maps destination pixels back to longitudes in [-180, 180],
    missing GCPs unwrapped past 180; before the fix 36 % of the grid was valid (in a UTM zone of the
    Atlantic), now the footprint is whole and the bright east half starts where it should."""
    h, w = 300, 200
    power = np.full((h, w), 0.01, np.float32)
    power[:, w // 2:] = 0.1
    gcps = [GroundControlPoint(row=r, col=c, x=(179.99 + c * 1e-4 + 180.0) % 360.0 - 180.0, y=-16.0 - r * 1e-4, z=0.0)
            for r in range(0, h + 1, 50) for c in range(0, w + 1, 50)]
    path = tmp_path / "antimeridian_linear.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       nodata=float("nan"), gcps=gcps, crs=CRS.from_epsg(4326)) as ds:
        ds.write(power, 1)
        ds.set_band_description(1, "VV")
        ds.update_tags(UNITS="linear", SENSOR="Sentinel-1")
    with open_scene(path) as s:
        grid = model_grid(s, 10.0)
        assert grid.crs.to_epsg() in (32760, 32701)
        with open_linear_source(s, list(s.bands), grid, work_dir=tmp_path) as src:
            x = src.read(grid.full_window())[0]
    valid = np.isfinite(x)
    assert valid.mean() > 0.9
    # 0.01 deg of longitude at 16 S is about 1070 m: the bright half starts about 107 px in
    bright = (valid & (x > 0.05)).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    edge = int(np.argmax(bright > 0.5))
    assert 100 <= edge <= 120
    assert np.nanmax(x) == pytest.approx(0.1, rel=1e-3) and np.nanmin(x) == pytest.approx(0.01, rel=1e-3)
