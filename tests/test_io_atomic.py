"""Atomic outputs: temp beside the destination, renamed at the end, removed on any error."""

from __future__ import annotations

import os

import pytest

from sar2opt_geo.errors import CancelledError, OutputExistsError
from sar2opt_geo.io.atomic import atomic_outputs, temp_path_for, work_dir


def test_temp_name_is_hidden_beside_destination_and_keeps_suffix(tmp_path):
    tmp = temp_path_for(tmp_path / "out.tif")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".out.tmp-") and tmp.suffix == ".tif"
    assert str(os.getpid()) in tmp.name


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
