"""Sentinel-1 GRD SAFE reader: real annotation/LUTs (fixture ``s1_safe``), small windows only.

The real measurement tiff is an all-zero placeholder (26102 x 16705 uint16). For numbers, the
tests build a SAFE in tmp that links the real annotation files and replaces the measurement by
a *sparse* stand-in of the same size in which only one 512 x 512 tile carries known DN.
"""

from __future__ import annotations

import pickle
import re
import tracemalloc
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sar2opt_geo.errors import InputError
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.sentinel1_luts import parse_calibration, parse_noise
from sar2opt_geo.sensors.sentinel1_safe import Sentinel1SafeScene

STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
W, H = 26102, 16705
PATCH = Window(col_off=8704, row_off=1024, width=512, height=512)  # spans the IW1/IW2 border (8889/8890)


def _cal_xml(safe: Path) -> Path:
    return safe / "annotation" / "calibration" / f"calibration-{STEM}.xml"


def _noise_xml(safe: Path) -> Path:
    return safe / "annotation" / "calibration" / f"noise-{STEM}.xml"


def _hand_lut(xml: Path, vector: str, value: str):
    """Independent parse: list of (line, pixels, values)."""
    out = []
    for v in ET.parse(xml).getroot().iter(vector):
        out.append((int(v.findtext("line")), np.array(v.findtext("pixel").split(), float), np.array(v.findtext(value).split(), float)))
    return out


def _patch_dn() -> np.ndarray:
    rng = np.random.default_rng(7)
    dn = rng.integers(20, 400, size=(PATCH.height, PATCH.width)).astype(np.uint16)
    dn[:8, :8] = 0  # nodata
    dn[8:16, :8] = 1  # far below the noise floor: clipped to 0 with noise removal
    return dn


@pytest.fixture(scope="module")
def standin_safe(s1_safe: Path, tmp_path_factory) -> Path:
    """A SAFE with the real annotation files and a sparse full-size measurement with one known tile."""
    root = tmp_path_factory.mktemp("s1") / s1_safe.name
    (root / "measurement").mkdir(parents=True)
    (root / "annotation").symlink_to(s1_safe / "annotation", target_is_directory=True)
    (root / "manifest.safe").symlink_to(s1_safe / "manifest.safe")
    profile = {"driver": "GTiff", "width": W, "height": H, "count": 1, "dtype": "uint16", "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "sparse_ok": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # like the real one: GCPs live in the XML
        with rasterio.open(root / "measurement" / f"{STEM}.tiff", "w", **profile) as dst:
            dst.write(_patch_dn(), 1, window=PATCH)
    return root


def test_real_safe_metadata_and_gcps(s1_safe: Path):
    scene = open_scene(s1_safe)
    assert isinstance(scene, Sentinel1SafeScene)
    assert scene.sensor == "Sentinel-1" and scene.frequency_band == "C"
    assert list(scene.bands) == ["VV"]  # the manifest lists VH, but its files are not in this copy
    assert (scene.width, scene.height) == (W, H)
    ann = (s1_safe / "annotation" / f"{STEM}.xml").read_text()
    n_points = len(re.findall(r"<geolocationGridPoint>", ann))
    gcps, gcp_crs = scene.gcps
    assert len(gcps) == n_points == 210
    assert gcp_crs.to_epsg() == 4326
    assert scene.crs is None and scene.transform is None and scene.georeferenced
    first = ET.parse(s1_safe / "annotation" / f"{STEM}.xml").getroot().find(".//geolocationGridPoint")
    assert (gcps[0].row, gcps[0].col) == (float(first.findtext("line")), float(first.findtext("pixel")))
    assert gcps[0].y == pytest.approx(float(first.findtext("latitude")))
    assert gcps[0].x == pytest.approx(float(first.findtext("longitude")))
    assert scene.metadata["ipf_version"] == "003.40"
    assert scene.metadata["thermal_noise_removed"] is True
    assert 9.0 < scene.pixel_spacing_m() < 11.0  # GRDH: 10 m


def test_placeholder_window_is_small_and_all_nodata(s1_safe: Path):
    scene = open_scene(s1_safe)
    scene.calibration_lut("VV"), scene.noise_luts("VV")  # parse LUTs outside the measurement
    tracemalloc.start()
    block = scene.read("VV", Window(col_off=13000, row_off=8000, width=64, height=64))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert block.shape == (64, 64) and block.dtype == np.float32
    assert np.isnan(block).all()  # the placeholder's DN are 0 = nodata
    assert peak < 8 * 2**20  # far below the 870 MB of the full raster
    scene.close()


def test_calibration_lut_at_nodes_and_between(s1_safe: Path):
    lut, constant = parse_calibration(_cal_xml(s1_safe).read_bytes())
    hand = _hand_lut(_cal_xml(s1_safe), "calibrationVector", "sigmaNought")
    assert constant == pytest.approx(1.393)
    assert len(lut.lines) == len(hand) == 27
    (l0, p0, v0), (l1, p1, v1) = hand[3], hand[4]
    np.testing.assert_array_equal(p0, p1)  # GRD: every vector has the same pixel positions
    m = 100
    # at LUT nodes: the stored values
    at_nodes = lut.evaluate(np.array([l0, l1]), np.array([p0[m], p0[m + 1]]))
    np.testing.assert_allclose(at_nodes, [[v0[m], v0[m + 1]], [v1[m], v1[m + 1]]], rtol=1e-12)
    # halfway between four nodes: their mean
    mid = lut.evaluate(np.array([(l0 + l1) / 2]), np.array([(p0[m] + p0[m + 1]) / 2]))
    assert mid[0, 0] == pytest.approx((v0[m] + v0[m + 1] + v1[m] + v1[m + 1]) / 4, rel=1e-12)
    # an arbitrary point: bilinear by hand
    r, c = l0 + 0.3 * (l1 - l0), p0[m] + 0.75 * (p0[m + 1] - p0[m])
    top = v0[m] + 0.75 * (v0[m + 1] - v0[m])
    bottom = v1[m] + 0.75 * (v1[m + 1] - v1[m])
    assert lut.evaluate(np.array([r]), np.array([c]))[0, 0] == pytest.approx(top + 0.3 * (bottom - top), rel=1e-12)
    # outside the LUT: nearest edge
    last_line, last_px, last_v = hand[-1]
    assert lut.evaluate(np.array([last_line + 50.0]), np.array([last_px[-1] + 10]))[0, 0] == pytest.approx(last_v[-1])


def test_noise_luts_parse_range_and_azimuth_blocks(s1_safe: Path):
    noise = parse_noise(_noise_xml(s1_safe).read_bytes())
    hand_range = _hand_lut(_noise_xml(s1_safe), "noiseRangeVector", "noiseRangeLut")
    assert len(noise.range.lines) == len(hand_range) == 27
    assert [b.swath for b in noise.azimuth] == ["IW1", "IW2", "IW3"]
    assert [(b.first_sample, b.last_sample) for b in noise.azimuth] == [(0, 8889), (8890, 17700), (17701, 26101)]
    assert all(b.lines.size == b.values.size > 1000 for b in noise.azimuth)
    # at a range node inside IW2, on an azimuth node: range value x azimuth value
    iw2 = noise.azimuth[1]
    line, pixels, values = hand_range[5]
    k = int(np.searchsorted(pixels, 10000))
    az_k = int(np.searchsorted(iw2.lines, line))
    assert iw2.lines[az_k] == line
    got = noise.evaluate(np.array([line]), np.array([pixels[k]]))[0, 0]
    assert got == pytest.approx(values[k] * iw2.values[az_k], rel=1e-12)
    # across the IW1/IW2 border (samples 8889 | 8890) each side takes its own block's azimuth factor
    iw1 = noise.azimuth[0]
    row = np.array([1234.0])
    border = noise.evaluate(row, np.array([8889.0, 8890.0]))[0]
    rng = noise.range.evaluate(row, np.array([8889.0, 8890.0]))[0]
    az = [np.interp(1234.0, iw1.lines, iw1.values), np.interp(1234.0, iw2.lines, iw2.values)]
    np.testing.assert_allclose(border, rng * az, rtol=1e-12)
    assert az[0] != pytest.approx(az[1])


def _expected(safe: Path, dn: np.ndarray, remove_noise: bool) -> np.ndarray:
    lut, _ = parse_calibration(_cal_xml(safe).read_bytes())
    rows = np.arange(PATCH.row_off, PATCH.row_off + PATCH.height)
    cols = np.arange(PATCH.col_off, PATCH.col_off + PATCH.width)
    a = lut.evaluate(rows, cols)
    power = dn.astype(float) ** 2
    if remove_noise:
        power = np.maximum(power - parse_noise(_noise_xml(safe).read_bytes()).evaluate(rows, cols), 0)
    out = power / a**2
    out[dn == 0] = np.nan
    return out


@pytest.mark.parametrize("remove_noise", [True, False])
def test_sigma0_from_standin_measurement(standin_safe: Path, remove_noise: bool):
    dn = _patch_dn()
    scene = open_scene(standin_safe, thermal_noise_removal=remove_noise)
    got = scene.read("vv", PATCH)  # band names are case-insensitive
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _expected(standin_safe, dn, remove_noise), rtol=1e-5, equal_nan=True)
    assert np.isnan(got[:8, :8]).all() and not np.isnan(got[8:, :]).any()
    if remove_noise:
        assert (got[8:16, :8] == 0).all()  # below the noise floor: clipped to 0, still valid
    else:
        assert (got[8:16, :8] > 0).all()
    # the window really uses line/pixel offsets: a sub-window equals the same part of the big one
    sub = scene.read("VV", Window(col_off=PATCH.col_off + 100, row_off=PATCH.row_off + 50, width=32, height=16))
    np.testing.assert_array_equal(sub, got[50:66, 100:132])


def test_zip_form_gives_the_same_numbers(standin_safe: Path, tmp_path: Path):
    zpath = tmp_path / (standin_safe.name[:-5] + ".zip")
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for rel in ["manifest.safe", f"annotation/{STEM}.xml", f"annotation/calibration/calibration-{STEM}.xml",
                    f"annotation/calibration/noise-{STEM}.xml", f"measurement/{STEM}.tiff"]:
            z.write(standin_safe / rel, f"{standin_safe.name}/{rel}")
    scene = open_scene(zpath)
    assert scene.metadata["container"] == "zip" and scene.product_id == standin_safe.name[:-5]
    assert list(scene.bands) == ["VV"] and len(scene.gcps[0]) == 210
    win = Window(col_off=PATCH.col_off + 16, row_off=PATCH.row_off + 16, width=64, height=64)
    np.testing.assert_array_equal(scene.read("VV", win), open_scene(standin_safe).read("VV", win))
    clone = pickle.loads(pickle.dumps(scene))  # e.g. shipped to a Dask worker: reopens the zip itself
    np.testing.assert_array_equal(clone.read("VV", win), scene.read("VV", win))
    scene.close()


def test_manifest_and_measurement_paths_open_the_product(standin_safe: Path):
    via_manifest = open_scene(standin_safe / "manifest.safe")
    assert via_manifest.product_id == standin_safe.name[:-5]
    via_tiff = open_scene(standin_safe / "measurement" / f"{STEM}.tiff")
    assert list(via_tiff.bands) == ["VV"] and via_tiff.sensor == "Sentinel-1"


def test_gdal_calibrated_subdataset_agrees_where_available(standin_safe: Path):
    """GDAL's SENTINEL1_CALIB:SIGMA0 (no noise removal) must give our numbers if GDAL offers it.

    GDAL 3.10 answers "Measurement bands not found" for GRD products; then there is nothing to compare.
    """
    name = f"SENTINEL1_CALIB:SIGMA0:{standin_safe / 'manifest.safe'}:IW_VV:INTENSITY"
    try:
        ds = rasterio.open(name)
    except rasterio.errors.RasterioIOError as exc:
        pytest.skip(f"GDAL {rasterio.__gdal_version__} offers no calibrated GRD subdataset: {exc}")
    with ds:
        gdal = ds.read(1, window=PATCH).astype(np.float64)
    ours = open_scene(standin_safe, thermal_noise_removal=False).read("VV", PATCH)
    valid = np.isfinite(ours)
    np.testing.assert_allclose(ours[valid], gdal[valid], rtol=1e-4)


def test_missing_measurement_is_an_input_error(s1_safe: Path, tmp_path: Path):
    root = tmp_path / s1_safe.name
    root.mkdir()
    (root / "manifest.safe").symlink_to(s1_safe / "manifest.safe")
    (root / "annotation").symlink_to(s1_safe / "annotation", target_is_directory=True)
    with pytest.raises(InputError, match="measurement"):
        open_scene(root)


def test_pre_290_noise_schema_is_range_only():
    """IPF < 2.90 annotations carry one ``noiseVectorList`` (synthetic XML in that schema)."""
    xml = """<noise><noiseVectorList count="2">
      <noiseVector><line>0</line><pixel count="3">0 100 200</pixel><noiseLut count="3">10 20 30</noiseLut></noiseVector>
      <noiseVector><line>50</line><pixel count="3">0 100 200</pixel><noiseLut count="3">30 40 50</noiseLut></noiseVector>
    </noiseVectorList></noise>"""
    noise = parse_noise(xml)
    assert noise.azimuth == ()
    got = noise.evaluate(np.array([0.0, 25.0, 50.0]), np.array([0.0, 50.0, 200.0]))
    np.testing.assert_allclose(got, [[10, 15, 30], [20, 25, 40], [30, 35, 50]])


def test_ipf_version_from_manifest(s1_safe: Path):
    from sar2opt_geo.sensors.sentinel1_safe import ipf_version

    assert ipf_version((s1_safe / "manifest.safe").read_bytes()) == "003.40"
    assert ipf_version(b"<xfdu/>") is None


def test_truncated_measurement_is_one_input_error_bug(s1_safe: Path, tmp_path: Path):
    """The SAFE opened (only XML is read) and a truncated measurement tiff failed mid-run with a traceback."""
    root = tmp_path / s1_safe.name
    (root / "measurement").mkdir(parents=True)
    (root / "annotation").symlink_to(s1_safe / "annotation", target_is_directory=True)
    (root / "manifest.safe").symlink_to(s1_safe / "manifest.safe")
    real = (s1_safe / "measurement" / f"{STEM}.tiff").read_bytes()
    (root / "measurement" / f"{STEM}.tiff").write_bytes(real[: len(real) // 2])
    with pytest.raises(InputError, match=rf"{STEM}\.tiff.*truncated or damaged") as info:
        open_scene(root)
    assert "\n" not in str(info.value)
