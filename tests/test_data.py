"""Pairs on disk, datasets and splits (sar2opt_geo.data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import from_origin

from sar2opt_geo import normalize
from sar2opt_geo.data import PairDataset, find_pairs, split_pairs
from sar2opt_geo.data.pairs import find_article_pairs, find_sen1_2_pairs
from sar2opt_geo.data.splits import split_by_area, split_by_scene, tile_centre_lonlat
from sar2opt_geo.errors import DatasetError

# ---------------------------------------------------------------- pairing


def _png(path: Path, value: int, bands: int = 1, size: int = 32) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size, size, bands) if bands > 1 else (size, size), value, np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _sen1_2_tree(root: Path, patches=(9, 10, 100)) -> None:
    # pixel values encode the patch number, so a pairing by sort order would be visible
    for k in patches:
        _png(root / "ROIs1158_spring" / "s1_7" / f"ROIs1158_spring_s1_7_p{k}.png", k)
        _png(root / "ROIs1158_spring" / "s2_7" / f"ROIs1158_spring_s2_7_p{k}.png", k, bands=3)


def test_sen1_2_pairs_are_matched_by_name(tmp_path):
    _sen1_2_tree(tmp_path)
    pairs = find_pairs(tmp_path)  # auto-detects sen1-2
    assert len(pairs) == 3
    ds = PairDataset(pairs, crop_size=None, random_crops=False)
    for i, p in enumerate(pairs):
        k = int(p.key.rsplit("_p", 1)[1])
        assert p.condition.files[0].name.endswith(f"_s1_7_p{k}.png")
        assert p.target.files[0].name.endswith(f"_s2_7_p{k}.png")
        c, t = ds.load(i)
        assert np.allclose(c * 255, k, atol=0.1) and np.allclose(t * 255, k, atol=0.1)  # float16 cache
        assert p.group == "ROIs1158_spring_7"


def test_sen1_2_unmatched_file_is_refused(tmp_path):
    _sen1_2_tree(tmp_path)
    _png(tmp_path / "ROIs1158_spring" / "s2_7" / "ROIs1158_spring_s2_7_p55.png", 1, bands=3)
    with pytest.raises(DatasetError, match="p55"):
        find_sen1_2_pairs(tmp_path)
    (tmp_path / "ROIs1158_spring" / "s2_7" / "ROIs1158_spring_s2_7_p55.png").unlink()
    (tmp_path / "ROIs1158_spring" / "s2_7" / "ROIs1158_spring_s2_7_p9.png").unlink()
    with pytest.raises(DatasetError, match="without a partner"):
        find_sen1_2_pairs(tmp_path)


def test_article_layout_pairs_by_class_and_name(tmp_path):
    for cls in ("agri", "urban"):
        for k in (3, 20):
            _png(tmp_path / "s1" / cls / f"ROIs1970_fall_s1_8_p{k}.png", k)
            _png(tmp_path / "s2" / cls / f"ROIs1970_fall_s2_8_p{k}.png", k, bands=3)
    pairs = find_article_pairs(tmp_path)
    assert len(pairs) == 4
    assert all(p.target.files[0].parent.name == p.condition.files[0].parent.name for p in pairs)
    assert {p.group for p in pairs} == {"agri/ROIs1970_fall_8", "urban/ROIs1970_fall_8"}
    _png(tmp_path / "s1" / "urban" / "ROIs1970_fall_s1_8_p99.png", 1)
    with pytest.raises(DatasetError, match="p99"):
        find_article_pairs(tmp_path)


def test_la_pairs_real(la_pairs):
    pairs = find_pairs(la_pairs)
    assert len(pairs) == 40
    for p in pairs:
        assert p.condition.files[0].stem == p.target.files[0].stem == p.key
        assert p.condition.files[0].parent.name == "sar" and p.target.files[0].parent.name == "opt"
    assert len({p.group for p in pairs}) == 3  # three Sentinel-1 / Sentinel-2 scene combinations


def test_misregistered_geotiff_pair_names_both_files(tmp_path, make_geotiff):
    (tmp_path / "sar").mkdir()
    (tmp_path / "opt").mkdir()
    make_geotiff(np.zeros((1, 32, 32), np.uint8), name="sar/001.tif")
    make_geotiff(np.zeros((3, 32, 32), np.uint8), name="opt/001.tif",
                 transform=from_origin(500_010.0, 4_600_000.0, 10.0, 10.0))  # shifted one pixel
    with pytest.raises(DatasetError) as err:
        find_pairs(tmp_path, layout="la")
    assert "sar/001.tif" in str(err.value) and "opt/001.tif" in str(err.value) and "transform" in str(err.value)


def test_geotiff_layouts_real(data_dir):
    s12 = find_pairs(data_dir / "pairs" / "sen12ms_cr")
    ben = find_pairs(data_dir / "pairs" / "bigearthnet", sar_bands=("VV",))
    assert [p.key for p in s12] == ["ROIs1970_fall_139_p839", "ROIs2017_winter_112_p797"]
    assert s12[0].condition.bands == (2,) and s12[0].target.bands == (4, 3, 2)
    assert all(p.condition.files[0].name.endswith("_VV.tif") for p in ben)
    for pairs in (s12, ben):
        s = PairDataset(pairs, crop_size=64, seed=1)[0]
        assert s["condition"].shape == (1, 64, 64) and s["target"].shape == (3, 64, 64)
        for t in (s["condition"], s["target"]):
            assert t.min() >= -1 and t.max() <= 1 and t.std() > 0  # real signal in the model domain


# ---------------------------------------------------------------- datasets


def test_crops_are_deterministic_per_epoch_and_augment_both_sides(la_pairs):
    pairs = find_pairs(la_pairs, mode="colorize")[:2]
    ds = PairDataset(pairs, crop_size=64, crops_per_image=3, augment=True, seed=5)
    a, b = ds[4], ds[4]
    assert torch.equal(a["target"], b["target"])
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["target"], a["target"])
    # colourisation: the condition is the gray of the target, whatever the flips/rotations
    for i in range(len(ds)):
        s = ds[i]
        t = normalize.model_to_unit(s["target"]).numpy()
        gray = normalize.unit_to_model(normalize.gray_from_rgb(t[0], t[1], t[2]))
        np.testing.assert_allclose(s["condition"][0].numpy(), gray, atol=2e-3)  # float16 cache


def test_validation_dataset_uses_whole_tiles_cut_to_16(la_pairs):
    ds = PairDataset(find_pairs(la_pairs)[:1], crop_size=None, random_crops=False)
    s = ds[0]
    assert s["condition"].shape == (1, 1024, 1024) and s["target"].shape == (3, 1024, 1024)
    with pytest.raises(DatasetError, match="multiple of 16"):
        PairDataset(find_pairs(la_pairs)[:1], crop_size=100)


# ---------------------------------------------------------------- splits


def test_area_split_holds_out_the_east_of_every_scene(la_pairs):
    pairs = find_pairs(la_pairs)
    train, val = split_pairs(pairs)  # auto -> area
    assert {p.key for p in train}.isdisjoint({p.key for p in val})
    assert len(train) + len(val) == 40 and 0.15 <= len(val) / 40 <= 0.3
    for scene in {p.group for p in pairs}:
        tr = [tile_centre_lonlat(p)[0] for p in train if p.group == scene]
        va = [tile_centre_lonlat(p)[0] for p in val if p.group == scene]
        assert va and tr and min(va) > max(tr)  # a spatially separate block to the east


def test_scene_split_keeps_scenes_whole(tmp_path):
    for roi, n in (("ROIs1158_spring", 1), ("ROIs1158_spring", 2), ("ROIs1970_fall", 3)):
        for k in range(4):
            _png(tmp_path / roi / f"s1_{n}" / f"{roi}_s1_{n}_p{k}.png", k)
            _png(tmp_path / roi / f"s2_{n}" / f"{roi}_s2_{n}_p{k}.png", k, bands=3)
    pairs = find_pairs(tmp_path)
    train, val = split_pairs(pairs, "auto", 0.3)  # not georeferenced -> by scene
    assert val and train
    assert {p.group for p in train}.isdisjoint({p.group for p in val})
    assert split_by_scene(pairs, 0.3) == (train, val)  # stable, independent of order
    assert split_by_scene(list(reversed(pairs)), 0.3)[1] == list(reversed(val))
    with pytest.raises(DatasetError, match="georeferenced"):
        split_by_area(pairs)


def test_colourisation_images_read_band_order_from_metadata(data_dir, make_geotiff):
    l7 = find_pairs(data_dir / "optical" / "landsat7_RGB.byte.tif", mode="colorize")
    assert l7[0].condition is None and l7[0].target.bands == (1, 2, 3)  # colour interpretation red, green, blue
    s = PairDataset(l7, crop_size=64, seed=0)[0]
    assert s["condition"].shape == (1, 64, 64) and s["target"].shape == (3, 64, 64)
    # a blue, green, red file with band descriptions: red is band 3
    bgr = make_geotiff(np.arange(3 * 32 * 32, dtype=np.uint16).reshape(3, 32, 32) + 1, name="bgr.tif",
                       descriptions=("B2", "B3", "B4"))
    assert find_pairs(bgr, mode="colorize")[0].target.bands == (3, 2, 1)
    assert find_pairs(bgr, mode="colorize", rgb_bands=(1, 2, 3))[0].target.bands == (1, 2, 3)
