"""``sar2opt translate`` and ``sar2opt demo``: flags -> API, JSON progress, exit codes, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from sar2opt_geo.cli.main import main
from sar2opt_geo.cli.translate import default_output
from sar2opt_geo.models import ModelCard, UNetGenerator
from sar2opt_geo.models.card import InputDomain
from sar2opt_geo.models.checkpoint import default_model_path, read_card, save_generator

FAST = ["--tile", "512", "--overlap", "96", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures the root logger


@pytest.fixture(scope="module")
def tiny_vv(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    g = UNetGenerator(1, 3, width=0.0625).eval()
    card = ModelCard("tiny-vv", "unet_article", {"in_channels": 1, "out_channels": 3, "width": 0.0625},
                     InputDomain("Sentinel-1", ("VV",), "sigma0", "percentile", percentile=99.0, quantize_levels=255,
                                 frequency_band="C"))
    return save_generator(g, card, tmp_path_factory.mktemp("m") / "tiny_vv.safetensors")


@pytest.fixture
def vv_scene(make_geotiff):
    db = np.random.default_rng(0).uniform(-22, -6, size=(48, 64)).astype(np.float32)
    db[:8] = -99.0
    return make_geotiff(db, name="scene_VV_db.tif", nodata=-99.0, descriptions=("VV",))


def test_help_explains_units_crs_and_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["translate", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("--t-srs", "--tr", "units of", "UTM zone", "10 m", "--match-input-grid", "linear power",
                  "--max-memory-mb", "default 1500", "_rgb.tif", "--quicklook", "--strict", "--progress"):
        assert words in text, words


def test_json_progress_ends_with_done_and_outputs(vv_scene, tiny_vv, tmp_path, capsys):
    out = tmp_path / "res" / "rgb.tif"
    code = main(["translate", str(vv_scene), str(out), "--model", str(tiny_vv), "--progress", "json",
                 "--quicklook", "--dtype", "float32", *FAST])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "done"
    assert lines[-1]["outputs"] == {"OUTPUT": str(out.resolve()), "QUICKLOOK": str(out.with_suffix(".png").resolve())}
    assert lines[-1]["model"]  # the card's name, for QGIS's layer name
    fractions = [ev["fraction"] for ev in lines if ev["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "float32" and ds.crs.to_epsg() == 32631
        assert np.isnan(ds.read(1)[:8]).all()


def test_flags_reach_the_api(vv_scene, tiny_vv, tmp_path, capsys):
    out = tmp_path / "ll.tif"
    code = main(["translate", str(vv_scene), str(out), "--model", str(tiny_vv), "--t-srs", "EPSG:4326",
                 "--speckle", "lee", "--speckle-window", "5", "--progress", "none", *FAST])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 4326 and ds.tags()["SAR2OPT_SPECKLE_FILTER"] == "lee 5x5"


def test_default_output_name_in_current_folder(vv_scene, tiny_vv, tmp_path, monkeypatch):
    assert default_output("/data/S1A_IW_GRDH_1SDV_X.SAFE/").name == "S1A_IW_GRDH_1SDV_X_rgb.tif"
    assert default_output("scene.tif").name == "scene_rgb.tif"
    monkeypatch.chdir(tmp_path)
    assert main(["translate", str(vv_scene), "--model", str(tiny_vv), "--progress", "none", *FAST]) == 0
    assert (tmp_path / "scene_VV_db_rgb.tif").exists()


def test_missing_input_is_one_line_exit_1_and_json_error(tiny_vv, tmp_path, capsys):
    out = tmp_path / "o.tif"
    code = main(["translate", str(tmp_path / "nope.tif"), str(out), "--model", str(tiny_vv), "--progress", "json"])
    assert code == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sar2opt: error:") and "nope.tif" in err[0]
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[-1]["event"] == "error" and "nope.tif" in events[-1]["message"]
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_and_bad_checkpoint(vv_scene, tiny_vv, tmp_path, capsys):
    out = tmp_path / "o.tif"
    out.write_bytes(b"old")
    assert main(["translate", str(vv_scene), str(out), "--model", str(tiny_vv), "--no-overwrite",
                 "--progress", "none"]) == 1
    assert "overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert main(["translate", str(vv_scene), str(tmp_path / "p.tif"), "--model", str(bad), "--progress", "none"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.safetensors" in err[0]
    assert not (tmp_path / "p.tif").exists()


def test_bad_flag_value_is_exit_2(vv_scene, tiny_vv, tmp_path, capsys):
    code = main(["translate", str(vv_scene), str(tmp_path / "o.tif"), "--model", str(tiny_vv), "--overlap", "40",
                 "--progress", "none"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlap" in err[0]
    assert not (tmp_path / "o.tif").exists()


def test_strict_mismatch_refused(make_geotiff, tiny_vv, tmp_path, capsys):
    hh = make_geotiff(np.full((32, 32), -10.0, np.float32), name="scene_HH_db.tif", descriptions=("HH",))
    assert main(["translate", str(hh), str(tmp_path / "o.tif"), "--model", str(tiny_vv), "--strict",
                 "--progress", "none", *FAST]) == 1
    err = capsys.readouterr().err
    assert "HH" in err and "VV" in err and "strict" in err


def test_demo_writes_sample_geotiff_and_preview(tmp_path, capsys):
    out = tmp_path / "out" / "demo_rgb.tif"
    assert main(["demo", "--synthetic", "--output", str(out), "--size", "96", "--progress", "none", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    sample = out.parent / "sample_s1_vh_db.tif"
    for p in (sample, out, out.with_suffix(".png")):
        assert p.exists() and str(p) in printed
    with rasterio.open(sample) as s, rasterio.open(out) as o:
        assert o.crs == s.crs and tuple(o.bounds) == pytest.approx(tuple(s.bounds))
        assert o.tags()["SAR2OPT_MODEL"] == read_card(default_model_path("sar")).name  # the bundled SAR model
        assert "synthetic" in s.tags()["SYNTHETIC"]
