"""io.outputs: no command can write over its own input, nor write one file twice (issue 19)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import ConfigError, OutputExistsError
from sar2opt_geo.io import check_outputs
from sar2opt_geo.models import ModelCard, UNetGenerator
from sar2opt_geo.models.card import InputDomain
from sar2opt_geo.models.checkpoint import save_generator

FAST = ["--tile", "512", "--overlap", "96", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_vv(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    g = UNetGenerator(1, 3, width=0.0625).eval()
    card = ModelCard("tiny-vv", "unet_article", {"in_channels": 1, "out_channels": 3, "width": 0.0625},
                     InputDomain("Sentinel-1", ("VV",), "sigma0", "percentile", percentile=99.0, quantize_levels=255,
                                 frequency_band="C"))
    return save_generator(g, card, tmp_path_factory.mktemp("m") / "tiny_vv.safetensors")


def _dual_pol(path, driver="GTiff"):
    """A synthetic Sentinel-1-like VV+VH dB raster (named bands), 10 m UTM."""
    rng = np.random.default_rng(0)
    db = np.stack([rng.uniform(-20, -5, (40, 48)), rng.uniform(-28, -12, (40, 48))]).astype(np.float32)
    with rasterio.open(path, "w", driver=driver, width=48, height=40, count=2, dtype="float32", crs="EPSG:32631",
                       transform=from_origin(500000, 4600000, 10, 10)) as dst:
        dst.write(db)
        dst.set_band_description(1, "VV")
        dst.set_band_description(2, "VH")
    return path


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _refused(capsys, argv, *protected) -> str:
    before = {p: _digest(p) for p in protected}
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar
    assert err.startswith("sar2opt: error:") and "Traceback" not in err, err
    for p, d in before.items():
        assert _digest(p) == d, f"{p} was modified"
    return err


def test_composite_in_in_overwrote_its_input(tmp_path, capsys):
    """``sar2opt composite IN.tif IN.tif`` overwrote its input with rc 0."""
    src = _dual_pol(tmp_path / "IN.tif")
    err = _refused(capsys, ["composite", str(src), str(src)], src)
    assert "would overwrite the input" in err


def test_translate_spread_path_overwrote_the_input(tmp_path, tiny_vv, capsys):
    """``translate a_spread.tif a.tif --samples 2`` wrote the spread layer over the input."""
    src = _dual_pol(tmp_path / "a_spread.tif")
    err = _refused(capsys, ["translate", str(src), str(tmp_path / "a.tif"), "--samples", "2", "--model", str(tiny_vv),
                            *FAST], src)
    assert "spread layer would overwrite the input" in err
    assert not (tmp_path / "a.tif").exists()


def test_translate_quicklook_path_overwrote_a_georeferenced_png_input(tmp_path, tiny_vv, capsys):
    """``translate scene.png scene.tif --quicklook`` wrote the quicklook over the (georeferenced PNG) input."""
    src = tmp_path / "scene.png"
    rng = np.random.default_rng(1)
    with rasterio.open(src, "w", driver="PNG", width=48, height=40, count=1, dtype="uint8", crs="EPSG:32631",
                       transform=from_origin(500000, 4600000, 10, 10)) as dst:
        dst.write(rng.integers(1, 255, (1, 40, 48), dtype=np.uint8))
    err = _refused(capsys, ["translate", str(src), str(tmp_path / "scene.tif"), "--quicklook", "--model", str(tiny_vv),
                            *FAST], src)
    assert "quicklook would overwrite the input" in err
    assert not (tmp_path / "scene.tif").exists()


def test_translate_to_png_with_quicklook_left_only_the_png(tmp_path, tiny_vv, capsys):
    """``translate vh.tif q.png --quicklook`` exited 0 with the GeoTIFF overwritten by its own quicklook."""
    src = _dual_pol(tmp_path / "vh.tif")
    err = _refused(capsys, ["translate", str(src), str(tmp_path / "q.png"), "--quicklook", "--model", str(tiny_vv),
                            *FAST], src)
    assert "would be written twice" in err and ".tif name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vh.tif"]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_output_that_is_the_input_under_another_name_is_refused_even_with_overwrite(tmp_path, tiny_vv, capsys, link):
    src = _dual_pol(tmp_path / "scene.tif")
    alias = tmp_path / "alias.tif"
    (os.symlink if link == "symlink" else os.link)(src, alias)
    err = _refused(capsys, ["translate", str(src), str(alias), "--overwrite", "--model", str(tiny_vv), *FAST], src)
    assert "would overwrite the input" in err and "under another name" in err
    err = _refused(capsys, ["composite", str(src), str(tmp_path / "." / "scene.tif"), "--overwrite"], src)
    assert "would overwrite the input" in err


def test_file_inside_an_input_folder_is_refused(tmp_path):
    safe = tmp_path / "S1A_X.SAFE"
    (safe / "measurement").mkdir(parents=True)
    tiff = safe / "measurement" / "s1a-iw-grd-vv.tiff"
    tiff.write_bytes(b"II*\0")
    with pytest.raises(OutputExistsError, match="would overwrite a file of the input folder"):
        check_outputs([safe], {"output": tiff}, overwrite=True)
    assert check_outputs([safe], {"output": safe / "new.tif"}, overwrite=False)["output"] == safe / "new.tif"


def test_outputs_checked_pairwise_and_urls_are_not_local_inputs(tmp_path):
    with pytest.raises(ConfigError, match="as the output and as the spread layer"):
        check_outputs([], {"output": tmp_path / "x.tif", "spread layer": tmp_path / "sub" / ".." / "x.tif"},
                      overwrite=True)
    assert check_outputs(["https://example.invalid/x.tif"], {"output": tmp_path / "x.tif"}, overwrite=False)
