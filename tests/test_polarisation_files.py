"""One file per polarisation (issue 21): OPERA RTC-S1, ASF HyP3 RTC and Planetary Computer layouts.

The files are **synthetic**: the real BigEarthNet Sentinel-1 VV and VH dB patches (../shared/data)
rewritten by the test in each provider's naming and units (linear gamma0, amplitude, dB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import InputError
from sar2opt_geo.radiometry import Quantity
from sar2opt_geo.sensors import open_scene
from sar2opt_geo.sensors.polarisation_files import (
    find_polarisation_files,
    name_convention,
)

OPERA = "OPERA_L2_RTC-S1_T029-061473-IW1_20170617T064724Z_20231001T000000Z_S1A_30_v1.0_{pol}.tif"
HYP3 = "S1A_IW_20170617T064724_DVP_RTC30_G_g{scale}uned_FD6A_{pol}.tif"


@pytest.fixture(scope="module")
def db(data_dir: Path) -> dict[str, tuple[np.ndarray, dict]]:
    folder = data_dir / "pairs" / "bigearthnet" / "36_85"
    out = {}
    for pol in ("VV", "VH"):
        path = next(folder.glob(f"S1*_{pol}.tif"))
        with rasterio.open(path) as ds:
            out[pol] = (ds.read(1).astype(np.float64), ds.profile)
    return out


def _write(folder: Path, name: str, values: np.ndarray, profile: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with rasterio.open(path, "w", **{**profile, "dtype": "float32", "count": 1}) as dst:
        dst.write(values.astype(np.float32), 1)
    return path


def test_names_say_the_convention_and_units():
    assert name_convention(OPERA.format(pol="VV")) == ("OPERA RTC-S1", "linear", Quantity.GAMMA0)
    assert name_convention(HYP3.format(scale="p", pol="VH"))[1:] == ("linear", Quantity.GAMMA0)
    assert name_convention(HYP3.format(scale="a", pol="VH"))[1] == "amplitude"
    assert name_convention(HYP3.format(scale="d", pol="VH"))[1] == "db"
    assert name_convention("vh.tif") == ("Planetary Computer sentinel-1-rtc", "linear", Quantity.GAMMA0)
    assert name_convention("scene_VH.tif")[1:] == (None, None)


@pytest.mark.parametrize(("layout", "convert"), [
    ("opera", lambda d: 10 ** (d / 10)),
    ("hyp3-power", lambda d: 10 ** (d / 10)),
    ("hyp3-amplitude", lambda d: 10 ** (d / 20)),
    ("hyp3-db", lambda d: d),
    ("planetary-computer", lambda d: 10 ** (d / 10)),
])
def test_each_layout_reads_the_same_linear_backscatter(tmp_path, db, layout, convert):
    names = {"opera": OPERA, "hyp3-power": HYP3.replace("{scale}", "p"), "hyp3-amplitude": HYP3.replace("{scale}", "a"),
             "hyp3-db": HYP3.replace("{scale}", "d"), "planetary-computer": "{pol}.tif"}[layout]
    folder = tmp_path / layout
    for pol, (values, profile) in db.items():
        name = names.format(pol=pol.lower() if layout == "planetary-computer" else pol)
        _write(folder, name, convert(values), profile)
    files = find_polarisation_files(folder)
    assert [f.name.upper().split("_")[-1].split(".")[0] for f in files] == ["VV", "VH"]
    for how in (folder, str(folder / "*.tif"), files):  # a folder, a glob, a list
        with open_scene(how) as scene:
            assert scene.is_sar and list(scene.bands) == ["VV", "VH"]
            for pol in ("VV", "VH"):
                np.testing.assert_allclose(10 * np.log10(scene.read(pol)), db[pol][0], atol=1e-3)
            if layout != "hyp3-db":  # the name says gamma0 (a dB file's name says so too; checked above)
                assert scene.band("VH").quantity == Quantity.GAMMA0


def test_cli_translate_takes_two_files_and_a_glob(tmp_path, db):
    folder = tmp_path / "opera"
    files = [_write(folder, OPERA.format(pol=pol), 10 ** (v / 10), p) for pol, (v, p) in db.items()]
    out = tmp_path / "rgb.tif"
    assert main(["translate", str(files[0]), str(files[1]), str(out), "--progress", "none"]) == 0
    with rasterio.open(out) as ds:
        assert ds.tags()["SAR2OPT_INPUT_BANDS"] == "VH" and ds.count == 3
        first = ds.read()
    out2 = tmp_path / "rgb_glob.tif"
    assert main(["translate", str(folder / "OPERA_*_V?.tif"), str(out2), "--progress", "none"]) == 0
    with rasterio.open(out2) as ds:
        np.testing.assert_array_equal(ds.read(), first)


def test_files_on_different_grids_are_refused_with_the_names(tmp_path, db):
    (vv, profile) = db["VV"]
    a = _write(tmp_path, "x_VV.tif", 10 ** (vv / 10), profile)
    shifted = {**profile, "transform": profile["transform"] * rasterio.Affine.translation(3, 0)}
    b = _write(tmp_path, "x_VH.tif", 10 ** (db["VH"][0] / 10), shifted)
    with pytest.raises(InputError, match=r"x_VH\.tif: its grid .* differs from x_VV\.tif"):
        open_scene([a, b])
