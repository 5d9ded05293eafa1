"""Pseudo-colour composites: stretch math, streaming percentiles, grid and nodata kept, generator composites."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sar2opt_geo.errors import BandError
from sar2opt_geo.experiment.composite import (
    DEFAULT_DB_RANGES,
    compare_composites,
    dual_pol_bands,
    generator_composite,
    plain_composite,
    plain_composite_bands,
    stretch,
)
from sar2opt_geo.models import InputDomain, ModelCard
from sar2opt_geo.sensors import open_scene


@pytest.fixture(scope="module")
def s1_dual(data_dir):
    """Real Sentinel-1 dual-pol dB GeoTIFF (SEN12MS-CR: band 1 VV, band 2 VH), 256 x 256, 10 m."""
    return min((data_dir / "pairs" / "sen12ms_cr" / "s1").glob("*.tif"))


def _db(path, band):
    with rasterio.open(path) as src:
        return src.read(band).astype(np.float32)


def test_stretch_fixed_ranges_and_nan():
    db = plain_composite_bands(np.array([[-25.0, -12.5, 5.0, np.nan]]), np.array([[-32.0, -18.5, -40.0, -20.0]]))
    assert np.allclose(db[2, 0, :3], [7.0, 6.0, 45.0])
    unit = stretch(db, DEFAULT_DB_RANGES)
    assert np.allclose(unit[0, 0, :3], [0.0, 0.5, 1.0])  # -25 -> 0, -12.5 -> 0.5, above 0 dB clipped
    assert np.allclose(unit[1, 0, :3], [0.0, 13.5 / 27.0, 0.0])
    assert np.allclose(unit[2, 0, :3], [7 / 15, 6 / 15, 1.0])
    assert np.isnan(unit[:, 0, 3]).all()  # nodata in one polarisation -> nodata in every band


def test_plain_composite_fixed_on_real_scene_keeps_grid(tmp_path, s1_dual):
    res = plain_composite(s1_dual, tmp_path / "plain.tif")
    assert res.bands == ("VV", "VH") and res.ranges == DEFAULT_DB_RANGES
    with rasterio.open(s1_dual) as src, rasterio.open(res.path) as out:
        assert (out.crs, out.transform, out.width, out.height) == (src.crs, src.transform, src.width, src.height)
        assert out.count == 3 and out.dtypes[0] == "uint8"
        got = out.read()
    vv, vh = _db(s1_dual, 1), _db(s1_dual, 2)
    want = np.round(stretch(plain_composite_bands(vv, vh), DEFAULT_DB_RANGES) * 255)
    assert np.abs(got.astype(float) - want).max() <= 1  # dB -> sigma0 -> dB round trip in float32
    assert res.quicklook is not None and res.quicklook.exists()


def test_percentile_stretch_is_streaming_and_exact_to_the_bin(tmp_path, s1_dual, monkeypatch):
    from sar2opt_geo.sensors.base import Scene

    scene = open_scene(s1_dual)
    seen = []
    read = type(scene).read

    def spy(self, band, window=None):
        assert window is not None, "the composite must read window by window"
        seen.append((window.height, window.width))
        return read(self, band, window)

    monkeypatch.setattr(type(scene), "read", spy)
    assert isinstance(scene, Scene)
    res = plain_composite(scene, tmp_path / "p.tif", stretch_mode="percentile", block=100)
    assert max(max(s) for s in seen) <= 100 and len(seen) >= 2 * 9 * 2  # 9 windows, 2 bands, 2 passes
    db = plain_composite_bands(_db(s1_dual, 1), _db(s1_dual, 2))
    for band, (lo, hi) in zip(db, res.ranges):
        assert lo == pytest.approx(np.percentile(band, 2), abs=0.02)  # 0.01 dB bins
        assert hi == pytest.approx(np.percentile(band, 98), abs=0.02)
    with rasterio.open(res.path) as out:
        r = out.read(1)
    assert 0.01 < (r == 0).mean() < 0.04 and 0.01 < (r == 255).mean() < 0.04  # ~2 % clipped at each end


def test_nodata_kept_and_hh_hv_preferred(tmp_path, make_geotiff):
    rng = np.random.default_rng(0)
    hh = rng.normal(-8, 3, (64, 80)).astype(np.float32)
    hv = (hh - 7 + rng.normal(0, 1, hh.shape)).astype(np.float32)
    hh[:10] = np.nan  # nodata stripe in one polarisation only
    path = make_geotiff(np.stack([hh, hv]), name="alos_hh_hv_db.tif", descriptions=("HH", "HV"), nodata=float("nan"))
    with open_scene(path, sensor="ALOS-2") as scene:
        assert dual_pol_bands(scene) == ("HH", "HV")
    res = plain_composite(path, tmp_path / "c.tif", stretch_mode="percentile")
    with rasterio.open(res.path) as out:
        mask = out.read_masks(1)
        data = out.read()
    assert (mask[:10] == 0).all() and (mask[10:] == 255).all()
    assert (data[:, :10] == 0).all()
    assert res.valid_pixels == 54 * 80


def test_single_pol_scene_is_a_band_error(tmp_path, s1_db_tif):
    with pytest.raises(BandError, match="dual-pol"):
        plain_composite(s1_db_tif, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_synthetic_palsar2_l21_composite(tmp_path):
    from sar2opt_geo.samples.synthetic import write_synthetic_palsar2_l21

    product = write_synthetic_palsar2_l21(tmp_path / "palsar2", size=128)  # synthetic: no real L2.1 is available
    res = plain_composite(product, tmp_path / "palsar.tif")
    assert res.bands == ("HH", "HV")
    with rasterio.open(res.path) as out:
        mask = out.read_masks(1)
        b = out.read(3)
    assert 0 < (mask == 0).sum() < mask.size  # the product's DN 0 border wedge stays nodata
    # synthetic HH = HV + 7 dB everywhere: the ratio band is flat at 7/15 of the 0..15 dB range
    assert np.median(b[mask > 0]) == pytest.approx(255 * 7 / 15, abs=3)


def _tiny_card() -> ModelCard:
    domain = InputDomain(sensor="Sentinel-1", bands=("VH",), quantity="sigma0", normalisation="percentile",
                         percentile=99.0, quantize_levels=255, frequency_band="C")
    return ModelCard(name="tiny", architecture="unet_article",
                     architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.125}, input=domain)


def test_generator_composite_on_scene_grid_and_comparable(tmp_path, s1_dual, tiny_generator):
    plain = plain_composite(s1_dual, tmp_path / "plain.tif", stretch_mode="percentile")
    res = generator_composite(s1_dual, tmp_path / "gen.tif", (tiny_generator(1, 3), _tiny_card()),
                              keep_translations=True, tile_size=256, overlap=128)
    assert res.kind == "generator:tiny" and res.bands == ("VV", "VH")
    assert any("VV" in w for w in res.warnings)  # VH model fed VV: the mismatch only warns
    assert [p.name for p in res.translations] == ["gen_vv_rgb.tif", "gen_vh_rgb.tif"]
    with rasterio.open(plain.path) as a, rasterio.open(res.path) as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        g = b.read()
    assert g.std(axis=(1, 2)).min() > 5  # stretched, not flat
    # the composite follows its rule: R is the stretched luminance of the co-pol translation
    with rasterio.open(res.translations[0]) as t:
        rgb = t.read(out_dtype="float32")
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if rgb.max() > 1.5:
        lum /= 255.0
    lo, hi = res.ranges[0]
    want = np.round(np.clip((lum - lo) / (hi - lo), 0, 1) * 255)
    assert np.abs(g[0].astype(float) - want).max() <= 1

    scores = compare_composites(res.path, plain.path)
    assert len(scores) == 3
    for s in scores:
        assert -1 <= s["pearson"] <= 1 and -1 <= s["ssim"] <= 1 and s["pixels"] == 256 * 256
    same = compare_composites(plain.path, plain.path)
    assert all(s["ssim"] == pytest.approx(1.0, abs=1e-5) and s["pearson"] == pytest.approx(1.0) for s in same)


def test_cli_composite_json_progress(tmp_path, s1_dual, capsys):
    import json

    from sar2opt_geo.cli.main import main

    out = tmp_path / "cli.tif"
    assert main(["composite", str(s1_dual), str(out), "--stretch", "percentile", "--progress", "json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "done" and lines[-1]["outputs"]["OUTPUT"] == str(out.resolve())
    assert any(x["event"] == "progress" for x in lines)
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.tags()["stretch"].startswith("percentile 2.0-98.0")
