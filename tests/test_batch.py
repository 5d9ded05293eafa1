"""AOI batches on real rasters (sar2opt_geo.batch, ``sar2opt batch``), serial runs.

Each test builds its AOI files over the real scenes (EPSG:4326 and the scene CRS; Shapefile,
GeoPackage, GeoJSON), runs the real :func:`sar2opt_geo.translate` with a tiny randomly
initialised generator, and checks georeferencing and masks of the outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from shapely.geometry import MultiPolygon, Polygon, box

from sar2opt_geo import batch as batch_mod
from sar2opt_geo.batch import read_summary, run_batch
from sar2opt_geo.batch.aoi import prepare_aoi
from sar2opt_geo.models.card import InputDomain, ModelCard
from sar2opt_geo.models.checkpoint import save_generator
from sar2opt_geo.samples.synthetic import write_sample_scene

TINY = {"in_channels": 1, "out_channels": 3, "width": 0.125}


def _translate():
    from sar2opt_geo.translation.api import translate

    return translate


@pytest.fixture
def gray_model(tmp_path, tiny_generator) -> Path:
    """Tiny gray -> RGB generator whose card matches the Landsat-8 scene (gray from red, green, blue)."""
    card = ModelCard(
        name="tiny-gray", architecture="unet_article", architecture_args=TINY,
        input=InputDomain(sensor="optical", bands=("gray",), quantity="gray", normalisation="percentile",
                          percentile=99.0, gray_from=("red", "green", "blue"), gray_weights=(0.299, 0.587, 0.114),
                          pixel_spacing_m=30.0),
    )
    return save_generator(tiny_generator(1, 3, 0.125), card, tmp_path / "models" / "gray.safetensors")


@pytest.fixture
def sar_model(tmp_path, tiny_generator) -> Path:
    """Tiny Sentinel-1 VV (dB clipped to -25..0) -> RGB generator, for the S1 dB GeoTIFF."""
    card = ModelCard(
        name="tiny-s1vv", architecture="unet_article", architecture_args=TINY,
        input=InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0", normalisation="db_clip",
                          units="db", db_range=(-25.0, 0.0), pixel_spacing_m=20.0, frequency_band="C"),
    )
    return save_generator(tiny_generator(1, 3, 0.125, seed=1), card, tmp_path / "models" / "s1vv.safetensors")


def _crop(aoi: str, name: str, scene) -> str:
    """The file name of a crop: ``<aoi key>__<feature name>__<scene stem>.tif``."""
    return f"{aoi}__{name}__{Path(scene).stem}.tif"


def _scene(path):
    with rasterio.open(path) as ds:
        return ds.crs, ds.bounds, ds.res[0]


def _to_lonlat(geom, crs):
    return gpd.GeoSeries([geom], crs=crs).to_crs(4326).iloc[0]


def _landsat_aois(landsat8_tif):
    """Four small polygons (about 40x30 pixels) inside the Landsat-8 crop, in its CRS."""
    crs, b, res = _scene(landsat8_tif)
    x0, y0 = b.left + 300 * res, b.top - 300 * res
    rect = box(x0, y0 - 30 * res, x0 + 40 * res, y0)
    tri = Polygon([(x0 + 100 * res, y0), (x0 + 150 * res, y0 - 5 * res), (x0 + 110 * res, y0 - 40 * res)])
    outer = box(x0, y0 - 120 * res, x0 + 48 * res, y0 - 72 * res)
    hole = box(x0 + 16 * res, y0 - 104 * res, x0 + 32 * res, y0 - 88 * res)
    multi = MultiPolygon([Polygon(outer.exterior.coords, [hole.exterior.coords]),
                          box(x0 + 80 * res, y0 - 110 * res, x0 + 96 * res, y0 - 94 * res)])
    return crs, res, {"rect": rect, "triangle": tri, "holed": multi}


def _check_output(path, polygon, res, keep_rectangle=False):
    """Output georeferencing and mask against the prepared (scene CRS) polygon."""
    with rasterio.open(path) as ds:
        ob, mask = ds.bounds, ds.dataset_mask() > 0
        pb = polygon.bounds
        tol = res + 1e-6  # one pixel
        assert ob.left >= pb[0] - tol and ob.bottom >= pb[1] - tol
        assert ob.right <= pb[2] + tol and ob.top <= pb[3] + tol
        assert ds.count == 3 and ds.width > 0 and ds.height > 0
        if keep_rectangle:
            assert mask.all()
            return
        # pixels whose footprint lies fully outside the polygon are nodata; fully inside are valid
        inside = ~geometry_mask([polygon.buffer(-res)], (ds.height, ds.width), ds.transform)
        outside = geometry_mask([polygon.buffer(res)], (ds.height, ds.width), ds.transform)
        assert inside.any() and mask[inside].all()
        assert not mask[outside].any()
        return mask


def test_batch_reprojects_masks_and_names(tmp_path, landsat8_tif, gray_model):
    """AOIs in EPSG:4326 (GeoJSON) with a buffer: outputs inside the buffered polygons, masked outside."""
    crs, res, polys = _landsat_aois(landsat8_tif)
    aoi_path = tmp_path / "fields.geojson"
    gpd.GeoDataFrame({"label": ["Rect/1", "Triangle 2", "Holed field"]},
                     geometry=[_to_lonlat(g, crs) for g in polys.values()], crs=4326).to_file(aoi_path)
    out = tmp_path / "out"
    summary = run_batch([landsat8_tif], aoi_path, out, model=gray_model, name_field="label", buffer_m=45.0,
                        translate=_translate())
    assert [r.status for r in summary.records] == ["done"] * 3, summary.table()
    assert [Path(r.output).name for r in summary.records] == [
        _crop("fields", n, landsat8_tif) for n in ("Rect_1", "Triangle_2", "Holed_field")]
    src = gpd.read_file(aoi_path)
    for rec, geom in zip(summary.records, src.geometry):
        buffered = prepare_aoi(geom, "EPSG:4326", crs, buffer_m=45.0)
        mask = _check_output(rec.output, buffered, res)
        if rec.name == "Holed_field":  # the hole (shrunk by the buffer) is nodata
            hole = next(g for g in buffered.geoms if g.interiors).interiors[0]
            with rasterio.open(rec.output) as ds:
                in_hole = ~geometry_mask([Polygon(hole).buffer(-res)], (ds.height, ds.width), ds.transform)
            assert in_hole.any() and not mask[in_hole].any()
    layer = gpd.read_file(out / "summary.gpkg", layer="summary")
    assert list(layer["status"]) == ["done"] * 3 and layer.crs.to_epsg() == 4326
    assert {"name", "scene", "output", "status", "reason", "seconds", "input_hash"} <= set(layer.columns)
    assert layer.geometry.geom_equals(src.geometry).all()  # Polygon may be promoted to MultiPolygon


def test_batch_keep_rectangle_and_shapefile_in_scene_crs(tmp_path, landsat8_tif, gray_model):
    crs, res, polys = _landsat_aois(landsat8_tif)
    aoi_path = tmp_path / "tri.shp"
    gpd.GeoDataFrame(geometry=[polys["triangle"]], crs=crs).to_file(aoi_path)
    summary = run_batch([landsat8_tif], aoi_path, tmp_path / "out", model=gray_model, keep_rectangle=True,
                        translate=_translate())
    (rec,) = summary.records
    assert rec.status == "done" and Path(rec.output).name == _crop("tri", "0", landsat8_tif)  # Shapefile FID 0
    _check_output(rec.output, polys["triangle"], res, keep_rectangle=True)


def test_bad_polygons_are_reported_and_the_batch_goes_on(tmp_path, landsat8_tif, gray_model):
    crs, res, polys = _landsat_aois(landsat8_tif)
    far = box(0, 0, 1000, 1000)  # UTM 21S false origin: far from the scene
    _, b, _ = _scene(landsat8_tif)
    fill = box(b.right - 60 * res, b.top - 40 * res, b.right - 10 * res, b.top)  # the crop's DN-0 fill corner
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    gdf = gpd.GeoDataFrame(
        {"label": ["good", "bowtie", "empty", "far", "good", "fill"]},
        geometry=[polys["rect"], shapely.affinity.translate(bowtie, *polys["rect"].centroid.coords[0]),
                  Polygon(), far, polys["triangle"], fill], crs=crs,
    )
    aoi_path = tmp_path / "aoi.gpkg"
    gdf.to_file(aoi_path, layer="parcels")
    summary = run_batch([landsat8_tif], aoi_path, tmp_path / "out", layer="parcels", name_field="label",
                        model=gray_model, translate=_translate())
    status = {r.name: (r.status, r.reason) for r in summary.records}
    assert status["good"][0] == "done" and status["good_2"][0] == "done"  # collision resolved
    assert status["bowtie"][0] == "failed" and "invalid geometry" in status["bowtie"][1]
    assert status["empty"] == ("skipped", "empty geometry")
    assert status["far"] == ("skipped", "does not overlap the scene")
    assert status["fill"][0] == "skipped" and status["fill"][1].startswith("no valid data in the polygon")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == sorted(
        [_crop("aoi", "good", landsat8_tif), _crop("aoi", "good_2", landsat8_tif)])
    assert len(read_summary(tmp_path / "out" / "summary.gpkg")) == 6
    assert [r.name for r in summary.failed] == ["bowtie"]
    # a rerun decides everything at planning: nothing is translated again
    again = run_batch([landsat8_tif], aoi_path, tmp_path / "out", layer="parcels", name_field="label",
                      model=gray_model, translate=_must_not_run)
    expected = [(r.name, "skipped" if r.status == "done" else r.status, r.reason) for r in summary.records]
    got = [(r.name, r.status, r.reason) for r in again.records]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got if g[0] in ("bowtie", "empty", "far", "fill")] == \
        [e[2] for e in expected if e[0] in ("bowtie", "empty", "far", "fill")]


def _must_not_run(*args, **kwargs):
    raise AssertionError("translate called for a crop that should have been skipped")


_FAIL_ONCE = {"name": "rect"}


def _flaky_translate(src, dst, model=None, options=None, **kw):
    """translate that fails for the crop named in _FAIL_ONCE (a crash mid-batch)."""
    if f"__{_FAIL_ONCE['name']}__" in Path(dst).name:
        raise RuntimeError("simulated crash")
    return _translate()(src, dst, model, options, **kw)


def test_rerun_skips_complete_outputs_and_redoes_failed_and_partial(tmp_path, landsat8_tif, gray_model):
    crs, _res, polys = _landsat_aois(landsat8_tif)
    aoi_path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"label": ["rect", "triangle"]}, geometry=[polys["rect"], polys["triangle"]],
                     crs=crs).to_file(aoi_path)
    out = tmp_path / "out"
    rect, tri = out / _crop("aoi", "rect", landsat8_tif), out / _crop("aoi", "triangle", landsat8_tif)
    args = {"model": gray_model, "name_field": "label"}
    first = run_batch([landsat8_tif], aoi_path, out, translate=_flaky_translate, **args)
    assert {r.name: r.status for r in first.records} == {"rect": "failed", "triangle": "done"}
    assert "simulated crash" in first.failed[0].reason and not rect.exists()
    mtime = tri.stat().st_mtime_ns

    second = run_batch([landsat8_tif], aoi_path, out, translate=_translate(), **args)
    assert {r.name: r.status for r in second.records} == {"rect": "done", "triangle": "skipped"}
    assert "up to date" in second.records[1].reason and second.records[1].seconds == 0
    assert tri.stat().st_mtime_ns == mtime  # untouched
    assert read_summary(out / "summary.gpkg")[str(tri)]["status"] == "skipped"

    # a partial output (truncated file) is redone; the complete one is skipped
    tri.write_bytes(tri.read_bytes()[:1000])
    third = run_batch([landsat8_tif], aoi_path, out, translate=_translate(), **args)
    assert {r.name: r.status for r in third.records} == {"rect": "skipped", "triangle": "done"}
    with rasterio.open(tri) as ds:
        assert ds.count == 3 and ds.dataset_mask().any()
    # changed options (a buffer) invalidate the hash; --redo redoes up-to-date outputs
    fourth = run_batch([landsat8_tif], aoi_path, out, translate=_translate(), buffer_m=30.0, **args)
    assert [r.status for r in fourth.records] == ["done", "done"]
    assert len({r.input_hash for r in fourth.records} | {r.input_hash for r in third.records}) == 4
    fifth = run_batch([landsat8_tif], aoi_path, out, translate=_translate(), buffer_m=30.0, redo=True, **args)
    assert [r.status for r in fifth.records] == ["done", "done"]


def test_model_is_loaded_once_per_process(tmp_path, s1_db_tif, sar_model, tiny_generator):
    crs, b, res = _scene(s1_db_tif)
    fields = [box(b.left + (20 + 60 * i) * res, b.bottom + 30 * res, b.left + (60 + 60 * i) * res, b.bottom + 70 * res)
              for i in range(3)]
    aoi_path = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=fields, crs=crs).to_file(aoi_path)
    batch_mod.load_model_cached.cache_clear()
    summary = run_batch([s1_db_tif], aoi_path, tmp_path / "out", model=sar_model, translate=_translate())
    assert summary.counts["done"] == 3
    info = batch_mod.load_model_cached.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    # a checkpoint replaced at the same path is reloaded, and its outputs are redone (new card hash)
    from sar2opt_geo.models.checkpoint import read_card

    save_generator(tiny_generator(1, 3, 0.125, seed=7), read_card(sar_model), sar_model)
    again = run_batch([s1_db_tif], aoi_path, tmp_path / "out", model=sar_model, translate=_translate())
    assert again.counts["done"] == 3 and batch_mod.load_model_cached.cache_info().misses == 2
    for rec in again.records:
        _check_output(rec.output, fields[rec.order - 1], res)


def test_sar_scene_two_scenes_naming_and_cli(tmp_path, s1_db_tif, landsat8_tif, sar_model, capsys):
    """S1 dB GeoTIFF with a SAR card, via the CLI; two scenes -> <name>__<scene stem>.tif, exit status."""
    from sar2opt_geo.cli.main import main

    crs, b, res = _scene(s1_db_tif)
    field = box(b.left + 40 * res, b.bottom + 40 * res, b.left + 100 * res, b.bottom + 90 * res)
    aoi_path = tmp_path / "s1.gpkg"
    gpd.GeoDataFrame({"label": ["farm"]}, geometry=[_to_lonlat(field, crs)], crs=4326).to_file(aoi_path, layer="a")
    out = tmp_path / "out"
    argv = ["batch", str(s1_db_tif), "--aoi", str(aoi_path), "--layer", "a", "--name-field", "label",
            "--buffer", "20", "--output-dir", str(out), "--model", str(sar_model), "--workers", "0",
            "--tile", "256", "--overlap", "128", "--progress", "json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[-1] == {"event": "done", "outputs": {"OUTPUT": str(out), "SUMMARY": str(out / "summary.gpkg")}}
    buffered = prepare_aoi(_to_lonlat(field, crs), "EPSG:4326", crs, buffer_m=20)
    _check_output(out / _crop("s1", "farm", s1_db_tif), buffered, res)
    with rasterio.open(out / _crop("s1", "farm", s1_db_tif)) as ds:
        assert ds.crs == crs

    # two scenes: outputs named <aoi>__<name>__<scene stem>; the field lies outside the Landsat-8 scene
    out2 = tmp_path / "out2"
    argv2 = ["batch", str(s1_db_tif), str(landsat8_tif), "--aoi", str(aoi_path), "--layer", "a",
             "--name-field", "label", "--output-dir", str(out2), "--model", str(sar_model), "--workers", "0",
             "--progress", "none"]
    code = main(argv2)
    text = capsys.readouterr().out
    layer = gpd.read_file(out2 / "summary.gpkg", layer="summary")
    names = [Path(p).name for p in layer["output"]]
    assert names == [_crop("s1", "farm", s1_db_tif), _crop("s1", "farm", landsat8_tif)]
    assert list(layer["status"]) == ["done", "skipped"]  # the S1 field is outside the Landsat scene
    assert code == 0 and "1 done, 1 skipped, 0 failed" in text

    # an invalid polygon fails (reported in the summary), the exit status is 1
    bad = tmp_path / "bad.geojson"
    gpd.GeoDataFrame(geometry=[Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])], crs=crs).to_file(bad)
    code = main(["batch", str(s1_db_tif), "--aoi", str(bad), "--output-dir", str(tmp_path / "out3"),
                 "--model", str(sar_model), "--workers", "0", "--progress", "none"])
    assert code == 1 and "invalid geometry" in capsys.readouterr().out


def test_scene_folders_and_gcp_products_are_planned(tmp_path, s1_db_tif, s1_safe):
    """A folder of scenes (GeoTIFF + Sentinel-1 SAFE); the SAFE (GCPs only) is planned in its GCP CRS."""
    from sar2opt_geo.batch import expand_scenes, plan_batch, scene_info
    from sar2opt_geo.batch.aoi import read_aoi

    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / Path(s1_db_tif).name).symlink_to(s1_db_tif)
    (folder / Path(s1_safe).name).symlink_to(s1_safe, target_is_directory=True)
    (folder / "notes.txt").write_text("not a scene")
    scenes = expand_scenes([folder, s1_db_tif])  # the file given twice is kept once
    assert [p.name for p in scenes] == sorted([Path(s1_db_tif).name, Path(s1_safe).name])

    safe = scene_info(folder / Path(s1_safe).name)
    assert safe.crs == "EPSG:4326" and safe.is_sar and safe.footprint.geom_type == "Polygon"
    inside = safe.footprint.centroid.buffer(0.05)  # degrees
    aoi_path = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame({"label": ["in", "out"]}, geometry=[inside, box(-60, -30, -59, -29)], crs=4326).to_file(aoi_path)
    tasks, decided = plan_batch(scenes, read_aoi(aoi_path, name_field="label"), tmp_path / "out",
                                model=tmp_path / "m.safetensors", buffer_m=500)
    by_scene = {(Path(t.scene).name, t.name): t for t in tasks}
    task = by_scene[(Path(s1_safe).name, "in")]
    assert task.crs == "EPSG:4326" and Path(task.output).name == _crop("aoi", "in", s1_safe)
    # the 500 m buffer was applied in metres (local UTM), not in degrees
    utm = gpd.GeoSeries([inside], crs=4326).estimate_utm_crs()
    grown = gpd.GeoSeries([task.geometry], crs=4326).to_crs(utm).area.iloc[0]
    orig = gpd.GeoSeries([inside], crs=4326).to_crs(utm).iloc[0]
    assert grown == pytest.approx(orig.buffer(500).area, rel=0.01)
    assert {(Path(r.scene).name, r.name, r.status) for r in decided} == {
        (Path(s1_safe).name, "out", "skipped"), (Path(s1_db_tif).name, "out", "skipped"),
        (Path(s1_db_tif).name, "in", "skipped")}


def test_summary_is_geopackage_1_3_which_qgis_322_reads_without_warning(tmp_path):
    """Regression: pip's GDAL wrote GeoPackage 1.4 (user_version 10400), which QGIS 3.22's GDAL 3.6
    opens with "may only be partially supported"; the summary is written as 1.3."""
    import sqlite3

    rec = batch_mod.Record(0, "field", 0, "scene.tif", str(tmp_path / "field.tif"), "done", geometry=box(0, 0, 10, 10))
    path = batch_mod.write_summary([rec], tmp_path / "summary.gpkg", "EPSG:32631")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # 'GPKG'
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300
    assert list(read_summary(path)) == [str(tmp_path / "field.tif")]


# -- issue 12: bad input and shared folders ------------------------------------------------


def test_null_geometry_feature_is_a_skipped_row_and_the_batch_goes_on(tmp_path, landsat8_tif, gray_model):
    """Regression: a feature with a null geometry aborted the whole batch (pandas gives NaN for it:
    AttributeError: 'float' object has no attribute 'is_empty')."""
    from sar2opt_geo.batch import plan_batch
    from sar2opt_geo.batch.aoi import NULL_GEOMETRY, read_aoi

    crs, _res, polys = _landsat_aois(landsat8_tif)
    gdf = gpd.GeoDataFrame({"label": ["rect", "nothing", "triangle"]},
                           geometry=[polys["rect"], None, polys["triangle"]], crs=crs)
    for ext in ("geojson", "shp"):  # every format gives the null geometry its own way
        path = tmp_path / f"aoi.{ext}"
        gdf.to_file(path)
        tasks, decided = plan_batch([landsat8_tif], read_aoi(path, name_field="label"), tmp_path / "plan",
                                    model=gray_model)
        assert [t.name for t in tasks] == ["rect", "triangle"]
        assert [(r.name, r.status, r.reason) for r in decided] == [("nothing", "skipped", NULL_GEOMETRY)]
    aoi_path = tmp_path / "aoi.gpkg"
    gdf.to_file(aoi_path)
    summary = run_batch([landsat8_tif], aoi_path, tmp_path / "out", model=gray_model, name_field="label",
                        translate=_translate())
    assert [(r.name, r.status) for r in summary.records] == [("rect", "done"), ("nothing", "skipped"),
                                                             ("triangle", "done")]
    assert not summary.failed
    layer = gpd.read_file(tmp_path / "out" / "summary.gpkg", layer="summary")
    assert list(layer["status"]) == ["done", "skipped", "done"] and layer.geometry.isna().tolist() == [False, True, False]


def test_a_second_aoi_file_keeps_the_rows_and_resume_state_of_the_first(tmp_path, landsat8_tif, gray_model):
    """Regression: summary.gpkg was last-writer-wins: a second AOI file into the same folder erased
    the rows of the first (whose outputs were then redone on the next run)."""
    crs, _res, polys = _landsat_aois(landsat8_tif)
    first, second = tmp_path / "first.gpkg", tmp_path / "second.geojson"
    gpd.GeoDataFrame({"label": ["rect"]}, geometry=[polys["rect"]], crs=crs).to_file(first)
    gpd.GeoDataFrame({"label": ["triangle"]}, geometry=[_to_lonlat(polys["triangle"], crs)], crs=4326).to_file(second)
    out = tmp_path / "out"
    args = {"model": gray_model, "name_field": "label"}
    run_batch([landsat8_tif], first, out, translate=_translate(), **args)
    run_batch([landsat8_tif], second, out, translate=_translate(), **args)
    layer = gpd.read_file(out / "summary.gpkg", layer="summary")
    assert list(layer["name"]) == ["rect", "triangle"] and list(layer["status"]) == ["done", "done"]
    assert layer.crs.equals(crs)  # the summary keeps its CRS; the lon/lat footprint was reprojected
    tri = gpd.GeoSeries([polys["triangle"]], crs=crs)
    assert layer.geometry.iloc[1].buffer(1.0).contains(tri.iloc[0])
    rect = out / _crop("first", "rect", landsat8_tif)
    mtime = rect.stat().st_mtime_ns
    again = run_batch([landsat8_tif], first, out, translate=_must_not_run, **args)
    assert [r.status for r in again.records] == ["skipped"] and rect.stat().st_mtime_ns == mtime
    assert len(read_summary(out / "summary.gpkg")) == 2


def _write_rows(args):
    path, tag, n = args
    for i in range(n):
        rec = batch_mod.Record(i, f"{tag}{i}", i, "scene.tif", f"/out/{tag}{i}.tif", "done",
                               geometry=box(i, 0, i + 1, 1))
        batch_mod.write_summary([rec], path, "EPSG:32631")
    return n


def test_concurrent_batches_merge_their_rows_under_a_lock(tmp_path):
    """Regression: a concurrent batch into the same folder erased the other's rows (each wrote the
    summary from its own rows only); now each read-merge-write holds an OS file lock."""
    import multiprocessing

    path = tmp_path / "summary.gpkg"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        assert pool.map(_write_rows, [(path, "a", 8), (path, "b", 8), (path, "c", 8)]) == [8, 8, 8]
    rows = read_summary(path)
    assert sorted(rows) == sorted(f"/out/{t}{i}.tif" for t in "abc" for i in range(8))
    assert [p.name for p in tmp_path.iterdir() if p.name != "summary.gpkg"] == [".summary.gpkg.lock"]


def test_summary_lock_is_exclusive_and_times_out_with_the_lock_file_named(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap

    from sar2opt_geo.errors import InputError

    path = tmp_path / "summary.gpkg"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from sar2opt_geo.batch import summary_lock
        with summary_lock({str(path)!r}):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=r"\.summary\.gpkg\.lock: the summary is locked by another batch"), \
                batch_mod.summary_lock(path, timeout_s=0.5):
            pass
    finally:
        holder.kill()  # kill -9 releases the lock
        holder.wait(timeout=30)
    with batch_mod.summary_lock(path, timeout_s=5):
        pass


# -- whole scenes ---------------------------------------------------------------------


def test_whole_scene_batch_split_or_not_gives_the_bytes_of_translate_and_resumes(tmp_path, s1_db_tif, sar_model):
    import shutil

    from sar2opt_geo import TranslateOptions

    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in ("a_VV_db.tif", "b_VV_db.tif"):  # copies (a batch takes a file given twice once)
        shutil.copy(s1_db_tif, folder / name)
    opts = TranslateOptions(tile_size=256, overlap=128)
    one = run_batch([folder], None, tmp_path / "one", model=sar_model, options=opts)
    split = run_batch([folder], None, tmp_path / "split", model=sar_model, options=opts, split=3)
    assert [(r.name, r.fid, r.status, r.bands) for r in one.records] == [("a_VV_db", -1, "done", 0),
                                                                     ("b_VV_db", -1, "done", 0)]
    assert [(r.status, r.bands) for r in split.records] == [("done", 2), ("done", 2)]  # 2 tile rows: 2 bands
    for name in ("a_VV_db.tif", "b_VV_db.tif"):
        ref = _translate()(folder / name, tmp_path / "ref" / name, sar_model, opts)
        assert (tmp_path / "one" / name).read_bytes() == ref.path.read_bytes()
        assert (tmp_path / "split" / name).read_bytes() == ref.path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [".summary.gpkg.lock", "a_VV_db.tif",
                                                                      "b_VV_db.tif", "summary.gpkg"]
    layer = gpd.read_file(tmp_path / "split" / "summary.gpkg", layer="summary")
    assert layer.crs.to_epsg() == 4326 and list(layer["bands"]) == [2, 2]
    with rasterio.open(s1_db_tif) as ds:
        lon, lat = ds.lnglat()
    assert layer.geometry.iloc[0].contains(shapely.Point(lon, lat))  # the scene footprint, in lon/lat
    # a rerun skips both, whatever the split (the bytes do not depend on it); nothing is translated
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "split").glob("*.tif")}
    again = run_batch([folder], None, tmp_path / "split", model=sar_model, options=opts, split=1,
                      translate=_must_not_run)
    assert [r.status for r in again.records] == ["skipped", "skipped"] and "up to date" in again.records[0].reason
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "split").glob("*.tif")} == mtimes
    # other options: redone
    redo = run_batch([folder], None, tmp_path / "split", model=sar_model, options=opts.replace(dtype="float32"))
    assert [(r.status, r.bands) for r in redo.records] == [("done", 0), ("done", 0)]


def test_whole_scene_cli_checks_flags(tmp_path, s1_db_tif, sar_model, capsys):
    from sar2opt_geo.cli.main import main

    base = ["batch", str(s1_db_tif), "-o", str(tmp_path / "out"), "--model", str(sar_model), "--workers", "0"]
    for extra, message in ((["--buffer", "10"], "--buffer need(s) --aoi"),
                           (["--name-field", "x"], "--name-field need(s) --aoi"),
                           (["--split", "2", "--aoi", str(s1_db_tif)], "--split applies to whole scenes"),
                           (["--split", "0"], "must be >= 1")):
        with pytest.raises(SystemExit) as exc:
            main(base + extra)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*base, "--tile", "256", "--overlap", "128", "--split", "2", "--dtype", "float32",
                 "--progress", "none"]) == 0
    assert "1 done, 0 skipped, 0 failed" in capsys.readouterr().out
    with rasterio.open(tmp_path / "out" / Path(s1_db_tif).name) as ds:
        assert ds.dtypes[0] == "float32"  # every translate option is a batch option


def test_default_batch_starts_a_cluster_only_when_it_pays(tmp_path, monkeypatch):
    """Issue 22: `sar2opt batch scene.tif -o out` on one 4 Mpx scene took 13.8 s on a 2-worker cluster
    against 5.6 s in one process. The default now estimates both and runs small work here."""
    from sar2opt_geo.batch import cluster_pays

    scene = write_sample_scene(tmp_path / "scene.tif", size=256)  # 0.07 Mpx
    task = batch_mod.CropTask(order=0, name="scene", fid=-1, scene=str(scene), output=str(tmp_path / "o.tif"),
                              geometry=None, crs="EPSG:32631", bounds=None, keep_rectangle=False, model="",
                              options=None, input_hash="", aoi_geometry=None)
    assert batch_mod.task_megapixels(task) == pytest.approx(256 * 256 / 1e6)
    for workers in (2, 8):
        pays, serial, cluster = cluster_pays([task], workers)
        assert not pays and serial < cluster
    assert not cluster_pays([task] * 50, 1)[0]  # one core: never
    from sar2opt_geo.batch import cluster

    monkeypatch.setattr(cluster, "task_megapixels", lambda t, headers=None: 400.0)  # a full Sentinel-1 IW scene
    assert not cluster_pays([task], 2)[0]  # measured on 2 cores: 1-thread workers never beat one 2-thread process
    pays, serial, cluster = cluster_pays([task], 8)
    assert pays and cluster < serial


def test_cli_default_runs_a_small_batch_in_process(tmp_path, caplog, monkeypatch):
    from sar2opt_geo.cli.main import main

    scene = write_sample_scene(tmp_path / "scene.tif", size=128)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for a 0.02 Mpx scene")

    monkeypatch.setattr(batch_mod, "dask_client", no_cluster)
    with caplog.at_level(logging.INFO):
        assert main(["batch", str(scene), "-o", str(tmp_path / "out"), "--progress", "none",
                     "--tile", "128", "--overlap", "96"]) == 0
    assert any("runs in this process" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "out" / "scene.tif").exists()
