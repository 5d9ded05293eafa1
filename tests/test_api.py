"""sar2opt_geo.translate end to end: grids, nodata, dtypes, COG layout, crops, errors, atomicity."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_bounds

from sar2opt_geo import translate
from sar2opt_geo.errors import (
    BandError,
    CancelledError,
    CheckpointError,
    GeoreferencingError,
    InputError,
    NoValidDataError,
    OutputExistsError,
    UnsupportedFormatError,
)
from sar2opt_geo.models import ModelCard, UNetGenerator
from sar2opt_geo.models.card import InputDomain
from sar2opt_geo.models.checkpoint import save_generator
from sar2opt_geo.translation.api import Result, TranslateOptions

FAST = {"tile_size": 512, "overlap": 96, "batch_size": 2, "device": "cpu"}


def _tiny_model(seed: int, bands=("VV",), quantity="sigma0", random_bn=True, **domain):
    import torch

    torch.manual_seed(seed)
    g = UNetGenerator(len(bands), 3, width=0.0625)
    for m in g.modules():
        if random_bn and isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    d = {"sensor": "Sentinel-1", "bands": tuple(bands), "quantity": quantity, "normalisation": "percentile",
             "percentile": 99.0, "quantize_levels": 255, "frequency_band": "C"}
    d.update(domain)
    card = ModelCard(name=f"tiny-{'-'.join(bands).lower()}", architecture="unet_article",
                     architecture_args={"in_channels": len(bands), "out_channels": 3, "width": 0.0625},
                     input=InputDomain(**d))
    return g.eval(), card


@pytest.fixture(scope="module")
def vv_model(tmp_path_factory):
    """A tiny stand-in SAR checkpoint (Sentinel-1 VV, scene p99 domain) saved like a real one."""
    g, card = _tiny_model(0)
    return save_generator(g, card, tmp_path_factory.mktemp("models") / "tiny_vv.safetensors")


@pytest.fixture(scope="module")
def s1_with_nodata(s1_db_tif, tmp_path_factory):
    """The real S1 dB scene with a nodata (-99) block and wedge burnt in (a copy in tmp, not in the repo)."""
    with rasterio.open(s1_db_tif) as src:
        profile, db = src.profile, src.read(1)
    rows, cols = np.indices(db.shape)
    db[20:70, 30:110] = -99.0
    db[cols > 200 + rows // 3] = -99.0
    path = tmp_path_factory.mktemp("s1") / "s1_vv_db_holes.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(db, 1)
    return path


@pytest.fixture(scope="module")
def s1_result(s1_with_nodata, vv_model, tmp_path_factory):
    dst = tmp_path_factory.mktemp("out") / "s1_rgb.tif"
    return translate(s1_with_nodata, dst, vv_model, quicklook=True, **FAST)


def _hidden(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# -- the done-when check on real data ------------------------------------------------------


def test_real_s1_output_keeps_crs_and_bounds_on_a_10m_grid(s1_result, s1_with_nodata):
    assert isinstance(s1_result, Result)
    with rasterio.open(s1_with_nodata) as src, rasterio.open(s1_result.path) as out:
        assert out.crs == src.crs
        assert out.res == (10.0, 10.0)
        assert tuple(out.bounds) == pytest.approx(tuple(src.bounds), abs=1e-6)
        assert (out.width, out.height) == (2 * src.width, 2 * src.height)
        assert s1_result.crs == "EPSG:32631" and s1_result.bounds == pytest.approx(tuple(out.bounds))


def test_real_s1_nodata_mask_matches_input_nodata_resampled(s1_result, s1_with_nodata):
    with rasterio.open(s1_with_nodata) as src, rasterio.open(s1_result.path) as out:
        src_valid = (src.read_masks(1) > 0).astype(np.uint8)
        expected = np.zeros((out.height, out.width), np.uint8)
        reproject(src_valid, expected, src_transform=src.transform, src_crs=src.crs, dst_transform=out.transform,
                  dst_crs=out.crs, resampling=Resampling.nearest)
        out_valid = out.read_masks(1) > 0
        data = out.read()
    assert (~src_valid.astype(bool)).sum() > 5000  # the test scene really has nodata
    agree = np.mean(out_valid == expected.astype(bool))
    assert agree > 0.99
    # disagreements only along the nodata edge (bilinear footprint), never inside a hole or far from it
    from scipy.ndimage import binary_dilation, binary_erosion

    edge = binary_dilation(expected.astype(bool), iterations=2) & ~binary_erosion(expected.astype(bool), iterations=2)
    assert not (out_valid != expected.astype(bool))[~edge].any()
    assert (data[:, ~out_valid] == 0).all()  # nodata is a mask, not coloured noise


def test_real_s1_output_is_a_tagged_rgb_cog(s1_result, vv_model):
    with rasterio.open(s1_result.path) as out:
        assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert out.profile["tiled"] and out.block_shapes[0] == (512, 512)
        assert out.overviews(1) == [2]
        assert out.dtypes == ("uint8",) * 3 and out.descriptions == ("red", "green", "blue")
        assert [c.name for c in out.colorinterp] == ["red", "green", "blue"]
        tags = out.tags()
    assert tags["SAR2OPT_MODEL"] == "tiny-vv" and tags["SAR2OPT_MODEL_HASH"] == s1_result.card_hash
    assert tags["SAR2OPT_INPUT_BANDS"] == "VV" and tags["SAR2OPT_SOURCE"].endswith("s1_vv_db_holes.tif")
    assert tags["SAR2OPT_VERSION"] and "p99" in tags["SAR2OPT_NORMALISATION"]
    assert s1_result.warnings == () and tags.get("SAR2OPT_WARNINGS", "") == ""
    assert s1_result.quicklook == s1_result.path.with_suffix(".png") and s1_result.quicklook.exists()
    assert _hidden(s1_result.path.parent) == []  # no temporaries or scratch left


def test_real_s1_match_input_grid_gives_the_exact_input_grid(s1_with_nodata, vv_model, tmp_path):
    r = translate(s1_with_nodata, tmp_path / "m.tif", vv_model, match_input_grid=True, dtype="float32", **FAST)
    with rasterio.open(s1_with_nodata) as src, rasterio.open(r.path) as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert (out.width, out.height) == (src.width, src.height)
        data = out.read()
        src_valid = src.read_masks(1) > 0
    assert out.dtypes == ("float32",) * 3 and np.isnan(out.nodata)
    valid = np.isfinite(data).all(axis=0)
    assert np.mean(valid == src_valid) > 0.98
    assert 0.0 <= np.nanmin(data) and np.nanmax(data) <= 1.0


def test_real_s1_reprojected_to_lonlat(s1_db_tif, vv_model, tmp_path):
    r = translate(s1_db_tif, tmp_path / "ll.tif", vv_model, dst_crs="EPSG:4326", **FAST)
    with rasterio.open(s1_db_tif) as src, rasterio.open(r.path) as out:
        assert out.crs == CRS.from_epsg(4326)
        ll = transform_bounds(src.crs, out.crs, *src.bounds)
        assert tuple(out.bounds) == pytest.approx(ll, abs=3 * out.res[0])
        assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (out.read_masks(1) > 0).mean() > 0.7  # a rotated footprint: valid inside, masked corners


def test_real_s1_float32_equals_uint8_scaled(s1_with_nodata, vv_model, tmp_path, s1_result):
    r = translate(s1_with_nodata, tmp_path / "f.tif", vv_model, dtype="float32", **FAST)
    with rasterio.open(r.path) as f, rasterio.open(s1_result.path) as u:
        fd, ud, um = f.read(), u.read(), u.read_masks(1) > 0
    assert np.array_equal(np.isfinite(fd).all(axis=0), um)
    assert np.abs(np.round(fd[:, um] * 255) - ud[:, um]).max() <= 1


def test_bounds_crop_writes_only_the_bounds_with_the_same_values(s1_with_nodata, vv_model, tmp_path, s1_result):
    with rasterio.open(s1_result.path) as full:
        left, top = full.transform.c + 2000.0, full.transform.f - 1500.0
        bounds = (left, top - 1200.0, left + 1600.0, top)
        r = translate(s1_with_nodata, tmp_path / "crop.tif", vv_model, bounds=bounds, **FAST)
        with rasterio.open(r.path) as crop:
            assert tuple(crop.bounds) == pytest.approx(bounds)
            assert (crop.width, crop.height) == (160, 120)
            win = full.window(*bounds)
            ref, got = full.read(window=win), crop.read()
    assert np.abs(ref.astype(int) - got.astype(int)).max() <= 1  # context around the crop: no seams


@pytest.mark.parametrize("aoi_crs", [None, "EPSG:4326"])
def test_aoi_masks_outside_the_polygon(s1_db_tif, vv_model, tmp_path, aoi_crs):
    from shapely.geometry import Polygon
    from shapely.ops import transform as shp_transform

    with rasterio.open(s1_db_tif) as src:
        x0, y0 = src.bounds.left + 1000, src.bounds.bottom + 1000
    tri = Polygon([(x0, y0), (x0 + 2000, y0), (x0, y0 + 2000)])
    aoi = tri
    if aoi_crs:
        from pyproj import Transformer

        aoi = shp_transform(Transformer.from_crs(32631, 4326, always_xy=True).transform, tri)
    r = translate(s1_db_tif, tmp_path / "aoi.tif", vv_model, aoi=aoi, aoi_crs=aoi_crs, **FAST)
    with rasterio.open(r.path) as out:
        assert tuple(out.bounds) == pytest.approx(tri.bounds, abs=10.0 if aoi_crs else 1e-6)
        m = out.read_masks(1) > 0
    assert 0.4 < m.mean() < 0.6  # half of the bounding square
    assert m[-1, 0] and not m[0, -1]
    if aoi_crs:
        return
    keep = translate(s1_db_tif, tmp_path / "rect.tif", vv_model, aoi=tri, keep_rectangle=True, **FAST)
    with rasterio.open(keep.path) as out:
        assert (out.read_masks(1) > 0).all()


# -- model choice and mismatch ------------------------------------------------------------


def test_band_mismatch_warns_records_and_strict_refuses(s1_db_tif, tmp_path):
    g, card = _tiny_model(1, bands=("VH",))
    r = translate(s1_db_tif, tmp_path / "vh.tif", (g, card), **FAST)
    assert len(r.warnings) == 1 and "VH" in r.warnings[0] and "VV" in r.warnings[0]
    with rasterio.open(r.path) as out:
        assert out.tags()["SAR2OPT_WARNINGS"] == r.warnings[0]
    with pytest.raises(BandError, match="strict"):
        translate(s1_db_tif, tmp_path / "strict.tif", (g, card), strict=True, **FAST)
    assert not (tmp_path / "strict.tif").exists()


def test_loaded_model_tuple_and_default_model_by_scene_type(monkeypatch, make_geotiff, vv_model, tmp_path):
    from sar2opt_geo.models import checkpoint

    asked = []

    def fake_default(kind="sar"):
        asked.append(kind)
        return vv_model

    monkeypatch.setattr(checkpoint, "default_model_path", fake_default)
    sar = make_geotiff(np.full((40, 40), -12.0, np.float32), name="s1_VV_db.tif", descriptions=("VV",))
    r = translate(sar, tmp_path / "a.tif", None, **FAST)
    assert asked == ["sar"] and r.model_name == "tiny-vv"
    opt = make_geotiff(np.full((3, 40, 40), 900, np.uint16), name="landsat_rgb.tif", descriptions=("red", "green", "blue"))
    with pytest.raises(BandError):  # the stand-in VV model cannot take an optical scene: but "gray" was asked for
        translate(opt, tmp_path / "b.tif", None, **FAST)
    assert asked[-1] == "gray"
    g, card = _tiny_model(0)
    r2 = translate(sar, tmp_path / "c.tif", (g, card, "abc123"), **FAST)
    assert r2.card_hash == "abc123"


def test_gray_model_on_a_real_landsat8_crop(landsat8_tif, tmp_path):
    """Real Landsat-8 (B2, B3, B4 at 30 m): the gray card's red/green/blue are found, 10 m grid, own CRS."""
    g, card = _tiny_model(2, bands=("gray",), quantity="gray", sensor="optical", frequency_band=None,
                          gray_from=("red", "green", "blue"), gray_weights=(0.299, 0.587, 0.114))
    with rasterio.open(landsat8_tif) as src:
        left, top = src.bounds.left + 15000, src.bounds.top - 15000
        crs = src.crs
    bounds = (left, top - 3000.0, left + 3000.0, top)
    r = translate(landsat8_tif, tmp_path / "l8.tif", (g, card), bounds=bounds, **FAST)
    assert r.warnings == () and (r.width, r.height) == (300, 300) and r.crs == crs.to_string()
    with rasterio.open(r.path) as out:
        assert out.tags()["SAR2OPT_INPUT_BANDS"] == "red,green,blue"
        assert "gray" in out.tags()["SAR2OPT_NORMALISATION"]
        assert tuple(out.bounds) == pytest.approx(bounds)


def test_gray_model_on_optical_scene(make_geotiff, tmp_path):
    rng = np.random.default_rng(0)
    rgb = (rng.random((3, 48, 64)) * 3000).astype(np.uint16)
    path = make_geotiff(rgb, name="optical_rgb.tif", transform=from_origin(500000, 4600000, 30, 30),
                        descriptions=("red", "green", "blue"))
    g, card = _tiny_model(2, bands=("gray",), quantity="gray", sensor="optical", frequency_band=None,
                          gray_from=("red", "green", "blue"), gray_weights=(0.299, 0.587, 0.114))
    r = translate(path, tmp_path / "gray.tif", (g, card), **FAST)
    assert (r.width, r.height) == (192, 144) and r.warnings == ()
    with rasterio.open(r.path) as out:
        assert out.tags()["SAR2OPT_INPUT_BANDS"] == "red,green,blue"


# -- robustness -----------------------------------------------------------------------------


def test_translate_inside_a_process_that_holds_more_than_the_budget(make_geotiff, vv_model, tmp_path):
    """Issue 19: ``x = numpy.ones(1.6 GB); translate(...)`` raised 'does not fit ... process already at ...'."""
    held = np.ones((400, 1024, 1024), np.uint8)  # 400 MB touched: more than the whole 300 MB budget below
    db = np.random.default_rng(0).uniform(-20, -5, size=(256, 256)).astype(np.float32)
    r = translate(make_geotiff(db, name="vv_db.tif", descriptions=("VV",)), tmp_path / "o.tif", vv_model,
                  max_memory_mb=300, device="cpu")
    assert (r.width, r.height) == (256, 256) and int(held[-1, -1, -1]) == 1


def test_scene_smaller_than_a_tile(make_geotiff, vv_model, tmp_path):
    db = np.random.default_rng(0).uniform(-20, -5, size=(30, 45)).astype(np.float32)
    r = translate(make_geotiff(db, name="small_VV_db.tif", descriptions=("VV",)), tmp_path / "s.tif", vv_model,
                  tile_size=512, overlap=128, device="cpu")
    assert (r.width, r.height) == (45, 30)
    with rasterio.open(r.path) as out:
        assert (out.read_masks(1) > 0).all()


def test_speckle_filter_and_stochastic_seed(make_geotiff, vv_model, tmp_path):
    rng = np.random.default_rng(0)
    db = (10 * np.log10(0.05 * rng.gamma(4.4, 1 / 4.4, size=(64, 64)))).astype(np.float32)
    src = make_geotiff(db, name="speckled_VV_db.tif", descriptions=("VV",))
    r = translate(src, tmp_path / "lee.tif", vv_model, speckle_filter="lee", speckle_window=5, **FAST)
    with rasterio.open(r.path) as out:
        assert out.tags()["SAR2OPT_SPECKLE_FILTER"] == "lee 5x5"
    outs = []
    model = _tiny_model(0, random_bn=False)  # (with random BN statistics the dropped channels can all be 0 after ReLU)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        rr = translate(src, tmp_path / f"{name}.tif", model, stochastic=True, seed=seed, dtype="float32", **FAST)
        with rasterio.open(rr.path) as out:
            outs.append(out.read())
    assert np.array_equal(outs[0], outs[1]), "same seed, same output"
    assert np.abs(outs[0] - outs[2]).max() > 1e-4, "another seed, other dropout masks"


def test_gcp_scene_end_to_end(tmp_path, vv_model):
    from rasterio.control import GroundControlPoint

    h, w = 120, 100
    gcps = [GroundControlPoint(row=r, col=c, x=3.0 + c * 1e-4, y=45.0 - r * 1e-4, z=0.0)
            for r in (0, 60, 120) for c in (0, 50, 100)]
    path = tmp_path / "S1_gcp_VV_linear.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32", nodata=float("nan"),
                       gcps=gcps, crs=CRS.from_epsg(4326)) as ds:
        ds.write(np.random.default_rng(0).gamma(4.4, 0.05 / 4.4, size=(1, h, w)).astype(np.float32))
        ds.set_band_description(1, "VV")
        ds.update_tags(UNITS="linear")
    r = translate(path, tmp_path / "gcp_rgb.tif", vv_model, **FAST)
    assert r.crs == "EPSG:32631"
    with pytest.raises(GeoreferencingError, match="GCPs only"):
        translate(path, tmp_path / "g2.tif", vv_model, match_input_grid=True, **FAST)


# -- bad input: one clear error, nothing at the output path ------------------------------------


def _nothing_written(folder, name):
    assert not (folder / name).exists()
    assert not (folder / name).with_suffix(".png").exists()
    assert _hidden(folder) == []


def test_missing_input(vv_model, tmp_path):
    with pytest.raises(InputError, match="nope.tif"):
        translate(tmp_path / "nope.tif", tmp_path / "o.tif", vv_model, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_unsupported_format(vv_model, tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(UnsupportedFormatError, match="junk.tif"):
        translate(junk, tmp_path / "o.tif", vv_model, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_no_georeferencing(vv_model, tmp_path):
    path = tmp_path / "plain.tif"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="float32") as ds:
            ds.write(np.full((1, 32, 32), -10.0, np.float32))
            ds.set_band_description(1, "VV")
        with pytest.raises(GeoreferencingError, match="plain.tif"):
            translate(path, tmp_path / "o.tif", vv_model, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_requested_band_missing(make_geotiff, vv_model, tmp_path):
    src = make_geotiff(np.full((32, 32), -10.0, np.float32), name="s_VV_db.tif", descriptions=("VV",))
    with pytest.raises(BandError, match="HH"):
        translate(src, tmp_path / "o.tif", vv_model, bands=("HH",), **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_all_nodata_scene(make_geotiff, vv_model, tmp_path):
    src = make_geotiff(np.full((32, 32), -99.0, np.float32), name="empty_VV_db.tif", nodata=-99.0,
                       descriptions=("VV",))
    with pytest.raises(NoValidDataError, match="empty_VV_db.tif"):
        translate(src, tmp_path / "o.tif", vv_model, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_bounds_outside_the_scene(make_geotiff, vv_model, tmp_path):
    src = make_geotiff(np.full((32, 32), -10.0, np.float32), name="s_VV_db.tif", descriptions=("VV",))
    with pytest.raises(NoValidDataError, match="do not overlap"):
        translate(src, tmp_path / "o.tif", vv_model, bounds=(0, 0, 10, 10), **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_unreadable_checkpoint(make_geotiff, tmp_path):
    src = make_geotiff(np.full((32, 32), -10.0, np.float32), name="s_VV_db.tif", descriptions=("VV",))
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        translate(src, tmp_path / "o.tif", bad, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_existing_output_is_kept_without_overwrite(make_geotiff, vv_model, tmp_path):
    src = make_geotiff(np.full((32, 32), -10.0, np.float32), name="s_VV_db.tif", descriptions=("VV",))
    dst = tmp_path / "o.tif"
    dst.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="o.tif"):
        translate(src, dst, vv_model, overwrite=False, **FAST)
    assert dst.read_bytes() == b"keep me" and _hidden(tmp_path) == []


def test_output_may_not_be_the_input(make_geotiff, vv_model):
    src = make_geotiff(np.full((32, 32), -10.0, np.float32), name="s_VV_db.tif", descriptions=("VV",))
    before = src.read_bytes()
    with pytest.raises(OutputExistsError, match="would overwrite the input"):
        translate(src, src, vv_model, **FAST)
    assert src.read_bytes() == before


@pytest.mark.parametrize("stop", ["cancel", "interrupt"])
def test_cancel_or_interrupt_leaves_nothing(make_geotiff, vv_model, tmp_path, stop):
    db = np.random.default_rng(0).uniform(-20, -5, size=(300, 300)).astype(np.float32)
    src = make_geotiff(db, name="s_VV_db.tif", descriptions=("VV",))
    dst = tmp_path / "o.tif"
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if stop == "interrupt" and fraction > 0.3:
            raise KeyboardInterrupt

    with pytest.raises(CancelledError if stop == "cancel" else KeyboardInterrupt):
        translate(src, dst, vv_model, progress=progress, cancel=lambda: stop == "cancel" and len(calls) >= 2,
                  quicklook=True, **FAST)
    _nothing_written(tmp_path, "o.tif")


def test_options_are_validated_and_overrides_checked():
    with pytest.raises(ValueError, match="dtype"):
        TranslateOptions(dtype="uint16")
    with pytest.raises(ValueError, match="overlap"):
        TranslateOptions(overlap=40)
    with pytest.raises(ValueError, match="match_input_grid"):
        TranslateOptions(match_input_grid=True, dst_crs="EPSG:4326")
    with pytest.raises(TypeError, match="unknown translate option"):
        TranslateOptions().replace(tile=256)
    assert TranslateOptions(bands="HH, HV").bands == ("HH", "HV")


def test_full_size_safe_placeholder_is_no_valid_data(s1_safe, vv_model, tmp_path):
    """The real SAFE's measurement is all zeros: the streaming statistics say so, nothing is written."""
    with pytest.raises(NoValidDataError, match="only nodata"):
        translate(s1_safe, tmp_path / "safe.tif", vv_model, device="cpu")  # planned: FAST's 2 x 512 px tiles
        # with full-width rows of this 28885 px wide scene need more than the budget (refused, issue 19)
    _nothing_written(tmp_path, "safe.tif")


def test_lonlat_input_goes_to_utm_and_back_with_match_input_grid(make_geotiff, vv_model, tmp_path):
    db = np.random.default_rng(0).uniform(-20, -6, size=(60, 80)).astype(np.float32)
    t = from_origin(2.9, 45.02, 0.0002, 0.0002)  # about 16 x 22 m pixels near 3 E 45 N
    src = make_geotiff(db, name="ll_VV_db.tif", crs="EPSG:4326", transform=t, descriptions=("VV",))
    r = translate(src, tmp_path / "utm.tif", vv_model, **FAST)
    assert r.crs == "EPSG:32631"
    with rasterio.open(r.path) as out:
        assert out.res == (10.0, 10.0)
        utm = transform_bounds("EPSG:4326", out.crs, 2.9, 45.008, 2.916, 45.02)
        assert tuple(out.bounds) == pytest.approx(utm, abs=20.0)
    back = translate(src, tmp_path / "ll.tif", vv_model, match_input_grid=True, **FAST)
    with rasterio.open(back.path) as out:
        assert out.crs == CRS.from_epsg(4326) and out.transform.almost_equals(t) and out.shape == (60, 80)
        assert (out.read_masks(1) > 0).mean() > 0.97


def test_c_band_vh_model_on_l_band_palsar2_uses_hv_with_a_warning(tmp_path):
    """PALSAR-2 L2.1 product in the real layout (synthetic DN, written by samples): HH+HV at 6.25 m."""
    from sar2opt_geo.samples.synthetic import write_synthetic_palsar2_l21

    folder = write_synthetic_palsar2_l21(tmp_path / "alos2", size=96)
    g, card = _tiny_model(3, bands=("VH",))
    r = translate(folder, tmp_path / "p2.tif", (g, card), **FAST)
    assert len(r.warnings) >= 1
    text = " ".join(r.warnings)
    assert "L-band" in text and "C-band" in text and "HV" in text
    with rasterio.open(r.path) as out:
        assert out.tags()["SAR2OPT_INPUT_BANDS"] == "HV"
        assert out.res == (10.0, 10.0) and out.width == 60  # 96 px x 6.25 m = 600 m, averaged to 10 m
        assert "average" in out.tags()["SAR2OPT_RESAMPLING"]
    base = translate(folder, tmp_path / "cf.tif", (g, card), dtype="float32", **FAST)
    brighter = translate(folder, tmp_path / "cf2.tif", (g, card), dtype="float32", calibration_factor_db=-80.0, **FAST)
    with rasterio.open(base.path) as a, rasterio.open(brighter.path) as b:
        # a global calibration factor scales linear power, which the scene percentile divides out again
        np.testing.assert_allclose(a.read(), b.read(), atol=2e-3)
    with pytest.raises(BandError, match="strict"):
        translate(folder, tmp_path / "s.tif", (g, card), strict=True, **FAST)


def test_bounds_inside_a_nodata_hole_is_no_valid_data(s1_with_nodata, vv_model, tmp_path):
    with rasterio.open(s1_with_nodata) as src:
        left, top = src.transform.c, src.transform.f
    hole = (left + 40 * 20.0, top - 60 * 20.0, left + 100 * 20.0, top - 30 * 20.0)  # inside rows 20:70, cols 30:110
    with pytest.raises(NoValidDataError, match="no valid input pixel inside"):
        translate(s1_with_nodata, tmp_path / "hole.tif", vv_model, bounds=hole, **FAST)
    _nothing_written(tmp_path, "hole.tif")
