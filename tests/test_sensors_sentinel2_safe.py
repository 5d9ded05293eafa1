"""Sentinel-2 SAFE reader on small **synthetic** SAFEs written here (no real S2 SAFE in ../shared/data).

The metadata files carry only the elements the reader uses, with the real element names
(``PROCESSING_BASELINE``, ``BOA_QUANTIFICATION_VALUE``, ``BOA_ADD_OFFSET band_id=..``,
``RADIO_ADD_OFFSET``, ``IMAGE_FILE``) and the real folder layout.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from sar2opt_geo.errors import BandError, InputError
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.sentinel2_safe import Sentinel2SafeScene

TILE = "T31UCS"
SIZE = 40
TRANSFORM = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5500000.0)


def _dn(code: str) -> np.ndarray:
    rng = np.random.default_rng(int(code[1:3], 16))
    dn = rng.integers(1000, 6000, size=(SIZE, SIZE)).astype(np.uint16)
    dn[0, :5] = 0  # nodata
    return dn


def _write_band(path: Path, data: np.ndarray, driver: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = {"QUALITY": "100", "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
    with rasterio.open(path, "w", driver=driver, width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint16", crs="EPSG:32631", transform=TRANSFORM, **opts) as dst:
        dst.write(data, 1)


def write_synthetic_s2_safe(root: Path, level: str = "L2A", baseline: str = "05.09", ext: str = ".jp2") -> Path:
    """A tiny synthetic S2 SAFE: metadata XML + 10 m B02/B03/B04/B08 (+ a 20 m B04 decoy for L2A)."""
    name = f"S2B_MSI{level}_20230105T105339_N{baseline.replace('.', '')}_R051_{TILE}_20230105T120000.SAFE"
    safe = root / name
    granule = f"GRANULE/{level}_{TILE}_A030000_20230105T105339/IMG_DATA"
    driver = "JP2OpenJPEG" if ext == ".jp2" else "GTiff"
    entries = []
    for code in ("B02", "B03", "B04", "B08"):
        if level == "L2A":
            rel = f"{granule}/R10m/{TILE}_20230105T105339_{code}_10m"
        else:
            rel = f"{granule}/{TILE}_20230105T105339_{code}"
        _write_band(safe / (rel + ext), _dn(code), driver)
        entries.append(rel)
    if level == "L2A":  # a 20 m band of the same code must not be picked
        _write_band(safe / f"{granule}/R20m/{TILE}_20230105T105339_B04_20m{ext}", np.full((20, 20), 9, np.uint16), driver)
    new = float(baseline) >= 4.0
    if level == "L2A":
        quant = "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)) if new else ""
        offsets = f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>" if new else ""
    else:
        quant = "<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE>"
        offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13)) if new else ""
        offsets = f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>" if new else ""
    image_files = "".join(f"<IMAGE_FILE>{e}</IMAGE_FILE>" for e in entries)
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- SYNTHETIC test product (sar2opt_geo tests), not an ESA product -->
<n1:Level-{level[1:]}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level[1:]}.xsd">
  <n1:General_Info><Product_Info>
    <PRODUCT_START_TIME>2023-01-05T10:53:39.024Z</PRODUCT_START_TIME>
    <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
    <Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake>
    <Product_Organisation><Granule_List><Granule>{image_files}</Granule></Granule_List></Product_Organisation>
  </Product_Info>
  <Product_Image_Characteristics>{quant}{offsets}</Product_Image_Characteristics></n1:General_Info>
</n1:Level-{level[1:]}_User_Product>
"""
    (safe / f"MTD_MSI{level}.xml").write_text(xml)
    return safe


def test_l2a_baseline_05_applies_the_offset(tmp_path: Path):
    safe = write_synthetic_s2_safe(tmp_path)
    scene = open_scene(safe)
    assert isinstance(scene, Sentinel2SafeScene)
    assert scene.sensor == "Sentinel-2" and not scene.is_sar
    assert list(scene.bands) == ["red", "green", "blue", "nir"]
    assert scene.crs.to_epsg() == 32631 and scene.transform == TRANSFORM
    assert scene.metadata["processing_baseline"] == "05.09" and scene.metadata["level"] == "L2A"
    assert "R10m" in scene.bands["red"].source
    dn = _dn("B04").astype(np.float64)
    expected = np.where(dn == 0, np.nan, (dn - 1000) / 10000)
    np.testing.assert_allclose(scene.read("red"), expected, rtol=1e-6)
    win = Window(col_off=5, row_off=7, width=11, height=3)
    np.testing.assert_allclose(scene.read("red", win), expected[7:10, 5:16], rtol=1e-6)


def test_l1c_old_baseline_has_no_offset(tmp_path: Path):
    safe = write_synthetic_s2_safe(tmp_path, level="L1C", baseline="03.01", ext=".tif")
    scene = open_scene(safe / "MTD_MSIL1C.xml")
    dn = _dn("B02").astype(np.float64)
    np.testing.assert_allclose(scene.read("blue"), np.where(dn == 0, np.nan, dn / 10000), rtol=1e-6)
    assert "+0" in scene.calibration or "offset 0" in scene.calibration


def test_l1c_new_baseline_radio_offset(tmp_path: Path):
    safe = write_synthetic_s2_safe(tmp_path, level="L1C", baseline="04.00", ext=".tif")
    scene = open_scene(safe, bands=("nir",))
    dn = _dn("B08").astype(np.float64)
    np.testing.assert_allclose(scene.read("nir"), np.where(dn == 0, np.nan, (dn - 1000) / 10000), rtol=1e-6)
    with pytest.raises(BandError, match="nir"):
        scene.read("red")


def test_zip_form(tmp_path: Path):
    safe = write_synthetic_s2_safe(tmp_path / "src")
    zpath = tmp_path / (safe.name[:-5] + ".zip")
    with zipfile.ZipFile(zpath, "w") as z:
        for f in safe.rglob("*"):
            if f.is_file():
                z.write(f, f"{safe.name}/{f.relative_to(safe)}")
    scene = open_scene(zpath)
    assert scene.metadata["container"] == "zip"
    np.testing.assert_array_equal(scene.read("green"), open_scene(safe).read("green"))


def test_safe_without_bands_is_an_input_error(tmp_path: Path):
    safe = tmp_path / "S2A_MSIL2A_x.SAFE"
    safe.mkdir()
    (safe / "MTD_MSIL2A.xml").write_text("<x><PROCESSING_BASELINE>05.00</PROCESSING_BASELINE></x>")
    with pytest.raises(InputError, match="10 m band"):
        open_scene(safe)
