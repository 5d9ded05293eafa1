"""Plain rasters: Sentinel-1 GeoTIFFs in dB / linear / 8-bit scaled, optical GeoTIFFs, any GDAL raster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from sar2opt_geo.errors import (
    BandError,
    GeoreferencingError,
    InputError,
    UnsupportedFormatError,
)
from sar2opt_geo.radiometry import Quantity
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.geotiff import GeoTiffScene


def _raw(path: Path, band: int = 1, window=None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band, window=window)


def test_real_s1_db_tif(s1_db_tif: Path):
    scene = open_scene(s1_db_tif)
    assert isinstance(scene, GeoTiffScene)
    assert scene.sensor == "Sentinel-1" and scene.frequency_band == "C" and scene.is_sar
    assert list(scene.bands) == ["VV"]
    assert scene.bands["VV"].quantity == Quantity.SIGMA0
    assert scene.crs.to_epsg() == 32631 and scene.pixel_spacing_m() == 20.0
    assert (scene.width, scene.height) == (268, 217)
    db = _raw(s1_db_tif).astype(np.float64)
    np.testing.assert_allclose(scene.read("VV"), 10 ** (db / 10), rtol=1e-5)
    assert scene.metadata["nodata"] == -99.0


def test_db_nodata_value_becomes_nan(make_geotiff):
    db = np.array([[-99.0, -10.0], [0.0, -99.0]], np.float32)
    scene = open_scene(make_geotiff(db, name="S1A_IW_VV_db.tif", nodata=-99.0))
    np.testing.assert_allclose(scene.read("VV"), [[np.nan, 0.1], [1.0, np.nan]], rtol=1e-6)


def test_units_override_reads_as_linear(s1_db_tif: Path):
    scene = open_scene(s1_db_tif, units="linear")
    raw = _raw(s1_db_tif)
    got = scene.read("VV", Window(col_off=100, row_off=100, width=20, height=10))
    np.testing.assert_array_equal(got, raw[100:110, 100:120])
    assert "units argument" in scene.metadata["units_detected"]


def test_db_detected_from_negative_values_and_linear_otherwise(make_geotiff):
    rng = np.random.default_rng(0)
    db = rng.uniform(-25, -5, size=(32, 32)).astype(np.float32)
    p_db = make_geotiff(db, name="scene_a.tif", descriptions=("VH",))
    p_lin = make_geotiff(10 ** (db / 10), name="scene_b.tif", descriptions=("VH",))
    a, b = open_scene(p_db), open_scene(p_lin)
    assert "negative" in a.metadata["units_detected"] and "no negative" in b.metadata["units_detected"]
    np.testing.assert_allclose(a.read("VH"), b.read("VH"), rtol=1e-5)
    assert a.sensor == "SAR" and a.frequency_band == "unknown"  # no sensor hint in the name


def test_amplitude_units_square(make_geotiff):
    amp = np.arange(1, 17, dtype=np.uint16).reshape(4, 4)
    scene = open_scene(make_geotiff(amp, name="S1A_x_VV_amp.tif"), units="amplitude")
    np.testing.assert_array_equal(scene.read("VV"), amp.astype(np.float32) ** 2)


def test_la_pairs_sar_is_scaled_linear_vh(la_pairs: Path):
    path = la_pairs / "sar" / "003.tif"
    scene = open_scene(path)
    assert list(scene.bands) == ["VH"] and scene.sensor == "Sentinel-1"
    assert "99th percentile" in scene.bands["VH"].description
    assert "relative_radiometry" in scene.metadata
    np.testing.assert_allclose(scene.read("VH"), _raw(path) / 255.0, rtol=1e-6)
    assert scene.crs.to_epsg() == 3395


def test_la_pairs_optical_rgb(la_pairs: Path):
    path = la_pairs / "opt" / "003.tif"
    scene = open_scene(path)
    assert list(scene.bands) == ["red", "green", "blue"] and not scene.is_sar
    np.testing.assert_array_equal(scene.read("blue"), _raw(path, 3).astype(np.float32))


def test_landsat8_band_names_and_selection(landsat8_tif: Path):
    scene = open_scene(landsat8_tif)
    assert scene.sensor == "Landsat-8" and list(scene.bands) == ["blue", "green", "red"]
    win = Window(col_off=500, row_off=400, width=64, height=32)
    raw = _raw(landsat8_tif, 3, win).astype(np.float32)
    by_name = open_scene(landsat8_tif, bands=("red",))
    by_index = open_scene(landsat8_tif, bands=(3,))
    assert list(by_name.bands) == list(by_index.bands) == ["red"]
    expected = np.where(raw == 0, np.nan, raw)  # Landsat fill DN 0 -> NaN
    np.testing.assert_array_equal(by_name.read("red", win), expected)
    np.testing.assert_array_equal(by_index.read("RED", win), expected)
    with pytest.raises(BandError, match="it has blue, green, red"):
        open_scene(landsat8_tif, bands=("nir",))


def test_landsat7_rgb_nodata(data_dir: Path):
    path = data_dir / "optical" / "landsat7_RGB.byte.tif"
    scene = open_scene(path)
    assert list(scene.bands) == ["red", "green", "blue"]
    raw = _raw(path, 1)
    red = scene.read("red")
    np.testing.assert_array_equal(np.isnan(red), raw == 0)
    assert scene.bands["red"].quantity == Quantity.RADIANCE_DN


def test_generic_bands_and_explicit_selection(make_geotiff):
    arr = np.stack([np.full((8, 8), 1.5, np.float32), np.full((8, 8), 2.5, np.float32)])
    path = make_geotiff(arr, name="plain.tif")
    scene = open_scene(path, bands=("b2",))
    assert list(scene.bands) == ["b2"] and scene.sensor == "optical"
    assert (scene.read("b2") == 2.5).all()
    assert list(open_scene(path, bands=[2, 1]).bands) == ["b2", "b1"]
    with pytest.raises(BandError, match="b1, b2"):
        open_scene(path, bands=("b3",))


def test_sentinel2_band_file_is_reflectance(make_geotiff):
    dn = np.array([[0, 1000], [2500, 10000]], dtype=np.uint16)
    scene = open_scene(make_geotiff(dn, name="S2A_MSIL2A_20170617T113321_36_85_B04.tif"))
    assert scene.sensor == "Sentinel-2" and list(scene.bands) == ["red"]
    np.testing.assert_allclose(scene.read("red"), [[np.nan, 0.1], [0.25, 1.0]])
    newer = open_scene(make_geotiff(dn, name="S2B_MSIL1C_20230101T000000_N0509_R000_T31UCS_B03.tif"))
    np.testing.assert_allclose(newer.read("green"), [[np.nan, 0.0], [0.15, 0.9]])


def test_no_georeferencing_is_refused(tmp_path: Path):
    path = tmp_path / "nogeo.tif"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as dst:
            dst.write(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(GeoreferencingError, match="nogeo.tif"):
        open_scene(path)


def test_transform_without_crs_is_refused(make_geotiff, tmp_path: Path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(GeoreferencingError, match="no CRS"):
        open_scene(path)


def test_missing_and_unsupported_inputs(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        open_scene(tmp_path / "absent.tif")
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    with pytest.raises(UnsupportedFormatError, match="notes.txt"):
        open_scene(text)
    with pytest.raises(UnsupportedFormatError, match="sensor="):
        open_scene(text, sensor="hubble")


def test_sensor_override_makes_a_plain_raster_sar(make_geotiff):
    db = np.full((4, 4), -12.0, np.float32)
    scene = open_scene(make_geotiff(db, name="x.tif"), sensor="s1", units="db")
    assert scene.sensor == "Sentinel-1" and scene.frequency_band == "C"
    np.testing.assert_allclose(scene.read("b1"), 10 ** -1.2, rtol=1e-6)


def test_scene_pickles_and_reads_after_unpickling(s1_db_tif: Path):
    import pickle

    scene = open_scene(s1_db_tif)
    win = Window(col_off=10, row_off=10, width=8, height=8)
    first = scene.read("VV", win)  # opens the dataset
    clone = pickle.loads(pickle.dumps(scene))
    np.testing.assert_array_equal(clone.read("VV", win), first)


def test_snap_style_descriptions_give_polarisation_and_db(make_geotiff):
    db = np.stack([np.full((4, 4), -10.0, np.float32), np.full((4, 4), -20.0, np.float32)])
    scene = open_scene(make_geotiff(db, name="subset_0_of_S1A_IW_GRDH_Orb_Cal_TC.tif",
                                    descriptions=("Sigma0_VV_db", "Sigma0_VH_db")))
    assert list(scene.bands) == ["VV", "VH"] and scene.sensor == "Sentinel-1"
    np.testing.assert_allclose(scene.read("VH"), 0.01, rtol=1e-6)
    assert "name/description" in scene.metadata["units_detected"]


def test_gcp_georeferenced_raster(tmp_path: Path):
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    gcps = [GroundControlPoint(row=r, col=c, x=10 + c * 1e-3, y=45 - r * 1e-3) for r in (0, 99) for c in (0, 99)]
    path = tmp_path / "gcps_VV_linear.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
                       gcps=gcps, crs=CRS.from_epsg(4326)) as dst:
        dst.write(np.full((1, 100, 100), 0.05, np.float32))
    scene = open_scene(path)
    assert scene.transform is None and len(scene.gcps[0]) == 4 and scene.gcps[1].to_epsg() == 4326
    assert scene.georeferenced and 79 < scene.pixel_spacing_m() < 111  # 1e-3 deg: 79 m east-west, 111 m north-south at 45N
    assert scene.read("VV", Window(col_off=0, row_off=0, width=3, height=2)).shape == (2, 3)


# -- truncated and damaged files (issue 12): one line naming the file, at open time where possible ----


def _cog(path: Path, size: int = 256) -> Path:
    """A deflate-compressed, tiled float32 dB GeoTIFF with GDAL's COG layout (header first, pixels after)."""
    from rasterio.shutil import copy as rio_copy

    rng = np.random.default_rng(0)
    src = path.with_name("plain_" + path.name)
    with rasterio.open(src, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32631",
                       transform=Affine(10, 0, 500000, 0, -10, 4600000)) as dst:
        dst.write(rng.uniform(-25, -5, (size, size)).astype(np.float32), 1)
        dst.set_band_description(1, "VH")
    rio_copy(src, path, driver="COG", blocksize=64, compress="deflate", overviews="none")
    return path


def test_truncated_geotiff_is_one_input_error_at_open_bug(tmp_path: Path):
    """A truncated COG opened fine and failed mid-translation with a RasterioIOError traceback."""
    path = _cog(tmp_path / "s1_vh_db.tif")
    data = path.read_bytes()
    cut = tmp_path / "cut_s1_vh_db.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut_s1_vh_db\.tif: GDAL cannot read band 1 .* truncated or damaged") as info:
        open_scene(cut)
    assert "\n" not in str(info.value)
    # cut inside the header: GDAL cannot open it at all; still "truncated", not "unknown format"
    head = tmp_path / "head_s1_vh_db.tif"
    head.write_bytes(data[:200])
    with pytest.raises(InputError, match=r"head_s1_vh_db\.tif: a TIFF file GDAL cannot open .* truncated or damaged"):
        open_scene(head)


def test_damaged_block_mid_file_is_an_input_error_on_read(tmp_path: Path):
    path = _cog(tmp_path / "s1_vh_db.tif")
    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[offset: offset + 64] = b"\xff" * 64  # garbage deflate stream in one inner tile
    path.write_bytes(bytes(data))
    scene = open_scene(path)  # the last block is intact: opening works
    assert scene.read("VH", Window(col_off=128, row_off=128, width=64, height=64)).shape == (64, 64)
    with pytest.raises(InputError, match=r"s1_vh_db\.tif: GDAL cannot read band 1, window cols 64\.\.128, rows 64\.\.128"):
        scene.read("VH", Window(col_off=64, row_off=64, width=64, height=64))


def test_translate_of_a_truncated_geotiff_is_one_line_and_writes_nothing_bug(tmp_path: Path, capsys):
    from sar2opt_geo.cli.main import main

    path = _cog(tmp_path / "s1_vh_db.tif")
    cut = tmp_path / "cut_s1_vh_db.tif"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out" / "rgb.tif"
    assert main(["translate", str(cut), str(out), "--progress", "none", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sar2opt: error: ") and "cut_s1_vh_db.tif" in err[-1] and "truncated" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists() and not list(out.parent.glob(".*")) if out.parent.exists() else True
