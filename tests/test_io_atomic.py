"""Atomic outputs: temp beside the destination, renamed at the end, removed on any error."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sar2opt_geo.errors import CancelledError, InputError, OutputExistsError
from sar2opt_geo.io import atomic
from sar2opt_geo.io.atomic import atomic_outputs, temp_path_for, work_dir


def test_temp_name_is_hidden_beside_destination_and_keeps_suffix(tmp_path):
    tmp = temp_path_for(tmp_path / "out.tif")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".out.tmp-") and tmp.suffix == ".tif"
    assert str(os.getpid()) in tmp.name and atomic._host() in tmp.name


def test_success_renames_every_output(tmp_path):
    a, b = tmp_path / "sub" / "a.tif", tmp_path / "sub" / "a.png"
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_bytes(b"tif")
        tb.write_bytes(b"png")
        assert not a.exists() and not b.exists()
    assert a.read_bytes() == b"tif" and b.read_bytes() == b"png"
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.png", "a.tif"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), CancelledError("stop")])
def test_any_error_removes_temporaries_and_leaves_nothing(tmp_path, exc):
    dst = tmp_path / "out.tif"
    with pytest.raises(type(exc)), atomic_outputs(dst, None) as (tmp, none):
        assert none is None
        tmp.write_bytes(b"partial")
        tmp.with_name(tmp.name + ".aux.xml").write_text("<PAM/>")
        raise exc
    assert list(tmp_path.iterdir()) == []


def test_existing_output_without_overwrite_fails_before_work(tmp_path):
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="out.tif"), atomic_outputs(dst, overwrite=False):
        pytest.fail("body must not run")
    assert dst.read_bytes() == b"old"
    with atomic_outputs(dst, overwrite=True) as (tmp,):
        tmp.write_bytes(b"new")
    assert dst.read_bytes() == b"new"


def test_work_dir_is_removed_even_on_error(tmp_path):
    with pytest.raises(ValueError), work_dir(tmp_path / "out.tif") as d:
        (d / "scratch.tif").write_bytes(b"x")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


# -- issue 12: read-only folder, full disk, killed writers ----------------------------------
# Tests run as root, where permission bits stop nothing, and cannot mount a read-only or full
# file system portably; so the kernel's answers (EROFS, ENOSPC, GDAL's errno-less "Write failed")
# are injected where the library meets them. They prove the handling, not the kernel; the real
# tmpfs run is recorded in the closing note.



def _rofs(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def test_read_only_output_folder_is_one_line_before_work_bug(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _rofs)
    with pytest.raises(InputError) as info, atomic_outputs(tmp_path / "out.tif"):
        pytest.fail("body must not run")
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path}: Read-only file system") and "out.tif" in msg and "\n" not in msg


def test_cleanup_after_a_read_only_failure_does_not_raise_again_bug(tmp_path, monkeypatch):
    """EROFS from the cleanup's unlink was raised again, on top of the real error."""
    dst = tmp_path / "out.tif"
    with pytest.raises(InputError, match="Read-only file system while writing out.tif"), atomic_outputs(dst) as (tmp,):
        tmp.write_bytes(b"partial")
        monkeypatch.setattr(atomic.Path, "unlink", _rofs)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp))
    with pytest.raises(ValueError, match="boom"), atomic_outputs(dst):  # an unrelated error stays itself
        raise ValueError("boom")


def test_disk_full_while_writing_is_one_line_bug(tmp_path, monkeypatch):
    from rasterio.errors import RasterioIOError

    dst = tmp_path / "out.tif"
    full = rf"^{tmp_path}: No space left on device while writing out.tif; free some space"
    with pytest.raises(InputError, match=full), atomic_outputs(dst) as (tmp,):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
    # libtiff prints ENOSPC on stderr; rasterio raises an errno-less "Write failed": judged by the free space
    usage = type("Usage", (), {"free": 12_288, "total": 2**21, "used": 2**21 - 12_288})
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage)
    scratch = r"no space left on device while writing scratch rasters for out.tif \(12 KiB free\)"
    with pytest.raises(InputError, match=scratch), atomic_outputs(dst), work_dir(dst) as work:
        (work / "stage.tif").write_bytes(b"x")
        raise RasterioIOError("Write failed. See previous exception for details.")
    assert list(tmp_path.iterdir()) == []
    usage.free = 10 * 2**30  # plenty of space: the GDAL error is something else and stays as it is
    with pytest.raises(RasterioIOError), atomic_outputs(dst):
        raise RasterioIOError("Write failed. See previous exception for details.")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_work_dirs_of_killed_writers_are_swept_bug(tmp_path):
    """kill -9 leaves .<stem>.work-*/ and .<stem>.tmp-* behind; they were never removed."""
    host, dead, live = atomic._host(), _dead_pid(), os.getpid()
    stale_dir = tmp_path / f".a.work-{host}-{dead}-k3j4"
    stale_dir.mkdir()
    (stale_dir / "stage.tif").write_bytes(b"x" * 100)
    stale_tmp = tmp_path / f".a.tmp-{host}-{dead}.tif"
    stale_tmp.write_bytes(b"partial")
    keep = [tmp_path / f".b.work-{host}-{live}-abcd", tmp_path / f".c.work-otherhost-{dead}-abcd",
            tmp_path / f".d.tif.tmp-{dead}", tmp_path / "result.tif"]
    for k in keep:
        k.mkdir() if "work" in k.name else k.write_bytes(b"keep")
    with work_dir(tmp_path / "new.tif") as mine:
        assert mine.name.startswith(f".new.work-{host}-{live}-")
        assert not stale_dir.exists() and not stale_tmp.exists()
        assert all(k.exists() for k in keep)  # live process, other host, other writers' names, real outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(k.name for k in keep)
    assert atomic.sweep_stale(tmp_path / "missing") == []  # never raises


def _translate_until_scratch(tmp_path, sig):
    """Start ``sar2opt translate`` in a subprocess, send ``sig`` once its scratch folder exists."""
    from sar2opt_geo.samples.synthetic import write_sample_scene

    src = write_sample_scene(tmp_path / "in" / "sample.tif", size=512)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "sar2opt_geo.cli.main", "translate", str(src), str(out / "rgb.tif"),
                             "--progress", "none", "--tile", "256", "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob(".rgb.work-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode(), out


def test_sighup_cleans_up_like_sigterm_bug(tmp_path):
    rc, err, out = _translate_until_scratch(tmp_path, signal.SIGHUP)
    assert rc == 130 and "interrupted; no output was written" in err
    assert list(out.iterdir()) == []


def test_after_kill_9_the_next_run_sweeps_the_leftovers(tmp_path):
    rc, _, out = _translate_until_scratch(tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    left = list(out.iterdir())
    assert any(p.name.startswith(".rgb.work-") for p in left)
    with work_dir(out / "rgb.tif"):
        assert [p.name for p in out.iterdir() if not p.name.startswith(f".rgb.work-{atomic._host()}-{os.getpid()}-")] == []
    assert list(out.iterdir()) == []
