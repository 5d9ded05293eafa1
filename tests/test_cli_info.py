"""``sar2opt info``: text and JSON descriptions, band selection, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sar2opt_geo.cli.main import main
from sar2opt_geo.samples.synthetic import (
    write_sample_scene,
    write_synthetic_palsar2_l21,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_sample_scene(tmp_path_factory.mktemp("info") / "sample.tif", size=64)


def test_info_text(sample: Path, capsys):
    assert main(["info", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "Sentinel-1 (C-band SAR)" in out
    assert "EPSG:32631" in out and "10.00 m" in out and "64 x 64" in out
    assert "VH" in out and "sigma0 (linear)" in out


def test_info_json_matches_the_reader(sample: Path, capsys):
    assert main(["info", str(sample), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sensor"] == "Sentinel-1" and d["size"] == [64, 64]
    assert list(d["bands"]) == ["VH"] and d["bands"]["VH"]["quantity"] == "sigma0"
    assert d["georeferencing"] == "transform" and d["crs"] == "EPSG:32631"
    left, bottom, right, top = d["bounds"]
    assert right - left == top - bottom == 640.0


def test_info_bands_and_calibration_factor(tmp_path: Path, capsys):
    folder = write_synthetic_palsar2_l21(tmp_path / "alos", size=32)
    assert main(["info", str(folder), "--json", "--bands", "HV", "--calibration-factor-db", "-79"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d["bands"]) == ["HV"] and d["frequency_band"] == "L"
    assert d["metadata"]["calibration_factor_db"] == -79.0


def test_info_s1_safe_gcps(s1_safe: Path, capsys):
    assert main(["info", str(s1_safe), "--no-thermal-noise-removal"]) == 0
    out = capsys.readouterr().out
    assert "210 GCPs in EPSG:4326" in out and "26102 x 16705" in out
    assert "thermal noise removed" not in out


def test_info_missing_band_is_one_line_error(sample: Path, capsys):
    assert main(["info", str(sample), "--bands", "HH"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sar2opt: error:") and "it has VH" in err and "\n" not in err


def test_info_missing_file(tmp_path: Path, capsys):
    assert main(["info", str(tmp_path / "nope.tif")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_info_of_a_truncated_geotiff_exits_non_zero_bug(tmp_path: Path, capsys):
    """``sar2opt info`` printed a truncated COG's metadata and exited 0."""
    from rasterio.shutil import copy as rio_copy

    cog = tmp_path / "sample_cog.tif"
    rio_copy(write_sample_scene(tmp_path / "sample256.tif", size=256), cog, driver="COG", blocksize=128, overviews="none")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(cog.read_bytes()[: cog.stat().st_size * 2 // 3])
    assert main(["info", str(cut)]) == 1
    captured = capsys.readouterr()
    assert "Input:" not in captured.out and "Bands:" not in captured.out  # no description printed
    assert f"sar2opt: error: {cut}: GDAL cannot read band 1" in captured.err and "truncated or damaged" in captured.err


def test_info_bounds_of_a_rotated_raster_use_four_corners(tmp_path: Path, capsys):
    import numpy as np
    import rasterio
    from affine import Affine

    t = Affine.translation(500000.0, 4800000.0) * Affine.rotation(30) * Affine.scale(10.0, -10.0)
    path = tmp_path / "rotated_vh_db.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=20, count=1, dtype="float32", crs="EPSG:32631",
                       transform=t) as dst:
        dst.write(np.full((20, 40), -15.0, np.float32), 1)
    assert main(["info", str(path), "--json", "--units", "db"]) == 0
    left, bottom, right, top = json.loads(capsys.readouterr().out)["bounds"]
    xs, ys = zip(*(t @ (c, r) for c, r in ((0, 0), (40, 0), (0, 20), (40, 20))))
    assert (left, bottom, right, top) == pytest.approx((min(xs), min(ys), max(xs), max(ys)))
