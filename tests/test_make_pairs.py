"""sar2opt pairs: training pairs from a SAR and an optical scene (sar2opt_geo.data.make_pairs) on real data.

The real co-registered pairs of ../shared/data (SEN12MS-CR, BigEarthNet) are taken apart: the
optical side is reprojected here to another CRS and pixel spacing (EPSG:3857 at 7 m, EPSG:4326
at ~7 m), and the builder must put it back onto the SAR grid within 0.5 px.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject
from test_sensors_sentinel2_safe import (
    write_synthetic_s2_safe,  # a sibling test module's synthetic SAFE
)

from sar2opt_geo.data import find_pairs, split_pairs
from sar2opt_geo.data.make_pairs import PairsOptions, make_pairs
from sar2opt_geo.data.pairs import detect_layout
from sar2opt_geo.errors import (
    CancelledError,
    ConfigError,
    DatasetError,
    InputError,
    NoValidDataError,
    OutputExistsError,
)

ROIS = ("ROIs1970_fall_139_p839", "ROIs2017_winter_112_p797")


@pytest.fixture(scope="module")
def sen12(data_dir):
    d = data_dir / "pairs" / "sen12ms_cr"
    assert (d / "s1" / f"{ROIS[0]}.tif").exists()
    return d


@pytest.fixture(scope="module")
def bigearthnet(data_dir):
    return data_dir / "pairs" / "bigearthnet"


def _reproject(rgb, crs, transform, dst, dst_crs, res, shift_m=(0.0, 0.0)):
    """Write ``rgb`` (uint16 reflectance x 10000) reprojected to ``dst_crs`` at ``res``, bands named red, green,
    blue; ``shift_m`` moves its georeferencing by (east, north) metres (a deliberate misregistration)."""
    h, w = rgb.shape[1:]
    left, top = transform.c, transform.f
    t, width, height = calculate_default_transform(crs, dst_crs, w, h, left=left, top=top,
                                                   right=left + w * transform.a, bottom=top + h * transform.e,
                                                   resolution=res)
    out = np.zeros((3, height, width), np.uint16)
    reproject(rgb, out, src_transform=transform, src_crs=crs, dst_transform=t, dst_crs=dst_crs,
              resampling=Resampling.cubic, src_nodata=0, dst_nodata=0)
    t = Affine.translation(*shift_m) * t
    with rasterio.open(dst, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint16", crs=dst_crs,
                       transform=t, nodata=0) as ds:
        ds.write(out)
        for i, n in enumerate(("red", "green", "blue"), 1):
            ds.set_band_description(i, n)
    return dst


def _sen12_optical(sen12, roi, tmp, crs="EPSG:3857", res=7.0, shift_m=(0.0, 0.0), name=None):
    with rasterio.open(sen12 / "s2" / f"{roi}.tif") as s:
        rgb, src_crs, src_t = s.read([4, 3, 2]), s.crs, s.transform
    # the name keeps the Sentinel-2 hint (s2) so that the reader reads reflectance = DN / 10000
    path = _reproject(rgb, src_crs, src_t, tmp / (name or f"{roi}_s2_epsg{crs.split(':')[1]}.tif"), crs, res, shift_m)
    return path, rgb


def _fit_shift(ref, moving, border=8):
    """(dy, dx) px such that ``ref`` shifted by it best matches ``moving`` (least squares, cubic spline)."""
    from scipy import ndimage, optimize

    c = (slice(border, -border), slice(border, -border))

    def cost(p):
        return float(np.mean((ndimage.shift(ref, p, order=3, mode="nearest")[c] - moving[c]) ** 2))

    return optimize.minimize(cost, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-12}).x


def _shifts(out, rgb, n=4):
    """Shifts (px) of the built optical tiles against the original optical on the same window."""
    meta = json.loads((out / "metadata.json").read_text())
    p = meta["scene_pairs"][0]["optical"]["percentiles"]
    scales = np.array([p["red"], p["green"], p["blue"]], np.float32)[:, None, None]
    found = []
    for t in meta["tiles"][:n]:
        with rasterio.open(out / "opt" / f"{t['name']}.tif") as ds:
            built = ds.read().astype(np.float32) / 255
        r, c, size = t["row"], t["col"], built.shape[1]
        orig = np.clip(rgb[:, r:r + size, c:c + size] / 10000 / scales, 0, 1)
        found.append(_fit_shift(orig.mean(0), built.mean(0)))
    return np.array(found)


@pytest.mark.parametrize("roi", ROIS)
def test_sen12ms_optical_in_web_mercator_at_7m_comes_back_onto_the_sar_grid(sen12, roi, tmp_path):
    opt, rgb = _sen12_optical(sen12, roi, tmp_path)
    out = tmp_path / "pairs"
    r = make_pairs(sen12 / "s1" / f"{roi}.tif", opt, out, tile_size=128, stride=64)
    with rasterio.open(sen12 / "s1" / f"{roi}.tif") as s1:
        sar_crs, sar_t, vh_db = s1.crs, s1.transform, s1.read(2)
    assert r.tiles_kept == r.tiles_total == 9 and r.crs == sar_crs.to_string()
    meta = json.loads((out / "metadata.json").read_text())
    assert detect_layout(out) == "pairs"
    # the grid is the SAR's own (10 m, same origin): the tiles sit on its pixels
    for t in meta["tiles"]:
        with rasterio.open(out / "sar" / f"{t['name']}.tif") as ds:
            assert ds.crs == sar_crs and ds.transform == sar_t * Affine.translation(t["col"], t["row"])
            assert list(ds.bounds) == pytest.approx(t["bounds"])
    shifts = _shifts(out, rgb)
    assert np.abs(shifts).max() < 0.5, shifts  # measured: < 0.01 px
    # the SAR tile is the card's rule applied to the real VH: linear / scene p99, clipped, 255 levels
    p99 = meta["scene_pairs"][0]["sar"]["percentiles"]["VH"]
    linear = 10 ** (vh_db.astype(np.float64) / 10)
    assert p99 == pytest.approx(np.percentile(linear, 99), rel=0.006)  # streaming histogram, 0.58 % bins
    t = meta["tiles"][4]
    with rasterio.open(out / "sar" / f"{t['name']}.tif") as ds:
        tile = ds.read(1).astype(int)
        assert ds.descriptions == ("VH",) and ds.dtypes[0] == "uint8"
    expected = np.round(255 * np.clip(linear[t["row"]:t["row"] + 128, t["col"]:t["col"] + 128] / p99, 0, 1))
    assert np.abs(tile - expected).max() <= 1 and (tile == expected).mean() > 0.99


def test_the_builder_measurement_sees_a_misregistration(sen12, tmp_path):
    """Negative control: an optical scene whose georeferencing is 15 m (1.5 px) off comes out 1.5 px off."""
    from rasterio.warp import transform as warp_transform

    with rasterio.open(sen12 / "s1" / f"{ROIS[0]}.tif") as s1:
        (_, lat), = zip(*warp_transform(s1.crs, "EPSG:4326", [(s1.bounds.left + s1.bounds.right) / 2],
                                         [(s1.bounds.bottom + s1.bounds.top) / 2]))
    mercator_m = 15.0 / np.cos(np.radians(lat))  # 15 ground metres in EPSG:3857 units at this latitude
    opt, rgb = _sen12_optical(sen12, ROIS[0], tmp_path, shift_m=(mercator_m, 0.0))
    out = tmp_path / "pairs"
    make_pairs(sen12 / "s1" / f"{ROIS[0]}.tif", opt, out, tile_size=128, stride=64, max_nodata=0.1)
    dx = _shifts(out, rgb, n=2)[:, 1]
    assert dx == pytest.approx([1.5, 1.5], abs=0.1)


def test_sar_tiles_are_exactly_what_translate_feeds_the_bundled_model(sen12, tmp_path):
    from sar2opt_geo.models.loading import load
    from sar2opt_geo.options import TranslateOptions
    from sar2opt_geo.sensors import open_scene
    from sar2opt_geo.translation.plan import plan_translation

    roi = ROIS[1]
    opt, _ = _sen12_optical(sen12, roi, tmp_path)
    out = tmp_path / "pairs"
    make_pairs(sen12 / "s1" / f"{roi}.tif", opt, out, tile_size=128, stride=128)
    meta = json.loads((out / "metadata.json").read_text())
    with open_scene(sen12 / "s1" / f"{roi}.tif") as scene:
        plan = plan_translation(scene, load("sar"), TranslateOptions(device="cpu"))
        assert plan.bands.bands == ("VH",)
        assert meta["scene_pairs"][0]["sar"]["percentiles"]["VH"] == plan.normaliser.scales[0]
        linear = scene.read("VH")
    fed = (plan.normaliser(linear)[0] + 1) / 2  # what translate feeds the model, on the unit scale
    for t in meta["tiles"]:
        with rasterio.open(out / "sar" / f"{t['name']}.tif") as ds:
            stored = ds.read(1).astype(np.float32) / 255
        window = fed[t["row"]:t["row"] + 128, t["col"]:t["col"] + 128]
        np.testing.assert_allclose(stored, window, atol=1e-6)
    assert meta["input"]["normalisation"] == "percentile" and meta["input"]["quantize_levels"] == 255
    assert meta["input"]["bands"] == ["VH"] and meta["input"]["frequency_band"] == "C"


def _bigearthnet_optical(patch, tmp, crs="EPSG:4326", res=6.5e-5):
    files = [next(patch.glob(f"*_{b}.tif")) for b in ("B04", "B03", "B02")]
    bands = []
    for f in files:
        with rasterio.open(f) as ds:
            bands.append(ds.read(1))
            src_crs, src_t = ds.crs, ds.transform
    rgb = np.stack(bands)
    name = files[0].name.replace("_B04.tif", f"_RGB_epsg{crs.split(':')[1]}.tif")  # keeps S2A_MSIL2A_<date>
    return _reproject(rgb, src_crs, src_t, tmp / name, crs, res), rgb


def test_bigearthnet_in_lonlat_two_scene_pairs_appended_one_dataset_split_by_area(bigearthnet, tmp_path):
    out = tmp_path / "pairs"
    results, originals = [], {}
    for k, patch in enumerate(sorted(p for p in bigearthnet.iterdir() if p.is_dir())):
        opt, originals[f"p{k + 1:03d}"] = _bigearthnet_optical(patch, tmp_path)
        r = make_pairs(next(patch.glob("*_VH.tif")), opt, out, tile_size=64, stride=32, append=k > 0, max_days=1)
        results.append(r)
        assert r.pair_id == f"p{k + 1:03d}" and r.tiles_kept >= 4
        # S1 06:47:24, S2 11:33:21 on 2017-06-17 (from the product names)
        assert r.days_apart == pytest.approx((4 * 3600 + 45 * 60 + 57) / 86400, abs=1e-5)
    meta = json.loads((out / "metadata.json").read_text())
    assert [p["id"] for p in meta["scene_pairs"]] == ["p001", "p002"]
    sar = meta["scene_pairs"][0]["sar"]
    assert sar["date"] == "2017-06-17T06:47:24Z" and sar["date_from"].startswith("name")
    assert meta["scene_pairs"][0]["optical"]["date"] == "2017-06-17T11:33:21Z"
    assert meta["scene_pairs"][0]["crs"] == "EPSG:32629"
    pairs = find_pairs(out)
    assert len(pairs) == sum(r.tiles_kept for r in results) == len(meta["tiles"])
    assert {p.group for p in pairs} == {"p001", "p002"}
    train, val = split_pairs(pairs, "area")
    assert train and {p.group for p in val} == {"p001", "p002"}, "an eastern block held out of each scene pair"
    assert all(len(t["bounds"]) == 4 and t["crs"] == "EPSG:32629" for t in meta["tiles"])
    # the lon/lat optical side is back on the SAR grid: tiles of both scene pairs
    for pair in ("p001", "p002"):
        p = next(e for e in meta["scene_pairs"] if e["id"] == pair)["optical"]["percentiles"]
        scales = np.array([p["red"], p["green"], p["blue"]], np.float32)[:, None, None]
        for t in [t for t in meta["tiles"] if t["pair"] == pair][:2]:
            with rasterio.open(out / "opt" / f"{t['name']}.tif") as ds:
                built = ds.read().astype(np.float32) / 255
            rgb = originals[pair]
            orig = np.clip(rgb[:, t["row"]:t["row"] + 64, t["col"]:t["col"] + 64] / 10000 / scales, 0, 1)
            assert np.abs(_fit_shift(orig.mean(0), built.mean(0), border=6)).max() < 0.5


def test_dates_too_far_apart_or_unknown_are_refused_with_max_days(bigearthnet, sen12, tmp_path):
    patch = min(p for p in bigearthnet.iterdir() if p.is_dir())
    opt, _ = _bigearthnet_optical(patch, tmp_path)
    with pytest.raises(InputError, match=r"0\.2 days apart .*--max-days 0\.1"):
        make_pairs(next(patch.glob("*_VH.tif")), opt, tmp_path / "a", tile_size=64, max_days=0.1)
    sopt, _ = _sen12_optical(sen12, ROIS[0], tmp_path)
    with pytest.raises(InputError, match="acquisition date unknown.*--sar-date"):
        make_pairs(sen12 / "s1" / f"{ROIS[0]}.tif", sopt, tmp_path / "b", tile_size=128, max_days=5)
    r = make_pairs(sen12 / "s1" / f"{ROIS[0]}.tif", sopt, tmp_path / "c", tile_size=128, max_days=5,
                   sar_date="2019-10-01", optical_date="2019-10-04")
    assert r.days_apart == 3.0
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_no_overlap_all_cloud_and_wrong_order_get_one_line_and_leave_nothing(sen12, tmp_path):
    s1a = sen12 / "s1" / f"{ROIS[0]}.tif"
    opt_b, _ = _sen12_optical(sen12, ROIS[1], tmp_path)
    with pytest.raises(NoValidDataError, match="do not overlap") as e:
        make_pairs(s1a, opt_b, tmp_path / "o", tile_size=128)
    assert "\n" not in str(e.value)
    # synthetic: the real optical patch painted bright white (a cloud over all of it)
    with rasterio.open(sen12 / "s2" / f"{ROIS[0]}.tif") as s:
        profile, rgb = s.profile, s.read([4, 3, 2])
    rgb[:] = 8000
    profile.update(count=3)
    white = tmp_path / "synthetic_white_s2.tif"
    with rasterio.open(white, "w", **profile) as ds:
        ds.write(rgb)
        for i, n in enumerate(("red", "green", "blue"), 1):
            ds.set_band_description(i, n)
    with pytest.raises(NoValidDataError, match="all 9 tiles of 128 px are cloudy"):
        make_pairs(s1a, white, tmp_path / "o", tile_size=128, stride=64)
    with pytest.raises(InputError, match="not SAR; give the SAR scene first"):
        make_pairs(white, s1a, tmp_path / "o", tile_size=128)
    with pytest.raises(NoValidDataError, match="smaller than one tile of 512 px"):
        make_pairs(s1a, sen12 / "s2" / f"{ROIS[0]}.tif", tmp_path / "o", tile_size=512)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([opt_b.name, white.name]), "nothing else written"


def test_existing_dataset_append_duplicate_and_cancel_leave_it_unchanged(sen12, tmp_path):
    s1 = sen12 / "s1" / f"{ROIS[0]}.tif"
    opt, _ = _sen12_optical(sen12, ROIS[0], tmp_path)
    out = tmp_path / "pairs"
    make_pairs(s1, opt, out, tile_size=128)
    before = (out / "metadata.json").read_text()
    files = sorted(p.name for p in (out / "sar").iterdir())
    with pytest.raises(OutputExistsError, match="--append"):
        make_pairs(s1, opt, out, tile_size=128)
    with pytest.raises(DatasetError, match="already holds this scene pair .* as p001"):
        make_pairs(s1, opt, out, tile_size=128, append=True)
    with pytest.raises(DatasetError, match="tiles of 128 px, this run percentile tiles of 64 px"):
        make_pairs(sen12 / "s1" / f"{ROIS[1]}.tif", _sen12_optical(sen12, ROIS[1], tmp_path)[0], out, tile_size=64,
                   append=True)
    calls = []
    with pytest.raises(CancelledError):
        make_pairs(sen12 / "s1" / f"{ROIS[1]}.tif", tmp_path / f"{ROIS[1]}_s2_epsg3857.tif", out, tile_size=128,
                   append=True, progress=lambda f, m: calls.append(f), cancel=lambda: max(calls, default=0) > 0.7)
    assert (out / "metadata.json").read_text() == before
    assert sorted(p.name for p in (out / "sar").iterdir()) == files
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    r = make_pairs(sen12 / "s1" / f"{ROIS[1]}.tif", tmp_path / f"{ROIS[1]}_s2_epsg3857.tif", out, tile_size=128,
                   append=True)
    meta = json.loads((out / "metadata.json").read_text())
    assert r.pair_id == "p002" and {t["crs"] for t in meta["tiles"]} == {"EPSG:32650", "EPSG:32631"}


def test_options_are_checked():
    for bad in ({"tile_size": 100}, {"max_nodata": 2}, {"optical_bands": "red,green"}, {"stride": 0},
                {"pixel_spacing_m": -1}):
        with pytest.raises(ConfigError):
            PairsOptions(**bad)
    assert PairsOptions(tile_size=64).tile_stride == 64
    assert PairsOptions(stride=32).replace(tile_size=64).tile_stride == 32
    assert PairsOptions().replace(tile_size=64).tile_stride == 64, "regression: replace kept the old default stride"


def test_training_datasets_read_the_pairs_in_the_card_domain(sen12, tmp_path):
    from sar2opt_geo.data.datasets import PairDataset
    from sar2opt_geo.data.make_pairs import pairs_card

    opt, _ = _sen12_optical(sen12, ROIS[0], tmp_path)
    out = tmp_path / "pairs"
    make_pairs(sen12 / "s1" / f"{ROIS[0]}.tif", opt, out, tile_size=128)
    pairs = find_pairs(out, sar_bands=None)
    ds = PairDataset(pairs, crop_size=None, random_crops=False, cache=False)
    cond, target = ds.load(0)
    with rasterio.open(pairs[0].condition.files[0]) as s:
        assert np.array_equal(cond, s.read().astype(np.float32) / 255)
    assert target.shape == (3, 128, 128) and 0 <= target.min() and target.max() <= 1
    card = pairs_card(out, "ft")
    assert card.input.bands == ("VH",) and card.input.sensor == "Sentinel-1" and card.input.pixel_spacing_m == 10
    with pytest.raises(DatasetError, match="not stored; the pairs hold VH"):
        find_pairs(out, sar_bands=("HH",))


def test_cli_pairs_json(sen12, tmp_path, capsys):
    from sar2opt_geo.cli.main import main

    opt, _ = _sen12_optical(sen12, ROIS[1], tmp_path)
    out = tmp_path / "cli"
    rc = main(["pairs", str(sen12 / "s1" / f"{ROIS[1]}.tif"), str(opt), str(out), "--tile", "128", "--stride", "64",
               "--progress", "json"])
    assert rc == 0
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"done"' in line][-1]
    assert done["tiles_kept"] == 9 and done["outputs"]["OUTPUT"] == str(out.resolve())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["scene_pairs"][0]["command"].startswith("sar2opt pairs ") and "--tile 128" in \
        meta["scene_pairs"][0]["command"]
    assert main(["pairs", str(opt), str(sen12 / "s1" / f"{ROIS[1]}.tif"), str(tmp_path / "x"), "--tile", "128"]) == 1
    assert "sar2opt: error:" in capsys.readouterr().err


def test_scl_rejects_cloud_classes_and_is_found_in_an_l2a_safe(sen12, tmp_path):
    from sar2opt_geo.data.cloudmask import find_scl
    from sar2opt_geo.sensors import open_scene

    s1 = sen12 / "s1" / f"{ROIS[1]}.tif"
    with rasterio.open(s1) as ds:
        crs, t = ds.crs, ds.transform
    scl = np.full((128, 128), 4, np.uint8)  # synthetic SCL at 20 m: vegetation, cloud (9) east of column 96
    scl[:, 96:] = 9
    scl_path = tmp_path / "synthetic_SCL_20m.tif"
    with rasterio.open(scl_path, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint8", crs=crs,
                       transform=Affine(20.0, 0, t.c, 0, -20.0, t.f)) as ds:
        ds.write(scl, 1)
    opt, _ = _sen12_optical(sen12, ROIS[1], tmp_path)
    r = make_pairs(s1, opt, tmp_path / "pairs", tile_size=64, stride=64, scl=scl_path)
    assert "SCL" in r.cloud_test and "synthetic_SCL_20m.tif" in r.cloud_test
    meta = json.loads((tmp_path / "pairs" / "metadata.json").read_text())
    kept = {t["col"] for t in meta["tiles"]}
    assert kept == {0, 64, 128} and r.rejected_cloud == 4, "the eastern column (SCL 9 from px 192) is cloud"

    safe = write_synthetic_s2_safe(tmp_path)
    with open_scene(safe) as scene:
        assert find_scl(scene) is None, "no SCL band in that SAFE"
    red = next(safe.rglob("*_B04_10m.jp2"))  # add a synthetic SCL beside the 10 m bands
    target = red.parent.parent / "R20m" / red.name.replace("_B04_10m", "_SCL_20m")
    with rasterio.open(target, "w", driver="JP2OpenJPEG", width=20, height=20, count=1, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5500000.0), QUALITY="100",
                       REVERSIBLE="YES") as ds:
        ds.write(np.full((20, 20), 9, np.uint8), 1)
    with open_scene(safe) as scene:
        assert find_scl(scene) == str(target)


def test_db_card_stores_db_and_reflectance_and_trains_in_that_domain(sen12, tmp_path):
    import torch

    from sar2opt_geo.data.datasets import read_unit
    from sar2opt_geo.models import UNetGenerator
    from sar2opt_geo.models.checkpoint import save_generator
    from sar2opt_geo.training.cards import card_for_dataset

    card = card_for_dataset("sen12ms-cr", "sar", ("VV",), "tiny-db")
    torch.manual_seed(0)
    ckpt = save_generator(UNetGenerator(1, 3, width=0.0625),
                          card.replace(architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.0625}),
                          tmp_path / "db.safetensors")
    opt, _ = _sen12_optical(sen12, ROIS[1], tmp_path)
    out = tmp_path / "pairs"
    make_pairs(sen12 / "s1" / f"{ROIS[1]}.tif", opt, out, tile_size=128, stride=128, model=ckpt)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["storage"]["rule"] == "db" and meta["input"]["bands"] == ["VV"]
    assert meta["input"]["normalisation"] == "db_clip"
    t = meta["tiles"][0]
    with rasterio.open(out / "sar" / f"{t['name']}.tif") as ds, \
            rasterio.open(sen12 / "s1" / f"{ROIS[1]}.tif") as s1:
        assert ds.dtypes[0] == "float32"
        np.testing.assert_allclose(ds.read(1), s1.read(1)[t["row"]:t["row"] + 128, t["col"]:t["col"] + 128],
                                   atol=2e-5)
    with rasterio.open(out / "opt" / f"{t['name']}.tif") as ds:
        assert ds.dtypes[0] == "uint16"
    pair = find_pairs(out)[0]
    assert (pair.condition.scaling, pair.target.scaling) == ("db_clip", "reflectance")
    assert read_unit(pair.condition).shape == (1, 128, 128)


def test_acquisition_dates_from_names_metadata_and_overrides():
    from types import SimpleNamespace

    from sar2opt_geo.data.acquisition import acquisition_time, parse_time

    def scene(name, **meta):
        return SimpleNamespace(path=name, product_id=name, metadata=meta)

    cases = {
        "S1A_IW_GRDH_1SDV_20170617T064724_20170617T064749_017048_01C73A_5E3B.SAFE": "2017-06-17T06:47:24",
        "IMG-HV-ALOS2015976960-140909-FBDR2.1GUD.tif": "2014-09-09T00:00:00",
        "LC08_L1TP_224078_20200518_20200518_01_RT.TIF": "2020-05-18T00:00:00",
    }
    for name, want in cases.items():
        t, where = acquisition_time(scene(name))
        assert t.isoformat().startswith(want) and where.startswith("name"), name
    t, where = acquisition_time(scene("x.tif", start_time="2021-12-23T05:11:22.123456789"))
    assert t.isoformat() == "2021-12-23T05:11:22.123456+00:00" and where == "reader metadata start_time"
    assert acquisition_time(scene("ROIs1970_fall_139_p839.tif")) == (None, "unknown")
    assert parse_time("20140909").year == 2014 and parse_time("2014:09:09 10:00:00").hour == 10
    with pytest.raises(ConfigError, match="not understood"):
        acquisition_time(scene("x"), "yesterday")


def test_rgb_cloud_test_flags_white_bright_and_saturated_only():
    from sar2opt_geo.data.cloudmask import rgb_test

    px = np.array([[0.05, 0.08, 0.04], [0.5, 0.52, 0.55], [0.45, 0.30, 0.15], [1.2, 0.9, 0.9]], np.float32)
    rgb = px.T.reshape(3, 1, 4)  # vegetation, white cloud, bright orange sand, saturated
    assert rgb_test(rgb, reflectance=True)[0].tolist() == [False, True, False, True]
    dn = np.array([[10, 255, 40]], np.float32).T.reshape(3, 1, 1)
    assert rgb_test(dn, reflectance=False, dn_max=255)[0].tolist() == [True]
    assert not rgb_test(dn, reflectance=False, dn_max=None).any()


def test_synthetic_palsar2_l21_gives_l_band_hv_pairs_at_10m(tmp_path):
    """A PALSAR-2 L2.1 product folder (synthetic: no real one in ../shared/data) at 6.25 m in UTM 54N,
    paired with an optical raster in lon/lat: HV is chosen for the VH model, averaged to 10 m."""
    from sar2opt_geo.samples.synthetic import write_synthetic_palsar2_l21
    from sar2opt_geo.sensors import open_scene

    product = write_synthetic_palsar2_l21(tmp_path / "palsar2", size=256)
    with open_scene(product) as scene:
        crs, t = scene.crs, scene.transform
    left, top = t.c, t.f
    rng = np.random.default_rng(0)
    rgb = (rng.uniform(300, 2000, size=(3, 200, 200))).astype(np.uint16)  # synthetic optical, 8 m, then lon/lat
    (tmp_path / "opt" / "s2").mkdir(parents=True)  # the reader takes SAR words in the folder names above as hints
    opt = _reproject(rgb, crs, Affine(8.0, 0, left - 8, 0, -8.0, top + 8),
                     tmp_path / "opt" / "s2" / "synthetic_s2_lonlat.tif", "EPSG:4326", 8e-5)
    r = make_pairs(product, opt, tmp_path / "pairs", tile_size=64, max_nodata=0.05)
    meta = json.loads((tmp_path / "pairs" / "metadata.json").read_text())
    d = meta["input"]
    assert (d["sensor"], d["bands"], d["frequency_band"], d["pixel_spacing_m"]) == ("ALOS-2 PALSAR-2", ["HV"], "L", 10.0)
    sar = meta["scene_pairs"][0]["sar"]
    assert sar["date"].startswith("2020-01-05") and "observation_date" in sar["date_from"]
    assert sar["resampling"].startswith("average resampling of linear values from 6.25 m to 10 m")
    assert r.crs == crs.to_string() and r.tiles_kept >= 3
    with rasterio.open(tmp_path / "pairs" / "sar" / f"{meta['tiles'][0]['name']}.tif") as ds:
        assert ds.res == (10.0, 10.0) and ds.descriptions == ("HV",)
    both = make_pairs(product, opt, tmp_path / "both", tile_size=64, max_nodata=0.05, sar_bands="HH,HV")
    assert both.tiles_kept == r.tiles_kept
    assert json.loads((tmp_path / "both" / "metadata.json").read_text())["input"]["bands"] == ["HH", "HV"]
