"""ALOS-2 PALSAR-2 reader. The real L1.5 metadata (fixture ``alos2_metadata``) tests summary/LED
parsing; no real L2.1 GeoTIFF exists here, so the image tests use the **synthetic** L2.1 product
written by :func:`sar2opt_geo.samples.synthetic.write_synthetic_palsar2_l21` (real naming and layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.windows import Window

from sar2opt_geo.errors import BandError, InputError, UnsupportedFormatError
from sar2opt_geo.samples.synthetic import write_ceos_leader, write_synthetic_palsar2_l21
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.palsar2 import (
    DEFAULT_CALIBRATION_FACTOR_DB,
    Palsar2Scene,
    read_led_calibration_factor,
    read_summary,
)


def _img(folder: Path, pol: str) -> Path:
    return next(folder.glob(f"IMG-{pol}-ALOS2*.tif"))


def _raw(folder: Path, pol: str, window=None) -> np.ndarray:
    with rasterio.open(_img(folder, pol)) as ds:
        return ds.read(1, window=window)


def test_real_summary_and_led(alos2_metadata: Path):
    summary = read_summary(alos2_metadata / "summary.txt")
    assert summary["Pds_ProductID"] == "FBDR1.5GUA"
    assert summary["Pds_UTM_ZoneNo"] == "20"
    assert summary["Lbi_Satellite"] == "ALOS2"
    assert float(summary["Img_ImageSceneCenterLatitude"]) < 0
    led = next(alos2_metadata.glob("LED-*"))
    assert read_led_calibration_factor(led) == -83.0


def test_real_l15_metadata_folder_has_no_image(alos2_metadata: Path):
    with pytest.raises(InputError, match="IMG-<pol>"):
        open_scene(alos2_metadata)


def test_synthetic_l21_dn_to_sigma0_exact(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=96, seed=3)
    scene = open_scene(folder)
    assert isinstance(scene, Palsar2Scene)
    assert scene.sensor == "ALOS-2 PALSAR-2" and scene.frequency_band == "L"
    assert list(scene.bands) == ["HH", "HV"]
    assert scene.crs.to_epsg() == 32654 and scene.transform.a == 6.25
    assert scene.product_id == "ALOS2123452750-200105-FBDR2.1GUD"
    assert scene.metadata["calibration_factor_db"] == -83.0 and "LED" in scene.metadata["calibration_factor_source"]
    win = Window(col_off=10, row_off=20, width=60, height=50)
    dn = _raw(folder, "HV", win).astype(np.float64)
    sigma0 = scene.read("HV", win)
    assert sigma0.shape == (50, 60) and sigma0.dtype == np.float32
    valid = dn > 0
    # sigma0[dB] = 10 log10(DN^2) - 83
    np.testing.assert_allclose(10 * np.log10(sigma0[valid]), 10 * np.log10(dn[valid] ** 2) - 83.0, atol=1e-4)
    assert np.isnan(sigma0[~valid]).all()
    # a hand-picked value: DN 1000 -> 60 dB - 83 dB = -23 dB
    assert 10 * np.log10(1000.0**2 * 10 ** (-83.0 / 10)) == pytest.approx(-23.0)


def test_dn_zero_is_nodata(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=64)
    dn = _raw(folder, "HH")
    sigma0 = open_scene(folder).read("HH")
    assert (dn == 0).any() and (dn > 0).any()
    np.testing.assert_array_equal(np.isnan(sigma0), dn == 0)


def test_calibration_factor_precedence(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32, calibration_factor_db=-80.5)
    base = open_scene(folder).read("HH")  # LED says -80.5
    dn = _raw(folder, "HH").astype(np.float64)
    np.testing.assert_allclose(base, np.where(dn > 0, dn**2 * 10 ** (-8.05), np.nan), rtol=1e-6)
    override = open_scene(folder, calibration_factor_db=-79.0).read("HH")
    valid = dn > 0
    np.testing.assert_allclose(override[valid] / base[valid], 10 ** ((-79.0 + 80.5) / 10), rtol=1e-6)
    for led in folder.glob("LED-*"):
        led.unlink()
    scene = open_scene(folder)
    assert scene.calibration_factor_db == DEFAULT_CALIBRATION_FACTOR_DB == -83.0
    assert "default" in scene.calibration


def test_led_writer_round_trip(tmp_path: Path):
    assert read_led_calibration_factor(write_ceos_leader(tmp_path / "LED-x", -79.0)) == -79.0


def test_crs_falls_back_to_summary_utm_zone(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32, crs_in_tif=False)
    with rasterio.open(_img(folder, "HH")) as ds:
        assert ds.crs is None and not ds.transform.is_identity
    scene = open_scene(folder)
    assert scene.crs.to_epsg() == 32654
    assert "summary.txt" in scene.metadata["georeferencing"]


def test_crs_fallback_with_the_real_summary_south_hemisphere(tmp_path: Path, alos2_metadata: Path):
    """The real summary.txt says UTM zone 20 and a scene centre at -11.05 deg: EPSG:32720."""
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32, crs_in_tif=False, write_led=False)
    shutil.copy(alos2_metadata / "summary.txt", folder / "summary.txt")
    assert open_scene(folder).crs.to_epsg() == 32720


def test_transform_falls_back_to_frame_corner(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32, crs_in_tif=False, transform_in_tif=False, south=True)
    scene = open_scene(folder)
    assert scene.crs.to_epsg() == 32754
    summary = read_summary(folder / "summary.txt")
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32754", always_xy=True).transform(
        float(summary["Img_FrameSceneLeftTopLongitude"]), float(summary["Img_FrameSceneLeftTopLatitude"])
    )
    assert (scene.transform.c, scene.transform.f) == pytest.approx((x, y))
    assert scene.transform.a == 6.25 and scene.transform.e == -6.25
    assert "approximate" in scene.metadata["georeferencing"]


def test_one_image_file_opens_that_polarisation(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32)
    scene = open_scene(_img(folder, "HV"))
    assert list(scene.bands) == ["HV"]
    with pytest.raises(BandError, match="HV"):
        scene.read("HH")


def test_requested_band_missing_names_what_exists(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32)
    with pytest.raises(BandError, match="it has HH, HV"):
        open_scene(folder, bands=("VV",))


def test_ceos_image_files_are_refused(tmp_path: Path, alos2_metadata: Path):
    folder = tmp_path / "l15"
    folder.mkdir()
    shutil.copy(alos2_metadata / "summary.txt", folder / "summary.txt")
    (folder / "IMG-HH-ALOS2015976960-140909-FBDR1.5GUA").write_bytes(b"\0" * 720)
    with pytest.raises(UnsupportedFormatError, match="Level 2.1 GeoTIFF"):
        open_scene(folder)


# -- regressions of issue 12 --------------------------------------------------------------


def test_synthetic_l21_layout_matches_real_summary(tmp_path: Path, alos2_metadata: Path):
    """Real summary.txt lists the product files (IMG first) and has no map-projection key; so does ours."""
    real = read_summary(alos2_metadata / "summary.txt")
    assert "Pds_MapProjection" not in real
    assert real["Pdi_L15ProductFileName03"].startswith("IMG-HH-ALOS2")
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=32)
    summary = read_summary(folder / "summary.txt")
    assert "Pds_MapProjection" not in summary
    listed = [summary[f"Pdi_L21ProductFileName{i:02d}"] for i in range(1, int(summary["Pdi_CntOfL21ProductFileName"]) + 1)]
    assert listed[0] == _img(folder, "HH").name and listed[0].endswith(".tif")
    assert [n for n in listed if n.startswith("LUT-")] == [
        "LUT-HH-ALOS2123452750-200105-FBDR2.1GUD.txt", "LUT-HV-ALOS2123452750-200105-FBDR2.1GUD.txt"]
    assert all((folder / n).is_file() for n in listed)
    assert "SYNTHETIC" in (folder / listed[-1]).read_text()


def test_product_id_letters():
    from sar2opt_geo.sensors.palsar2 import PRODUCT_ID

    real = PRODUCT_ID.match("FBDR1.5GUA")  # the real L1.5 product here
    assert (real["mode"], real["look"], real["level"], real["projection"], real["orbit"]) == ("FBD", "R", "1.5", "U", "A")
    assert PRODUCT_ID.match("UBSR2.1GPD")["projection"] == "P"


def test_projection_from_product_id_letter_not_pds_mapprojection_bug(tmp_path: Path):
    """The reader looked for a Pds_MapProjection key (absent from real summaries) and otherwise assumed UTM:
    a polar stereographic product without a CRS in its GeoTIFF got a UTM CRS from Pds_UTM_ZoneNo."""
    from sar2opt_geo.errors import GeoreferencingError

    ps = write_synthetic_palsar2_l21(tmp_path / "ps", size=32, map_projection="P", south=True)
    scene = open_scene(ps)
    assert scene.product_id.endswith("FBDR2.1GPD") and scene.metadata["map_projection"] == "PS"
    assert scene.crs.to_epsg() == 3031  # the GeoTIFF's own CRS
    bare = write_synthetic_palsar2_l21(tmp_path / "ps_bare", size=32, map_projection="P", south=True, crs_in_tif=False)
    with open(bare / "summary.txt", "a", encoding="ascii") as fh:
        fh.write('Pds_UTM_ZoneNo="54"\n')  # a UTM zone the product is not in
    with pytest.raises(GeoreferencingError, match=r"FBDR2\.1GPD is in polar stereographic .*gdal_edit\.py -a_srs"):
        open_scene(bare)
    utm = open_scene(write_synthetic_palsar2_l21(tmp_path / "utm", size=32, crs_in_tif=False))
    assert utm.metadata["map_projection"] == "UTM" and utm.crs.to_epsg() == 32654


def test_level_31_is_refused_bug(tmp_path: Path):
    """JAXA's sigma0 = 10 log10(DN^2) + CF is for Level 1.5/2.1; Level 3.1 DN were read as if it held."""
    folder = write_synthetic_palsar2_l21(tmp_path / "l31", size=32, level="3.1")
    with pytest.raises(UnsupportedFormatError, match=r"Level 3\.1 .* Level 1\.5/2\.1"):
        open_scene(folder)


def test_truncated_img_file_is_one_input_error_bug(tmp_path: Path):
    folder = write_synthetic_palsar2_l21(tmp_path / "prod", size=300)  # > one 256-row block
    img = _img(folder, "HV")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"{img.name}.*truncated or damaged") as info:
        open_scene(folder)
    assert "\n" not in str(info.value)
