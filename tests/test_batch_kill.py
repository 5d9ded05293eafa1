"""A whole-scene batch killed with SIGKILL (``kill -9``) resumes: a real ``sar2opt batch``
subprocess is killed mid-batch, and the rerun skips what was finished (files untouched), redoes
the rest, and leaves nothing partial; a scene split into row bands redoes only its missing bands."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sar2opt_geo.batch import read_summary
from sar2opt_geo.models.card import InputDomain, ModelCard
from sar2opt_geo.models.checkpoint import save_generator

ROOT = Path(__file__).resolve().parents[1]
TINY = {"in_channels": 1, "out_channels": 3, "width": 0.125}
TIMEOUT_S = 240


@pytest.fixture
def model(tmp_path, tiny_generator) -> Path:
    """Tiny Sentinel-1 VV (dB) generator at 10 m: the 20 m S1 scene is upsampled (536 x 434 px)."""
    card = ModelCard(
        name="tiny-s1vv", architecture="unet_article", architecture_args=TINY,
        input=InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0", normalisation="db_clip",
                          units="db", db_range=(-25.0, 0.0), pixel_spacing_m=10.0, frequency_band="C"),
    )
    return save_generator(tiny_generator(1, 3, 0.125, seed=1), card, tmp_path / "s1vv.safetensors")


def _batch(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from sar2opt_geo.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "batch", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"batch ended (status {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _done_rows(summary: Path) -> list[str]:
    try:
        return [o for o, r in read_summary(summary).items() if r["status"] == "done"]
    except Exception:  # noqa: BLE001 - read while being replaced: try again
        return []


def test_whole_scene_batch_resumes_after_kill_9(tmp_path, s1_db_tif, model):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    names = [f"s{i}_VV_db.tif" for i in range(3)]
    for name in names:
        shutil.copy(s1_db_tif, scenes / name)
    out = tmp_path / "out"
    args = [str(scenes), "-o", str(out), "--model", str(model), "--workers", "0", "--split", "1",
            "--tile", "256", "--overlap", "128", "--progress", "none"]
    proc = _batch(args)
    _wait_for(lambda: len(_done_rows(out / "summary.gpkg")) >= 1, proc, "the first scene was recorded")
    _kill9(proc)
    finished = _done_rows(out / "summary.gpkg")
    assert 1 <= len(finished) < 3, "killed mid-batch"
    mtimes = {p: Path(p).stat().st_mtime_ns for p in finished}

    rerun = _batch(args)
    stdout, stderr = rerun.communicate(timeout=TIMEOUT_S)
    assert rerun.returncode == 0, stderr
    rows = read_summary(out / "summary.gpkg")
    assert sorted(Path(o).name for o in rows) == names
    for output, row in rows.items():
        if output in mtimes:
            assert row["status"] == "skipped" and "up to date" in row["reason"]
            assert Path(output).stat().st_mtime_ns == mtimes[output]  # untouched
        else:
            assert row["status"] == "done"
    assert f"{3 - len(finished)} done, {len(finished)} skipped, 0 failed" in stdout
    # nothing partial: no temporaries or scratch folders of the killed writer (swept), only the lock file
    assert sorted(p.name for p in out.iterdir()) == sorted([".summary.gpkg.lock", "summary.gpkg", *names])


def test_split_scene_redoes_only_missing_bands_after_kill_9(tmp_path, s1_db_tif, model):
    from sar2opt_geo import TranslateOptions, translate

    out = tmp_path / "out"
    scene = tmp_path / "scene_VV_db.tif"
    shutil.copy(s1_db_tif, scene)
    args = [str(scene), "-o", str(out), "--model", str(model), "--workers", "0", "--split", "3",
            "--tile", "256", "--overlap", "128", "--progress", "none"]
    bands = out / ".scene_VV_db.bands"
    proc = _batch(args)
    _wait_for(lambda: len(list(bands.glob("rows-*.json"))) >= 1, proc, "the first band was written")
    _kill9(proc)
    kept = {p.name: p.stat().st_mtime_ns for p in bands.glob("rows-*.tif")}
    assert 1 <= len(kept) < 3 and not (out / "scene_VV_db.tif").exists()

    rerun = _batch([*args, "-v"])
    _stdout, stderr = rerun.communicate(timeout=TIMEOUT_S)
    assert rerun.returncode == 0, stderr
    for name in kept:  # the finished bands were taken as they were
        r0, r1 = (int(v) for v in name[len("rows-"):-len(".tif")].split("-"))
        assert f"band rows {r0}-{r1} up to date" in stderr
    assert stderr.count("up to date") == len(kept)
    assert not bands.exists()
    ref = translate(scene, tmp_path / "ref.tif", model, TranslateOptions(tile_size=256, overlap=128))
    assert (out / "scene_VV_db.tif").read_bytes() == ref.path.read_bytes()
    assert read_summary(out / "summary.gpkg")[str(out / "scene_VV_db.tif")]["bands"] == 3
