"""Issue 19, batch part: outputs identified by scene, AOI file and feature; names that do not
depend on the order of the scenes; one-line errors for an output folder that is a file, read-only
or on a full disk, and for an AOI layer without features. Serial runs (``--workers 0``)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from shapely.geometry import box
from test_batch import _landsat_aois, _must_not_run, _translate, gray_model, sar_model  # noqa: F401  (fixtures)

from sar2opt_geo import TranslateOptions
from sar2opt_geo.batch import read_summary, run_batch, scene_keys
from sar2opt_geo.batch.scenes import path_hash
from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import ConfigError, InputError

OPTS = TranslateOptions(tile_size=256, overlap=128)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.tif")}


def _leftovers(folder: Path) -> list[str]:
    """Temporaries, scratch folders and probes: what a failed write must not leave."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".summary.gpkg.lock")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("sar2opt: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. another AOI file's feature with the same name -------------------------------------


def test_batch_results_replaced_by_another_aoi_file_with_the_same_feature_name(tmp_path, landsat8_tif, gray_model):  # noqa: F811
    """Regression: two batches into one folder with different AOI files that both have a feature
    "field1" wrote the same <name>.tif: the second silently replaced the first's crop and summary row."""
    crs, _res, polys = _landsat_aois(landsat8_tif)
    first, second = tmp_path / "first.gpkg", tmp_path / "second.geojson"
    gpd.GeoDataFrame({"label": ["field1"]}, geometry=[polys["rect"]], crs=crs).to_file(first)
    gpd.GeoDataFrame({"label": ["field1"]}, geometry=[polys["triangle"]], crs=crs).to_file(second)
    # a third source: another layer of a multi-layer GeoPackage, with a "field1" too
    both = tmp_path / "both.gpkg"
    gpd.GeoDataFrame({"label": ["field1"]}, geometry=[polys["triangle"]], crs=crs).to_file(both, layer="a")
    gpd.GeoDataFrame({"label": ["field1"]}, geometry=[polys["rect"]], crs=crs).to_file(both, layer="b")
    out = tmp_path / "out"
    kw = {"model": gray_model, "name_field": "label"}
    one = run_batch([landsat8_tif], first, out, translate=_translate(), **kw)
    mtime = Path(one.records[0].output).stat().st_mtime_ns
    two = run_batch([landsat8_tif], second, out, translate=_translate(), **kw)
    three = run_batch([landsat8_tif], both, out, layer="b", translate=_translate(), **kw)
    stem = Path(landsat8_tif).stem
    assert [Path(s.records[0].output).name for s in (one, two, three)] == [
        f"first__field1__{stem}.tif", f"second__field1__{stem}.tif", f"both.b__field1__{stem}.tif"]
    assert [s.records[0].status for s in (one, two, three)] == ["done"] * 3
    assert Path(one.records[0].output).stat().st_mtime_ns == mtime  # the first crop is untouched
    with rasterio.open(one.records[0].output) as a, rasterio.open(two.records[0].output) as b:
        assert a.bounds != b.bounds  # each file holds its own polygon
    layer = gpd.read_file(out / "summary.gpkg", layer="summary")
    assert list(layer["name"]) == ["field1"] * 3 and list(layer["status"]) == ["done"] * 3
    assert list(layer["aoi"]) == [str(first.resolve()), str(second.resolve()), str(both.resolve())]
    assert list(layer["aoi_layer"]) == ["first", "second", "b"]
    # each AOI file's rerun finds its own rows: nothing is translated again
    for path, extra in ((first, {}), (second, {}), (both, {"layer": "b"})):
        again = run_batch([landsat8_tif], path, out, translate=_must_not_run, **kw, **extra)
        assert [r.status for r in again.records] == ["skipped"], again.table()
    assert len(read_summary(out / "summary.gpkg")) == 3


def test_aoi_key_names_the_crops_of_a_temporary_aoi_file(tmp_path, s1_db_tif, sar_model):  # noqa: F811
    """QGIS writes memory layers to a temporary GeoPackage: ``--aoi-key`` (the layer's name) names the
    crops, so they do not carry a random temp-file stem and a rerun finds them."""
    aoi = _aoi(tmp_path, s1_db_tif)
    out = tmp_path / "out"
    assert main([*_cli(s1_db_tif, aoi, out, sar_model), "--aoi-key", "my fields (memory)"]) == 0
    stem = Path(s1_db_tif).stem
    assert sorted(p.name for p in out.glob("*.tif")) == [f"my_fields_memory__f{i}__{stem}.tif" for i in (1, 2)]
    again = run_batch([s1_db_tif], aoi, out, model=sar_model, options=OPTS, name_field="label",
                      aoi_key="my fields (memory)", translate=_must_not_run)
    assert [r.status for r in again.records] == ["skipped", "skipped"], again.table()
    with pytest.raises(ConfigError, match="aoi_key"):
        run_batch([s1_db_tif], None, out, aoi_key="x")


def test_aoi_file_with_the_same_stem_in_another_folder_warns_when_it_replaces_a_crop(tmp_path, landsat8_tif, caplog):
    """Two AOI files with one stem (2023/fields.gpkg, 2024/fields.gpkg) share the aoi key (so that
    a layer QGIS exports to a new temporary file each run still resumes): a replacement is logged
    naming the other file, never silent."""
    from sar2opt_geo.batch import plan_batch
    from sar2opt_geo.batch.aoi import read_aoi

    crs, _res, polys = _landsat_aois(landsat8_tif)
    old, new = tmp_path / "2023" / "fields.gpkg", tmp_path / "2024" / "fields.gpkg"
    for path in (old, new):
        path.parent.mkdir()
        gpd.GeoDataFrame({"label": ["field1"]}, geometry=[polys["rect"]], crs=crs).to_file(path)
    out = tmp_path / "out"
    out.mkdir()
    crop = out / f"fields__field1__{Path(landsat8_tif).stem}.tif"
    crop.write_bytes(b"made from 2023")
    previous = {str(crop): {"scene": str(landsat8_tif), "aoi": str(old.resolve()), "aoi_layer": "fields",
                            "status": "done", "input_hash": "0"}}
    tasks, _ = plan_batch([landsat8_tif], read_aoi(new, name_field="label"), out, model=tmp_path / "m.safetensors",
                          previous=previous)
    assert [Path(t.output) for t in tasks] == [crop] and tasks[0].aoi == str(new.resolve())
    assert f"{crop}: replaces the crop made from {old.resolve()}" in caplog.text
    caplog.clear()  # the same file again: no warning
    plan_batch([landsat8_tif], read_aoi(old, name_field="label"), out, model=tmp_path / "m.safetensors",
               previous=previous)
    assert "replaces" not in caplog.text


# -- 2. names that do not depend on the order of the scenes ---------------------------------


def test_output_names_stable_whatever_the_scene_order(tmp_path, s1_db_tif, sar_model):  # noqa: F811
    """Regression: scenes whose stems collide were numbered _2, _3 ... in the order given, so a
    rerun with the scenes in another order swapped the output names and redid everything."""
    scenes = []
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        scenes.append(shutil.copy(s1_db_tif, tmp_path / folder / "scene_VV_db.tif"))
    a, b, c = map(Path, scenes)
    out = tmp_path / "out"
    first = run_batch([a, b], None, out, model=sar_model, options=OPTS)
    hashes = {p: path_hash(str(p.resolve())) for p in (a, b, c)}
    by_scene = {Path(r.scene): Path(r.output).name for r in first.records}
    assert by_scene == {a: f"scene_VV_db-{hashes[a]}.tif", b: f"scene_VV_db-{hashes[b]}.tif"}
    assert [r.status for r in first.records] == ["done", "done"]
    mtimes = _mtimes(out)
    again = run_batch([b, a], None, out, model=sar_model, options=OPTS, translate=_must_not_run)
    assert {Path(r.scene): Path(r.output).name for r in again.records} == by_scene
    assert [r.status for r in again.records] == ["skipped", "skipped"]
    assert all("up to date" in r.reason for r in again.records)
    assert _mtimes(out) == mtimes
    layer = gpd.read_file(out / "summary.gpkg", layer="summary")
    assert sorted(layer["status"]) == ["skipped", "skipped"] and len(layer) == 2
    # one of them alone keeps its name (and is skipped); so does the CLI with the order reversed
    alone = run_batch([a], None, out, model=sar_model, options=OPTS, translate=_must_not_run)
    assert [(Path(r.output).name, r.status) for r in alone.records] == [(by_scene[a], "skipped")]
    assert main(["batch", str(b), str(a), "-o", str(out), "--model", str(sar_model), "--workers", "0",
                 "--tile", "256", "--overlap", "128", "--progress", "none"]) == 0
    assert _mtimes(out) == mtimes

    # a scene whose stem is unique keeps it; a later scene with that stem (another folder) gets its
    # own name instead of replacing it, and neither is renamed when both run together, in any order
    out2 = tmp_path / "out2"
    run_batch([a], None, out2, model=sar_model, options=OPTS)
    assert sorted(_mtimes(out2)) == ["scene_VV_db.tif"]
    kept = _mtimes(out2)
    later = run_batch([c], None, out2, model=sar_model, options=OPTS)
    assert [(Path(r.output).name, r.status) for r in later.records] == [(f"scene_VV_db-{hashes[c]}.tif", "done")]
    assert _mtimes(out2)["scene_VV_db.tif"] == kept["scene_VV_db.tif"]
    together = run_batch([c, a], None, out2, model=sar_model, options=OPTS, translate=_must_not_run)
    assert sorted((Path(r.output).name, r.status) for r in together.records) == sorted(
        [("scene_VV_db.tif", "skipped"), (f"scene_VV_db-{hashes[c]}.tif", "skipped")])


def test_scene_keys_do_not_depend_on_the_order(tmp_path):
    """The naming rule itself, for AOI crops too (no translation): colliding stems (also by case)
    get the hash of their resolved path, whatever the order; unique stems keep their stem."""
    paths = []
    for folder, name in (("x", "S1A_scene.tif"), ("y", "s1a_SCENE.tif"), ("z", "other.tif")):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / name)
        paths[-1].write_bytes(b"")
    keys = dict(zip(paths, scene_keys(paths)))
    assert keys == dict(zip(paths[::-1], scene_keys(paths[::-1])))
    h = [path_hash(str(p.resolve())) for p in paths]
    assert list(keys.values()) == [f"S1A_scene-{h[0]}", f"s1a_SCENE-{h[1]}", "other"]
    # crops made by an earlier batch for x/S1A_scene.tif keep that scene on the plain stem
    previous = {str(tmp_path / "out" / "aoi__f1__S1A_scene.tif"): {"scene": str(paths[0]), "aoi_fid": 1}}
    for order in (paths, paths[::-1]):
        keys = dict(zip(order, scene_keys(order, previous)))
        assert [keys[p] for p in paths] == ["S1A_scene", f"s1a_SCENE-{h[1]}", "other"]


# -- 3. the output folder: an existing file, read-only, full disk ----------------------------


def _aoi(tmp_path, s1_db_tif) -> Path:
    with rasterio.open(s1_db_tif) as ds:
        crs, b, res = ds.crs, ds.bounds, ds.res[0]
    fields = [box(b.left + (20 + 60 * i) * res, b.bottom + 30 * res, b.left + (60 + 60 * i) * res, b.bottom + 70 * res)
              for i in range(2)]
    path = tmp_path / "fields.geojson"
    gpd.GeoDataFrame({"label": ["f1", "f2"]}, geometry=fields, crs=crs).to_file(path)
    return path


def _cli(scene, aoi, out, model) -> list[str]:
    return ["batch", str(scene), "--aoi", str(aoi), "--name-field", "label", "-o", str(out), "--model", str(model),
            "--workers", "0", "--progress", "none", "--tile", "256", "--overlap", "128"]


def test_output_dir_that_is_an_existing_file_is_one_line(tmp_path, s1_db_tif, sar_model, capsys):  # noqa: F811
    """Regression: -o naming an existing regular file ended in a FileExistsError traceback."""
    out = tmp_path / "out.tif"
    out.write_bytes(b"not a folder")
    assert main(_cli(s1_db_tif, _aoi(tmp_path, s1_db_tif), out, sar_model)) == 1
    line = _error_line(capsys)
    assert f"{out}: the output folder (--output-dir) is an existing file" in line and "give a folder path" in line
    assert out.read_bytes() == b"not a folder"
    with pytest.raises(ConfigError):
        run_batch([s1_db_tif], None, out, model=sar_model)


def _refuse_creating_in(monkeypatch, folder: Path, code: int) -> None:
    """Simulate a read-only mount (EROFS) or a full disk (ENOSPC) under ``folder``: creating a file
    there fails. (chmod 0o555 would not do: the tests run as root.)"""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(os.fsdecode(path)).parent == folder:
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.parametrize("code, words, fix", [(errno.EROFS, "Read-only file system", "make it writable"),
                                              (errno.EACCES, "Permission denied", "make it writable"),
                                              (errno.ENOSPC, "No space left on device", "free some space")])
def test_output_dir_read_only_or_full_is_one_line(tmp_path, s1_db_tif, sar_model, capsys, monkeypatch,  # noqa: F811
                                                  code, words, fix):
    """Regression: a read-only output folder or one on a full disk ended in a traceback (from the
    summary lock file or the summary GeoPackage)."""
    aoi = _aoi(tmp_path, s1_db_tif)
    out = tmp_path / "out"
    out.mkdir()
    _refuse_creating_in(monkeypatch, out.resolve(), code)
    assert main(_cli(s1_db_tif, aoi, out, sar_model)) == 1
    line = _error_line(capsys)
    assert f"{out.resolve()}: {words}" in line and fix in line and "another output folder" in line
    assert list(out.iterdir()) == []


def test_disk_full_during_the_batch_stops_it_with_one_line(tmp_path, s1_db_tif, sar_model, capsys, monkeypatch):  # noqa: F811
    """A disk that fills up while the second crop is written: one line, exit 1, nothing partial at
    the output path, the first crop kept and recorded; a rerun resumes with the second."""
    aoi = _aoi(tmp_path, s1_db_tif)
    out = (tmp_path / "out").resolve()
    second = out / f"fields__f2__{Path(s1_db_tif).stem}.tif"
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if Path(os.fsdecode(dst)) == second:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    assert main(_cli(s1_db_tif, aoi, out, sar_model)) == 1
    line = _error_line(capsys)
    assert f"{out}: batch stopped at {second.name}: No space left on device" in line
    assert "a rerun resumes" in line
    assert not second.exists() and _leftovers(out) == []
    rows = read_summary(out / "summary.gpkg")
    first = out / f"fields__f1__{Path(s1_db_tif).stem}.tif"
    assert rows[str(first)]["status"] == "done" and rows[str(second)]["status"] == "failed"
    monkeypatch.setattr(os, "replace", real_replace)
    mtime = first.stat().st_mtime_ns
    assert main(_cli(s1_db_tif, aoi, out, sar_model)) == 0
    assert "1 done, 1 skipped, 0 failed" in capsys.readouterr().out
    assert first.stat().st_mtime_ns == mtime and second.exists()


def test_disk_full_when_writing_the_summary_is_one_line(tmp_path, s1_db_tif, sar_model, monkeypatch):  # noqa: F811
    out = (tmp_path / "out").resolve()
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if Path(os.fsdecode(dst)).name == "summary.gpkg":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(InputError, match=rf"^{out}: cannot write the batch summary summary.gpkg \(No space left on "
                                         r"device\); free some space there"):
        run_batch([s1_db_tif], _aoi(tmp_path, s1_db_tif), out, model=sar_model, options=OPTS, translate=_translate())
    assert not (out / "summary.gpkg").exists() and _leftovers(out) == []


# -- 4. an AOI layer without features ------------------------------------------------------


def test_empty_aoi_layer_exits_non_zero_with_one_line(tmp_path, s1_db_tif, sar_model, capsys):  # noqa: F811
    """Regression: an AOI GeoPackage layer with zero features made a batch of nothing: exit 0,
    no word, an empty summary."""
    aoi = tmp_path / "parcels.gpkg"
    gpd.GeoDataFrame({"label": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326).to_file(aoi, layer="fields")
    out = tmp_path / "out"
    assert main(_cli(s1_db_tif, aoi, out, sar_model)) == 1
    line = _error_line(capsys)
    assert f"{aoi}: AOI layer 'fields' has no features" in line and "add polygons" in line
    assert not out.exists()
    empty = gpd.GeoDataFrame({"name": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    with pytest.raises(ConfigError, match="no features"):
        run_batch([s1_db_tif], empty, out, model=sar_model)
