"""The real ALOS-2 PALSAR-2 25 m mosaic tile N23W161 (2020, HH+HV, JAXA) in ../shared/data (issue 21).

Only a strip along the swath holds data (rows 3950-4499 of 4500, mostly ocean around Nihoa):
reads and translations use windows inside it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sar2opt_geo.cli.main import main
from sar2opt_geo.radiometry import Quantity
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.palsar2_mosaic import Palsar2MosaicScene, is_palsar2_mosaic

STRIP = Window(col_off=3825, row_off=4150, width=300, height=300)  # ocean and most of the island, all valid
STRIP_BOUNDS = (-161 + 3825 / 4500, 23 - 4450 / 4500, -161 + 4125 / 4500, 23 - 4150 / 4500)  # the same area, lon/lat


@pytest.fixture(scope="module")
def tile(data_dir: Path) -> Path:
    folder = data_dir / "sar" / "palsar2_mosaic_N23W161_2020"
    assert folder.is_dir(), f"{folder} missing"
    return folder


def test_tile_is_read_as_palsar2_gamma0_with_its_xml(tile):
    assert is_palsar2_mosaic(tile) and is_palsar2_mosaic(tile / "N23W161_20_sl_HH_F02DAR.tif")
    with open_scene(tile) as scene:
        assert isinstance(scene, Palsar2MosaicScene) and scene.is_sar
        assert scene.sensor == "ALOS-2 PALSAR-2" and scene.frequency_band == "L"
        assert list(scene.bands) == ["HH", "HV"] and all(b.quantity == Quantity.GAMMA0 for b in scene.bands.values())
        assert scene.calibration_factor_db == -83.0 and "10 * log10(DN^2) - 83.0" in scene.metadata["calibration_factor_source"]
        assert scene.metadata["acquisition_date"] == "2020-09-09" and scene.metadata["pass_direction"] == "Ascending"
        assert (scene.width, scene.height) == (4500, 4500) and scene.crs.to_epsg() == 4326
        assert scene.pixel_spacing_m() == pytest.approx(24.7, abs=0.5)


def test_calibration_is_the_products_formula_and_nodata_is_masked(tile):
    with rasterio.open(tile / "N23W161_20_sl_HV_F02DAR.tif") as ds:
        dn = ds.read(1, window=STRIP).astype(np.float64)
        full_dn = ds.read(1, window=Window(0, 3900, 4500, 200))
    with rasterio.open(tile / "N23W161_20_mask_F02DAR.tif") as ds:
        full_mask = ds.read(1, window=Window(0, 3900, 4500, 200))
    with open_scene(tile) as scene:
        gamma0 = scene.read("HV", STRIP)
        edge = scene.read("HV", Window(0, 3900, 4500, 200))
        linci = scene.read_aux("linci", STRIP)
    valid = dn > 1
    assert valid.all()  # the window lies inside the swath
    np.testing.assert_allclose(10 * np.log10(gamma0[valid]), 10 * np.log10(dn[valid] ** 2) - 83.0, atol=1e-4)
    assert np.isnan(edge[(full_dn <= 1) | (full_mask == 0)]).all()
    assert np.isfinite(edge[(full_dn > 1) & (full_mask > 0)]).all()
    assert 20 < float(np.median(linci)) < 60  # local incidence angle, degrees (33.7-38.6 off flat ground)


def test_one_polarisation_file_and_the_calibration_override(tile):
    with open_scene(tile / "N23W161_20_sl_HV_F02DAR.tif") as one:
        assert list(one.bands) == ["HV"]
        base = one.read("HV", STRIP)
    with open_scene(tile, calibration_factor_db=-80.0) as scene:
        brighter = scene.read("HV", STRIP)
    np.testing.assert_allclose(10 * np.log10(brighter / base), 3.0, atol=1e-4)


def test_tile_without_its_xml_uses_jaxas_factor_and_says_so(tile, tmp_path):
    for name in os.listdir(tile):  # links (nothing copied): the same tile without the XML
        if name.endswith(".tif"):
            (tmp_path / name).symlink_to(tile / name)
    with open_scene(tmp_path) as scene:
        assert scene.calibration_factor_db == -83.0 and "default" in scene.metadata["calibration_factor_source"]


def test_translate_a_crop_of_the_strip(tile, tmp_path, caplog):
    out = tmp_path / "nihoa.tif"
    with caplog.at_level(logging.WARNING):
        assert main(["translate", str(tile), str(out), "--bounds", *map(str, STRIP_BOUNDS), "--bounds-crs", "EPSG:4326",
                     "--progress", "none"]) == 0
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32604 and ds.res == (10.0, 10.0) and ds.count == 3
        assert ds.tags()["SAR2OPT_INPUT_BANDS"] == "HV" and (ds.dataset_mask() > 0).mean() > 0.9
        assert float(ds.read(masked=True).std()) > 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "L-band" in messages and "upsampled" in messages  # what the bundled C-band 10 m model is fed


def test_composite_of_the_tile_is_hh_hv_on_its_grid(tile, tmp_path):
    out = tmp_path / "composite.tif"
    assert main(["composite", str(tile), str(out), "--progress", "none", "--no-quicklook"]) == 0
    with rasterio.open(out) as ds, rasterio.open(tile / "N23W161_20_sl_HH_F02DAR.tif") as src:
        assert ds.crs == src.crs and ds.transform == src.transform
        rgb = ds.read(window=STRIP, masked=True)
        valid = (ds.dataset_mask() > 0).mean()
    assert valid == pytest.approx(0.0444, abs=0.001)  # the swath strip only
    assert rgb.count() == rgb.size and float(rgb.mean()) > 10  # not black
