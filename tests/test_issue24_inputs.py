"""Issue 24: inputs that came out black or were silently misread.

Real data: BigEarthNet's Sentinel-1 VV and VH dB files (one file per polarisation, no band
names, no units). The VRT and the two-band GeoTIFF are written by the tests from them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sar2opt_geo.cli.main import main
from sar2opt_geo.sensors import open_scene


@pytest.fixture(scope="module")
def ben_vv_vh(data_dir: Path) -> tuple[Path, Path]:
    folder = data_dir / "pairs" / "bigearthnet" / "36_85"
    vv, vh = sorted(folder.glob("S1*_VV.tif")), sorted(folder.glob("S1*_VH.tif"))
    assert vv and vh, f"{folder}: BigEarthNet S1 VV/VH files missing"
    return vv[0], vh[0]


def _vrt_stack(path: Path, sources: list[Path]) -> Path:
    """What ``gdalbuildvrt -separate stack.vrt VV.tif VH.tif`` writes (one band per file)."""
    with rasterio.open(sources[0]) as ds:
        w, h, crs, t = ds.width, ds.height, ds.crs.to_wkt(), ds.transform
    gt = ", ".join(repr(v) for v in t.to_gdal())
    bands = "".join(
        f'<VRTRasterBand dataType="Float32" band="{i}"><SimpleSource><SourceFilename relativeToVRT="0">{src}'
        f'</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
        for i, src in enumerate(sources, 1))
    path.write_text(f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>{crs.replace("<", "&lt;")}</SRS>'
                    f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>")
    return path


def _two_band_db(path: Path, sources: tuple[Path, Path]) -> Path:
    """Two unnamed float32 dB bands, as TerraMind/TerraMesh examples and Earth Engine exports are."""
    arrays = []
    for src in sources:
        with rasterio.open(src) as ds:
            arrays.append(ds.read(1))
            profile = ds.profile
    profile.update(count=2, driver="GTiff")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(arrays))
    return path


def test_vrt_stack_of_one_file_per_polarisation_is_named_and_composited(tmp_path, ben_vv_vh):
    """Was: bands b1/b2 read as 'optical digital numbers'; the composite (--co b1 --cross b2) took
    10 log10 of negative dB values and wrote an all-black image with exit status 0."""
    vrt = _vrt_stack(tmp_path / "stack.vrt", list(ben_vv_vh))
    with open_scene(vrt) as scene:
        assert scene.is_sar and list(scene.bands) == ["VV", "VH"]
    out = tmp_path / "composite.tif"
    assert main(["composite", str(vrt), str(out), "--progress", "none", "--no-quicklook"]) == 0
    with rasterio.open(out) as ds:
        rgb = ds.read(masked=True)
    assert rgb.count() == rgb.size and all(float(rgb[i].mean()) > 40 for i in range(3)), rgb.mean(axis=(1, 2))


def test_two_unnamed_db_bands_are_read_as_sar_with_a_warning(tmp_path, ben_vv_vh, caplog):
    """Was: 'optical', then "band b2 holds only nodata". Now SAR in dB, said in one warning that names the flags."""
    path = _two_band_db(tmp_path / "terramind_like.tif", ben_vv_vh)
    with caplog.at_level(logging.WARNING), open_scene(path) as scene:
        assert scene.is_sar and scene.metadata["units_detected"].count("negative sample values") == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "--sensor" in warnings[0] and "--input-units" in warnings[0]
    out = tmp_path / "composite.tif"
    assert main(["composite", str(path), str(out), "--co", "b1", "--cross", "b2", "--progress", "none",
                 "--no-quicklook"]) == 0
    with rasterio.open(out) as ds:
        assert float(ds.read(masked=True).mean()) > 40
    # the user's word wins: the same file declared optical is not guessed
    with caplog.at_level(logging.WARNING), open_scene(path, sensor="optical") as scene:
        assert not scene.is_sar


def test_sensor_and_units_flags_reach_the_reader(tmp_path, ben_vv_vh):
    path = _two_band_db(tmp_path / "two.tif", ben_vv_vh)
    out = tmp_path / "rgb.tif"
    assert main(["translate", str(path), str(out), "--sensor", "Sentinel-1", "--input-units", "db", "--bands", "2",
                 "--progress", "none"]) == 0
    with rasterio.open(out) as ds:
        assert ds.count == 3 and float(ds.read(masked=True).std()) > 0
        assert ds.tags()["SAR2OPT_INPUT_DECLARED"] == "sensor=Sentinel-1, units=db"


def test_sensor_and_units_are_refused_for_products(tmp_path):
    from sar2opt_geo.errors import ConfigError
    from sar2opt_geo.samples.synthetic import write_synthetic_palsar2_l21

    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32)
    with pytest.raises(ConfigError, match="PALSAR-2 product says what it holds"):
        open_scene(folder, units="db")


def test_input_units_choices_are_the_readers():
    from sar2opt_geo.options import INPUT_UNITS
    from sar2opt_geo.sensors.geotiff import UNITS

    assert INPUT_UNITS == UNITS


def _scene_at(tmp_path: Path, spacing: float) -> Path:
    """A **synthetic** VH dB scene (sample generator) georeferenced at ``spacing`` metres."""
    from rasterio.transform import from_origin

    from sar2opt_geo.samples.synthetic import write_sample_scene

    src = write_sample_scene(tmp_path / "src.tif", size=64)
    with rasterio.open(src) as ds:
        data, profile, tags, desc = ds.read(), ds.profile, ds.tags(), ds.descriptions
    profile.update(transform=from_origin(600_000.0, 4_800_000.0, spacing, spacing))
    path = tmp_path / f"scene_{spacing:g}m.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        dst.set_band_description(1, desc[0])
    return path


def test_large_resampling_to_the_model_spacing_is_a_warning_with_the_way_out(tmp_path, caplog):
    """Was: a 25 m mosaic silently became a 6x larger 10 m grid (only an INFO line)."""
    from sar2opt_geo import translate

    scene = _scene_at(tmp_path, 25.0)
    with caplog.at_level(logging.WARNING):
        translate(scene, tmp_path / "at10.tif")
    warned = [r.getMessage() for r in caplog.records if "--pixel-spacing" in r.getMessage()]
    assert len(warned) == 1 and "25 m pixels upsampled x2.5" in warned[0], warned
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = translate(scene, tmp_path / "at25.tif", pixel_spacing_m=25.0)
    assert not [r for r in caplog.records if "--pixel-spacing" in r.getMessage()]
    with rasterio.open(result.path) as ds:
        assert ds.res == (25.0, 25.0) and (ds.width, ds.height) == (64, 64)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # 12 m: close enough to 10 m, no warning
        translate(_scene_at(tmp_path, 12.0), tmp_path / "at12.tif")
    assert not [r for r in caplog.records if "--pixel-spacing" in r.getMessage()]
