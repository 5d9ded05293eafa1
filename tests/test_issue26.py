"""Issue 26: multi-scale evaluation, several data folders, input-domain augmentation, --keep-structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from sar2opt_geo.cli.main import main
from sar2opt_geo.training import metrics
from sar2opt_geo.training.evaluate import score_images


@pytest.fixture
def la_two_folders(la_pairs, tmp_path):
    """Four real LA tiles of one scene split over two folders (links into ../shared/data); 262 is the easternmost."""
    roots = []
    for name, keys in (("a", ("259", "262")), ("b", ("271", "273"))):
        root = tmp_path / name
        for side in ("sar", "opt"):
            (root / side).mkdir(parents=True)
            for k in keys:
                (root / side / f"{k}.tif").symlink_to(la_pairs / side / f"{k}.tif")
        roots.append(root)
    return roots


# ---- metrics ------------------------------------------------------------------------------------

def test_grad_r_2x2_matches_a_scipy_reference():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    a, b = rng.random((3, 40, 36)).astype(np.float32), rng.random((3, 40, 36)).astype(np.float32)
    b = 0.5 * b + 0.5 * a  # correlated
    got = float(metrics.grad_r(torch.from_numpy(a)[None], torch.from_numpy(b)[None], pool=2)[0])

    def mag(img):
        lum = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        lum = lum.reshape(20, 2, 18, 2).mean((1, 3)).astype(np.float64)
        g = np.hypot(ndimage.sobel(lum, 1), ndimage.sobel(lum, 0))
        return g[1:-1, 1:-1].ravel()

    want = np.corrcoef(mag(a), mag(b))[0, 1]
    assert got == pytest.approx(want, abs=1e-5)
    assert float(metrics.grad_r(torch.from_numpy(a)[None], torch.from_numpy(a)[None], pool=2)[0]) == pytest.approx(1.0)


def test_block_mean_and_contrast_ratio():
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    assert metrics.block_mean(x, 4).shape == (1, 1, 2, 2)
    assert float(metrics.block_mean(x, 4)[0, 0, 0, 0]) == pytest.approx(np.arange(64).reshape(8, 8)[:4, :4].mean())
    rgb = torch.rand(2, 3, 16, 16)
    assert torch.allclose(metrics.contrast_ratio(0.5 * rgb, rgb), torch.full((2,), 0.5), atol=1e-6)
    flat = torch.full_like(rgb, 0.4)
    assert torch.all(metrics.contrast_ratio(flat, rgb) == 0)


def test_score_images_reports_every_scale_and_nan_where_an_image_is_too_small():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 120, 120)
    rows = score_images(target.clone(), target, target[:, :1], pixel_m=10.0)
    r = rows[0]
    assert r["ssim_80m"] == pytest.approx(1.0) and r["contrast"] == pytest.approx(1.0) and r["grad_r2"] == pytest.approx(1.0)
    assert np.isnan(r["ssim_160m"])  # 120 px / 16 = 7 blocks: under SSIM's 11 px window
    assert r["psnr_160m"] == np.inf and np.isfinite(r["input_grad_r2"]) and np.isfinite(r["input_db_grad_r2"])
    flat = score_images(torch.full_like(target, 0.5), target)[0]
    assert flat["grad_r2"] == 0 and flat["contrast"] == 0 and "input_grad_r2" not in flat


# ---- evaluate: several folders, the card's domain, union split ---------------------------------

def test_evaluate_scores_several_folders_one_row_each_in_the_models_domain(data_dir, tmp_path, capsys):
    s12, ben = data_dir / "pairs" / "sen12ms_cr", data_dir / "pairs" / "bigearthnet"
    out = tmp_path / "m.json"
    assert main(["evaluate", "sar", str(s12), str(ben), "--per-image", "-o", str(out), "--progress", "none"]) == 0
    res = json.loads(out.read_text())
    assert [f["data"]["layout"] for f in res["folders"]] == ["sen12ms-cr", "bigearthnet"]
    for f in res["folders"]:
        assert f["images"] == 2 and len(f["per_image"]) == 2
        for k in ("psnr_80m", "ssim_80m", "psnr_160m", "grad_r2", "contrast"):
            assert k in f["model_metrics"] and k in f["baseline_constant_colour"]
        assert f["baseline_constant_colour"]["contrast"] == 0 and 0 < f["input_metrics"]["grad_r2"] < 1
    printed = capsys.readouterr().out
    assert "sen12ms_cr" in printed and "bigearthnet" in printed and "input in dB" in printed and "n/a" in printed

    # the percentile card is fed as the engine feeds it: dB -> linear / scene p99, quantised to 8 bits
    from sar2opt_geo.data import PairDataset, find_pairs
    from sar2opt_geo.data.pairs import pairs_in_card_domain

    pairs = pairs_in_card_domain(find_pairs(s12, "sen12ms-cr", "sar", ("VH",)), "percentile", "band / scene 99th percentile")
    cond = PairDataset(pairs, None, random_crops=False).load(0)[0][0]
    with rasterio.open(pairs[0].condition.files[0]) as src:
        lin = 10.0 ** (src.read(2).astype(np.float64) / 10.0)
    want = np.round(np.clip(lin / np.percentile(lin, 99), 0, 1) * 255) / 255
    assert np.abs(cond - want).max() < 1.5 / 255


def test_evaluate_with_a_split_holds_out_the_union_of_the_folders(la_two_folders, tmp_path):
    a, b = la_two_folders
    out = tmp_path / "m.json"
    assert main(["evaluate", "sar", str(a), str(b), "--split", "area", "--val-crop", "128", "-o", str(out),
                 "--progress", "none"]) == 0
    res = json.loads(out.read_text())
    # b alone would hold out its own easternmost tile; over the union it holds out none (no row for it)
    assert "folders" not in res and res["pairs"] == ["262"] and res["data"]["split"] == "area (over all folders)"


# ---- training on several folders, input-domain augmentation -------------------------------------

def test_train_on_two_folders_splits_their_union(la_two_folders, tmp_path):
    from sar2opt_geo.models.checkpoint import read_card

    a, b = la_two_folders
    rc = main(["train", str(a), str(b), str(tmp_path / "run"), "--mode", "colorize", "--epochs", "1", "--width", "0.125",
               "--crop-size", "64", "--batch-size", "4", "--val-crop", "64", "--threads", "1", "--progress", "none",
               "--export", str(tmp_path / "g.safetensors")])
    assert rc == 0
    card = read_card(tmp_path / "g.safetensors")
    data = card.training["data"]
    assert data["validation_pairs"] == ["262"] and sorted(data["train_pairs"]) == ["259", "271", "273"]
    assert data["root"] == [str(a.resolve()), str(b.resolve())]
    assert f" {a} {b} " in card.training["command"]  # the recorded command names both folders


def test_train_refuses_folders_of_different_layouts(la_two_folders, data_dir, tmp_path, capsys):
    rc = main(["train", str(la_two_folders[0]), str(data_dir / "pairs" / "sen12ms_cr"), str(tmp_path / "run"),
               "--epochs", "1", "--progress", "none"])
    err = capsys.readouterr().err
    assert rc != 0 and "different layouts" in err and len(err.strip().splitlines()) == 1


def test_db_gamma_augmentation_changes_contrast_on_the_db_scale_and_leaves_other_streams_alone():
    from sar2opt_geo.data.augment import SpeckleAugment
    from sar2opt_geo.errors import ConfigError

    x = np.array([[[1.0, 0.1, 0.01]]], dtype=np.float32)
    plain = SpeckleAugment(probability=0.0, gain_db=0.0, quantize_levels=None)
    assert np.array_equal(plain(x, np.random.default_rng(1)), x)
    # without db_gamma nothing more is drawn: the stream of the existing recipe is unchanged
    old = SpeckleAugment(probability=0.5, gain_db=2.0)
    assert np.array_equal(old(x, np.random.default_rng(7)), SpeckleAugment(probability=0.5, gain_db=2.0,
                                                                            db_gamma=(1.0, 1.0))(x, np.random.default_rng(7)))
    g = SpeckleAugment(probability=0.0, gain_db=0.0, db_gamma=(2.0, 2.0), quantize_levels=None)
    y = g(x, np.random.default_rng(1))
    assert np.allclose(10 * np.log10(y), 2.0 * 10 * np.log10(x), atol=1e-4)  # -10 dB -> -20 dB, -20 -> -40
    gdb = SpeckleAugment(probability=0.0, gain_db=0.0, db_gamma=(0.5, 0.5), domain="db", db_range=(-25.0, 0.0),
                         quantize_levels=None)
    assert np.allclose(gdb(np.array([[[0.6]]], np.float32), np.random.default_rng(1)), 0.8)  # -10 dB -> -5 dB
    with pytest.raises(ConfigError, match="db_gamma"):
        SpeckleAugment(db_gamma=(1.5, 1.0))
    with pytest.raises(SystemExit):
        main(["train", "x", "y", "--aug-db-gamma", "2"])


# ---- --keep-structure ---------------------------------------------------------------------------

def test_structure_detail_is_zero_on_flat_input_and_local():
    from sar2opt_geo.engine.structure import RADIUS_PX, structure_detail

    flat = torch.full((1, 1, 96, 96), 0.3)
    assert torch.abs(structure_detail(flat)).max() < 1e-6
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((1, 1, 160, 160)).astype(np.float32))
    b = a.clone()
    b[..., :, 120:] = 0.9  # change the input from column 120 on
    da, db = structure_detail(a), structure_detail(b)
    assert torch.equal(da[..., :, : 120 - RADIUS_PX], db[..., :, : 120 - RADIUS_PX])
    assert not torch.equal(da[..., :, 120 - RADIUS_PX + 4:], db[..., :, 120 - RADIUS_PX + 4:])
    # a bright object above its neighbourhood brightens the output
    spot = torch.full((1, 1, 64, 64), 0.1)
    spot[..., 30:34, 30:34] = 1.0
    assert structure_detail(spot)[0, 0, 32, 32] > 0.3


def test_keep_structure_translate_is_tiling_independent_tagged_and_adds_the_sars_detail(tmp_path):
    from sar2opt_geo import translate
    from sar2opt_geo.samples.demo import SAMPLE_DIR

    scene = SAMPLE_DIR / "S1A_IW_GRDH_20201107_VH_la156_512px.tif"
    outs = {}
    for name, kw in (("t128", {"tile_size": 128, "overlap": 96}), ("t256", {"tile_size": 256, "overlap": 96}),
                     ("off", {"tile_size": 256, "overlap": 96, "keep_structure": False})):
        kw = {"keep_structure": True, **kw}
        translate(scene, tmp_path / f"{name}.tif", dtype="float32", precision="fp32", **kw)
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            outs[name] = (src.read(), src.tags())
    a, b, off = outs["t128"][0], outs["t256"][0], outs["off"][0]
    assert np.nanmax(np.abs(a - b)) < 1e-5  # the detail reaches 32 px, inside the 48 px margin
    assert "strength 1 " in outs["t128"][1]["SAR2OPT_KEEP_STRUCTURE"] and "SAR2OPT_KEEP_STRUCTURE" not in outs["off"][1]
    lum = lambda x: 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    assert np.nanstd(lum(a)) > 1.3 * np.nanstd(lum(off))  # more contrast than the model's haze
    # block means over 160 m (16 px) move far less than pixels: the model's layout stays
    blocks = lambda x: lum(x)[:512, :512].reshape(32, 16, 32, 16).mean((1, 3))
    moved_blocks, moved_pixels = np.nanmean(np.abs(blocks(a) - blocks(off))), np.nanmean(np.abs(lum(a) - lum(off)))
    assert moved_blocks < 0.03 and moved_blocks < 0.4 * moved_pixels, (moved_blocks, moved_pixels)


def test_structure_strength_is_checked():
    from sar2opt_geo.errors import ConfigError
    from sar2opt_geo.options import TranslateOptions

    with pytest.raises(ConfigError, match="structure_strength"):
        TranslateOptions(structure_strength=-1)
    assert TranslateOptions(keep_structure=True, structure_strength=0.8).structure_strength == 0.8
