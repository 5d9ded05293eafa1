"""Row bands (sar2opt_geo.translation.rowbands): a whole scene translated in bands is byte-identical to one
translate, on real rasters (the Sentinel-1 dB GeoTIFF resampled up and down, and the same
pixels GCP-georeferenced), with per-band resume."""

from __future__ import annotations

import filecmp
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sar2opt_geo import TranslateOptions, translate
from sar2opt_geo.engine import TilingConfig, axis_tiles
from sar2opt_geo.errors import ConfigError
from sar2opt_geo.models.card import InputDomain, ModelCard
from sar2opt_geo.models.checkpoint import save_generator
from sar2opt_geo.translation.rowbands import (
    READ_BLOCK_ROWS,
    aligned_reader,
    assemble,
    band_folder,
    plan_scene,
    run_band,
    source_rows,
    split_rows,
    translate_split,
)

TINY = {"in_channels": 1, "out_channels": 3, "width": 0.125}


def _s1_model(tmp_path, tiny_generator, spacing_m):
    card = ModelCard(
        name="tiny-s1vv", architecture="unet_article", architecture_args=TINY,
        input=InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0", normalisation="db_clip",
                          units="db", db_range=(-25.0, 0.0), pixel_spacing_m=spacing_m, frequency_band="C"),
    )
    return save_generator(tiny_generator(1, 3, 0.125, seed=1), card, tmp_path / f"s1vv_{spacing_m:g}m.safetensors")


def _same_files(a: Path, b: Path) -> bool:
    return filecmp.cmp(a, b, shallow=False)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_split_rows_cut_on_tile_origins():
    config = TilingConfig(256, 128)
    axis = axis_tiles(1000, config)
    for n in (1, 2, 3, 5, 100):
        bands = split_rows(axis, n)
        assert bands[0][0] == 0 and bands[-1][1] == 1000
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(bands))
        origins = {axis.origin(i) for i in range(axis.count)}
        assert all(r0 in origins and r0 % 16 == 0 for r0, _ in bands[1:])
        assert len(bands) == min(n, axis.count)  # a band per tile row at most
    with pytest.raises(ConfigError, match="bands=0"):
        split_rows(axis, 0)


def test_aligned_reads_give_the_same_pixels_whatever_the_window(tmp_path, landsat8_tif):
    """GDAL's warper gives a pixel other values when it is part of another request (bilinear
    downsampling next to nodata: the real Landsat-8 crop's DN-0 fill); the engine's reads go
    through fixed row blocks, so a pixel's value does not depend on the tiling or the band. The
    source of one band (calibrating only its rows) gives the same pixels as the whole scene's."""
    from sar2opt_geo.preprocess import model_grid, open_linear_source
    from sar2opt_geo.sensors import open_scene

    with open_scene(landsat8_tif) as scene:
        grid = model_grid(scene, 45.0)  # 1.5 x 30 m: bilinear downsampling
        full_window = Window(col_off=0, row_off=0, width=grid.width, height=grid.height)
        with open_linear_source(scene, ["blue"], grid, work_dir=tmp_path) as src:
            read = aligned_reader(src.read, grid.height, grid.width, tile_size=512)
            whole = read(full_window)
            for cuts in ([0, 100, 700, grid.height], [0, 333, 334, 1000, grid.height]):
                fresh = aligned_reader(src.read, grid.height, grid.width, tile_size=512)
                parts = [fresh(Window(col_off=0, row_off=a, width=grid.width, height=b - a))
                         for a, b in itertools.pairwise(cuts)]
                np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
            assert np.isnan(whole).any() and np.isfinite(whole).mean() > 0.5  # nodata next to data
        lo, hi = 2 * READ_BLOCK_ROWS, 3 * READ_BLOCK_ROWS + 100  # a band's rows, aligned to the read blocks
        with open_linear_source(scene, ["blue"], grid, work_dir=tmp_path, rows=(lo, hi)) as band_src:
            band = aligned_reader(band_src.read, grid.height, grid.width, tile_size=512)
            got = band(Window(col_off=0, row_off=lo, width=grid.width, height=hi - lo))
        np.testing.assert_array_equal(got, whole[:, lo:hi])


CASES = {
    # (model spacing, tiling, bands, extra options): 10 m upsamples the 20 m scene (WarpedVRT),
    # 30 m downsamples it (bilinear, 1.5x) next to its nodata, with a quicklook and float32, then
    # reprojected to lon/lat on output
    "up-10m": (10.0, (256, 128), 3, {}),
    "down-30m-float32-4326": (30.0, (128, 96), 3, {"dtype": "float32", "quicklook": True, "dst_crs": "EPSG:4326"}),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_split_translation_is_byte_identical_to_one_translate(tmp_path, s1_db_tif, tiny_generator, case):
    spacing, (tile, overlap), bands, extra = CASES[case]
    model = _s1_model(tmp_path, tiny_generator, spacing)
    opts = TranslateOptions(tile_size=tile, overlap=overlap, **extra)
    one = translate(s1_db_tif, tmp_path / "one" / "out.tif", model, opts)
    split = translate_split(s1_db_tif, tmp_path / "split" / "out.tif", model, opts, bands=bands)
    assert _same_files(one.path, split.path)
    if opts.quicklook:
        assert _same_files(one.quicklook, split.quicklook)
    assert (split.width, split.height, split.crs) == (one.width, one.height, one.crs)
    assert split.tiles > one.tiles  # the tile rows at the cuts ran twice
    assert _hidden(tmp_path / "split") == []  # band folder and temporaries gone


@pytest.fixture
def gcp_scene(tmp_path, s1_db_tif) -> Path:
    """The real S1 dB pixels, georeferenced by 5 x 5 GCPs in lon/lat instead of their transform
    (synthetic georeferencing of real data): the GCP path (thin-plate spline warp per window)."""
    from rasterio.control import GroundControlPoint
    from rasterio.warp import transform as warp_transform

    with rasterio.open(s1_db_tif) as ds:
        data, profile, t, crs = ds.read(), ds.profile, ds.transform, ds.crs
    h, w = data.shape[1:]
    rc = [(r, c) for r in np.linspace(0, h, 5) for c in np.linspace(0, w, 5)]
    xs, ys = zip(*(t * (c, r) for r, c in rc))
    lon, lat = warp_transform(crs, "EPSG:4326", xs, ys)
    gcps = [GroundControlPoint(row=r, col=c, x=x, y=y, z=0.0) for (r, c), x, y in zip(rc, lon, lat)]
    profile.update(transform=None, crs=None, driver="GTiff")
    profile.pop("transform")
    path = tmp_path / "S1_VV_db_gcps_synthetic_georef.tif"
    with rasterio.open(path, "w", **{**profile, "crs": "EPSG:4326"}, gcps=gcps) as out:
        out.write(data)
        out.set_band_description(1, "VV")
        out.update_tags(UNITS="db")
    return path


def test_split_gcp_scene_is_byte_identical(tmp_path, gcp_scene, tiny_generator):
    model = _s1_model(tmp_path, tiny_generator, 20.0)
    opts = TranslateOptions(tile_size=256, overlap=128)
    one = translate(gcp_scene, tmp_path / "one.tif", model, opts)
    assert one.crs == "EPSG:32631"  # GCP scene on the UTM model grid
    split = translate_split(gcp_scene, tmp_path / "split.tif", model, opts, bands=2)
    assert split.tiles > one.tiles
    assert _same_files(one.path, split.path)
    with rasterio.open(split.path) as ds:
        assert "GCP georeferencing" in ds.tags()["SAR2OPT_RESAMPLING"]


def test_band_resume_redoes_only_missing_partial_and_outdated_bands(tmp_path, s1_db_tif, tiny_generator):
    model = _s1_model(tmp_path, tiny_generator, 10.0)
    opts = TranslateOptions(tile_size=256, overlap=128, overwrite=True)
    dst = tmp_path / "out.tif"
    sp = plan_scene(s1_db_tif, model, opts, bands=3)
    assert len(sp.rows) == 3
    first = [run_band(sp, k, dst) for k in range(2)]  # "killed" before band 2
    assert not any(b.reused for b in first)
    folder = band_folder(dst)
    b0, b1 = (Path(b.path) for b in first)
    mtime0 = b0.stat().st_mtime_ns
    b1.write_bytes(b1.read_bytes()[:500])  # band 1 partial (e.g. a disk filled up behind its record)
    again = [run_band(sp, k, dst) for k in range(3)]
    assert [b.reused for b in again] == [True, False, False]
    assert b0.stat().st_mtime_ns == mtime0
    # a band made under another key (other options: cubic resampling of the input) is redone
    other = plan_scene(s1_db_tif, model, opts.replace(resampling="cubic"), bands=3)
    assert other.key != sp.key and other.rows == sp.rows
    assert not run_band(other, 0, dst).reused
    assert run_band(sp, 0, dst).reused is False  # band 0 now holds the other key's pixels: redone for sp
    records = sorted(folder.glob("rows-*.json"))
    assert len(records) == 3 and all(json.loads(p.read_text())["scene"] == str(s1_db_tif) for p in records)
    result = assemble(sp, dst)
    assert not folder.exists()
    ref = translate(s1_db_tif, tmp_path / "ref.tif", model, opts)
    assert _same_files(ref.path, result.path)


def test_assembly_names_a_missing_band_and_leaves_nothing(tmp_path, s1_db_tif, tiny_generator):
    from sar2opt_geo.errors import InputError

    model = _s1_model(tmp_path, tiny_generator, 20.0)
    dst = tmp_path / "out" / "scene.tif"
    sp = plan_scene(s1_db_tif, model, TranslateOptions(tile_size=128, overlap=96), bands=2)
    run_band(sp, 1, dst)
    r0, r1 = sp.rows[0]
    with pytest.raises(InputError, match=f"band rows {r0}-{r1} of scene.tif is missing"):
        assemble(sp, dst)
    assert not dst.exists() and [p.name for p in dst.parent.iterdir()] == [".scene.bands"]


def test_source_rows_cover_what_the_engine_reads(s1_db_tif, tiny_generator, tmp_path, monkeypatch):
    """The band's calibrated rows (open_linear_source rows=) hold every row its engine run reads."""
    import sar2opt_geo.preprocess.aligned as aligned_mod

    model = _s1_model(tmp_path, tiny_generator, 20.0)
    sp = plan_scene(s1_db_tif, model, TranslateOptions(tile_size=128, overlap=96), bands=3)
    assert len(sp.rows) == 3
    seen: list[tuple[int, int]] = []
    real = aligned_mod.aligned_reader

    def spy(read, height, width, tile_size, block_rows=READ_BLOCK_ROWS):
        def recording(w):
            seen.append((int(w.row_off), int(w.row_off + w.height)))
            return read(w)
        return real(recording, height, width, tile_size, block_rows)

    monkeypatch.setattr(aligned_mod, "aligned_reader", spy)  # api.run_inference looks it up in its module at each call
    for k, rows in enumerate(sp.rows):
        seen.clear()
        run_band(sp, k, tmp_path / "o.tif")
        lo, hi = source_rows(sp.plan, sp.downsampling, rows)
        assert seen and min(a for a, _ in seen) >= lo and max(b for _, b in seen) <= hi


def test_crops_are_not_split(s1_db_tif, tmp_path, tiny_generator):
    model = _s1_model(tmp_path, tiny_generator, 20.0)
    with rasterio.open(s1_db_tif) as ds:
        b = ds.bounds
    with pytest.raises(ConfigError, match="whole scenes"):
        plan_scene(s1_db_tif, model, TranslateOptions(bounds=(b.left, b.bottom, b.left + 2000, b.bottom + 2000)))


def test_stochastic_mode_is_not_split(s1_db_tif, tmp_path, tiny_generator):
    """Dropout masks are drawn in the order of the whole sweep: a band could not reproduce them."""
    from sar2opt_geo.batch import run_batch

    model = _s1_model(tmp_path, tiny_generator, 20.0)
    opts = TranslateOptions(tile_size=128, overlap=96, stochastic=True, seed=5)
    with pytest.raises(ConfigError, match="stochastic"):
        plan_scene(s1_db_tif, model, opts)
    summary = run_batch([s1_db_tif], None, tmp_path / "out", model=model, options=opts, split=3)
    assert [(r.status, r.bands) for r in summary.records] == [("done", 0)]  # one pass
    ref = translate(s1_db_tif, tmp_path / "ref.tif", model, opts)
    assert (tmp_path / "out" / Path(s1_db_tif).name).read_bytes() == ref.path.read_bytes()
