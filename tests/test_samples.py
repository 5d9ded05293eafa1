"""Synthetic sample scenes: deterministic, georeferenced, with plausible SAR structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from sar2opt_geo.samples.synthetic import (
    SAMPLE_NODATA,
    synthetic_db,
    write_sample_scene,
)
from sar2opt_geo.sensors import open_scene


def test_sample_scene_profile_and_tags(tmp_path: Path):
    path = write_sample_scene(tmp_path / "demo" / "sample.tif", size=300, seed=1)
    assert path.exists() and not list(path.parent.glob(".*tmp*"))  # atomic: no temp left behind
    with rasterio.open(path) as ds:
        assert (ds.width, ds.height, ds.count) == (300, 300, 1)
        assert ds.dtypes[0] == "float32" and ds.nodata == SAMPLE_NODATA
        assert ds.crs.to_epsg() == 32631 and ds.res == (10.0, 10.0)
        assert "synthetic" in ds.tags()["SYNTHETIC"] and ds.descriptions[0] == "VH"
        data = ds.read(1)
    nodata = data == SAMPLE_NODATA
    assert 0.01 < nodata.mean() < 0.2  # a swath-edge wedge, not the whole scene
    valid = data[~nodata]
    assert -30 < np.percentile(valid, 5) < -20  # dark water
    assert -20 < np.median(valid) < -12  # fields
    assert np.percentile(valid, 99.5) > -6  # bright urban scatterers


def test_sample_scene_is_deterministic_per_seed(tmp_path: Path):
    a = rasterio.open(write_sample_scene(tmp_path / "a.tif", size=280, seed=5)).read(1)
    b = rasterio.open(write_sample_scene(tmp_path / "b.tif", size=280, seed=5)).read(1)
    c = rasterio.open(write_sample_scene(tmp_path / "c.tif", size=280, seed=6)).read(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_scene_reads_as_sentinel1_vh_linear(tmp_path: Path):
    path = write_sample_scene(tmp_path / "s.tif", size=256)
    scene = open_scene(path)
    assert scene.sensor == "Sentinel-1" and list(scene.bands) == ["VH"] and scene.frequency_band == "C"
    db = rasterio.open(path).read(1).astype(np.float64)
    power = scene.read("VH")
    valid = db != SAMPLE_NODATA
    np.testing.assert_array_equal(np.isnan(power), ~valid)
    np.testing.assert_allclose(power[valid], 10 ** (db[valid] / 10), rtol=1e-5)


def test_water_is_darker_than_urban():
    db = synthetic_db(size=256, seed=0)
    valid = db[np.isfinite(db)]
    dark, bright = np.percentile(valid, [10, 99])
    assert bright - dark > 12  # dB contrast between water and urban
    assert np.isnan(db).any()
