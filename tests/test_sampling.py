"""translate(samples=N): mean of N stochastic runs + per-pixel luminance spread (sar2opt_geo.translation.sampling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sar2opt_geo import translate
from sar2opt_geo.errors import CancelledError, ConfigError
from sar2opt_geo.models import ModelCard, UNetGenerator
from sar2opt_geo.models.card import InputDomain
from sar2opt_geo.options import TranslateOptions, option_fields
from sar2opt_geo.translation.sampling import (
    SPREAD_BAND,
    SampleStack,
    luminance,
    spread_path,
)

# several tiles per axis on the crop below (tile stride 96 px), so sweeps cross tile seams
TILED = {"tile_size": 192, "overlap": 96, "batch_size": 3, "device": "cpu"}


def _model(dropout: float, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    g = UNetGenerator(1, 3, width=0.0625, dropout=dropout)
    card = ModelCard(name=f"tiny-vv-dropout{dropout}", architecture="unet_article",
                     architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.0625, "dropout": dropout},
                     input=InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0",
                                       normalisation="percentile", percentile=99.0, quantize_levels=255,
                                       frequency_band="C"))
    return g.eval(), card


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(), ds.descriptions


def _crop_bounds(s1_db_tif):
    """A crop of the real Sentinel-1 VV scene: 200 x 160 px of its 10 m model grid (several tiles per axis)."""
    with rasterio.open(s1_db_tif) as ds:
        left, bottom = ds.bounds.left, ds.bounds.bottom
    return (left + 400, bottom + 400, left + 2400, bottom + 2000)


def test_samples_option_is_declared_once_with_flag_and_qgis_name():
    f = next(f for f in option_fields() if f.name == "samples")
    assert f.default == 1 and f.metadata["flag"] == ("--samples",) and f.metadata["qgis"] == "SAMPLES"
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="samples"):
            TranslateOptions(samples=bad)


def test_spread_path_is_beside_the_output(tmp_path):
    assert spread_path(tmp_path / "a" / "out.tif") == tmp_path / "a" / "out_spread.tif"


def test_without_dropout_the_mean_is_the_single_run_and_the_spread_is_zero(s1_db_tif, tmp_path):
    model = _model(dropout=0.0)
    bounds = _crop_bounds(s1_db_tif)
    # one stochastic run (dropout p=0: deterministic) runs the module as written, as the sweeps do; a plain run
    # would use the inference rewrite, equal to ~1e-7 only
    one = translate(s1_db_tif, tmp_path / "one.tif", model, dtype="float32", bounds=bounds, stochastic=True, **TILED)
    many = translate(s1_db_tif, tmp_path / "many.tif", model, dtype="float32", bounds=bounds, samples=3, **TILED)
    assert one.spread is None and many.spread == tmp_path / "many_spread.tif"
    a, _, _, _ = _read(one.path)
    m, profile, tags, _ = _read(many.path)
    s, sprofile, stags, sdesc = _read(many.spread)
    assert np.array_equal(a, m, equal_nan=True), "identical sweeps: the mean is the single run, bit for bit"
    valid = np.isfinite(m).all(axis=0)
    assert valid.mean() > 0.9
    assert np.all(s[0][valid] == 0.0), "identical sweeps: zero spread"
    assert np.isnan(s[0][~valid]).all()
    assert "3 stochastic runs, seeds 0..2" in tags["SAR2OPT_SAMPLES"]
    assert sdesc == (SPREAD_BAND,) and sprofile["dtype"] == "float32" and "ddof=1" in stags["SAR2OPT_SPREAD"]
    for key in ("crs", "transform", "width", "height"):
        assert sprofile[key] == profile[key], key
    assert _is_cog(many.spread)


def _is_cog(path):
    with rasterio.open(path) as ds:
        return ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_with_dropout_mean_and_spread_are_those_of_the_seeded_runs(s1_db_tif, tmp_path):
    """The exact statement: N sweeps == N separate stochastic runs with seeds seed..seed+N-1, on a multi-tile grid."""
    model = _model(dropout=0.5)
    bounds = _crop_bounds(s1_db_tif)
    n, seed = 3, 11
    runs = []
    for k in range(n):
        r = translate(s1_db_tif, tmp_path / f"run{k}.tif", model, dtype="float32", bounds=bounds, stochastic=True,
                      seed=seed + k, **TILED)
        runs.append(_read(r.path)[0])
    res = translate(s1_db_tif, tmp_path / "mean.tif", model, dtype="float32", bounds=bounds, samples=n, seed=seed,
                    **TILED)
    assert res.tiles > 4, "several tiles per sweep"
    mean, _, _, _ = _read(res.path)
    spread = _read(res.spread)[0][0]
    stack = np.stack(runs)
    valid = np.isfinite(mean).all(axis=0)
    np.testing.assert_allclose(mean[:, valid], stack.mean(axis=0)[:, valid], atol=2e-6)
    lum = np.stack([luminance(r) for r in runs])
    np.testing.assert_allclose(spread[valid], lum.std(axis=0, ddof=1)[valid], atol=2e-6)
    assert (spread[valid] > 0).mean() > 0.99, "dropout on: the runs differ almost everywhere"
    assert np.nanmax(spread) < 0.5


def test_spread_follows_the_final_grid_and_the_crop(s1_db_tif, tmp_path):
    model = _model(dropout=0.5)
    res = translate(s1_db_tif, tmp_path / "ll.tif", model, samples=2, dst_crs="EPSG:4326", bounds_crs="EPSG:32631",
                    bounds=_crop_bounds(s1_db_tif), **TILED)
    with rasterio.open(res.path) as out, rasterio.open(res.spread) as sp:
        assert (sp.crs, sp.transform, sp.shape) == (out.crs, out.transform, out.shape)
        assert sp.crs.to_epsg() == 4326
        valid = out.read_masks(1) > 0
        sv = sp.read(1)
        assert np.isfinite(sv[valid]).mean() > 0.99 and (sv[valid] > 0).mean() > 0.9


@pytest.mark.parametrize("stop", ["cancel", "interrupt"])
def test_cancel_in_a_later_sweep_leaves_nothing(s1_db_tif, tmp_path, stop):
    model = _model(dropout=0.5)
    out = tmp_path / "o"
    out.mkdir()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if stop == "interrupt" and fraction > 0.6:  # inside the third of four sweeps
            raise KeyboardInterrupt

    with pytest.raises(CancelledError if stop == "cancel" else KeyboardInterrupt):
        translate(s1_db_tif, out / "o.tif", model, samples=4, bounds=_crop_bounds(s1_db_tif), quicklook=True,
                  progress=progress, cancel=lambda: stop == "cancel" and max(calls, default=0) > 0.6, **TILED)
    assert max(calls) > 0.4, "stopped after the first sweeps had run"
    assert list(out.iterdir()) == [], "no output, no spread, no scratch folder"


def test_existing_spread_is_refused_before_any_work_without_overwrite(s1_db_tif, tmp_path):
    from sar2opt_geo.errors import OutputExistsError

    (tmp_path / "o_spread.tif").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="o_spread.tif"):
        translate(s1_db_tif, tmp_path / "o.tif", _model(0.5), samples=2, overwrite=False, **TILED)
    assert (tmp_path / "o_spread.tif").read_bytes() == b"keep" and not (tmp_path / "o.tif").exists()


def test_sample_stack_welford_matches_numpy_and_is_exact_for_equal_samples(tmp_path):
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, size=(5, 3, 7, 9)).astype(np.float32)
    xs[:, :, 2, 3] = np.nan  # nodata stays nodata
    stack = SampleStack(tmp_path, 7, 9, 3, 5)

    class Sink:
        def __init__(self, bands):
            self.a = np.full((bands, 7, 9), -1.0, np.float32)

        def write(self, w, v):
            self.a[:, int(w.row_off):int(w.row_off + w.height), int(w.col_off):int(w.col_off + w.width)] = v

    mean_sink, spread_sink = Sink(3), Sink(1)
    for k, x in enumerate(xs):
        stack.begin(k)
        stack.write(Window(col_off=0, row_off=0, width=9, height=4), x[:, :4])  # blocks, as the engine writes them
        stack.write(Window(col_off=0, row_off=4, width=9, height=3), x[:, 4:])
    stack.emit(mean_sink, spread_sink)
    stack.close()
    np.testing.assert_allclose(mean_sink.a, xs.mean(axis=0), atol=1e-6)
    lum = np.stack([luminance(x) for x in xs])
    np.testing.assert_allclose(spread_sink.a[0], lum.std(axis=0, ddof=1), atol=1e-6)
    assert np.isnan(mean_sink.a[:, 2, 3]).all() and np.isnan(spread_sink.a[0, 2, 3])
    assert list(tmp_path.iterdir()) == [], "memory maps removed"

    same = SampleStack(tmp_path, 7, 9, 3, 4)
    m2, s2 = Sink(3), Sink(1)
    for k in range(4):
        same.begin(k)
        same.write(Window(col_off=0, row_off=0, width=9, height=7), xs[0])
    same.emit(m2, s2)
    same.close()
    assert np.array_equal(m2.a, xs[0], equal_nan=True) and np.all(s2.a[0][np.isfinite(s2.a[0])] == 0)


def test_cli_samples_flag_reports_the_spread(s1_db_tif, tmp_path, capsys):
    from sar2opt_geo.cli.main import main
    from sar2opt_geo.models.checkpoint import save_generator

    ckpt = save_generator(*_model(0.5), tmp_path / "tiny.safetensors")
    left, bottom, right, top = _crop_bounds(s1_db_tif)
    rc = main(["translate", str(s1_db_tif), str(tmp_path / "c.tif"), "--model", str(ckpt), "--samples", "2",
               "--tile", "192", "--overlap", "96", "--device", "cpu", "--progress", "json",
               "--bounds", str(left), str(bottom), str(right), str(top)])
    assert rc == 0
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"done"' in line][-1]
    assert done["outputs"]["SPREAD"] == str((tmp_path / "c_spread.tif").resolve())
    assert (tmp_path / "c_spread.tif").exists()


def test_samples_on_a_full_disk_were_killed_by_sigbus_with_scratch_left(s1_db_tif, tmp_path, monkeypatch):
    """Issue 19: the memory-mapped scratch was sparse, so a full disk killed the run with SIGBUS mid-way.

    The space is reserved (posix_fallocate) before any sweep: ENOSPC there is one line, nothing left."""
    import errno
    import os

    from sar2opt_geo.errors import InputError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"no space left on device while reserving the --samples scratch"):
        translate(s1_db_tif, out / "o.tif", _model(0.5), samples=2, bounds=_crop_bounds(s1_db_tif), **TILED)
    assert not out.exists() or list(out.iterdir()) == []


def test_samples_refused_before_work_when_the_scratch_cannot_fit(tmp_path, monkeypatch):
    """Issue 19: free space is checked before the scratch memory maps are made."""
    import shutil
    from collections import namedtuple

    from sar2opt_geo.errors import InputError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 * 2**20, 9 * 2**20, 2**20))
    with pytest.raises(InputError, match=r"--samples needs \d+ MB of scratch space there, 1 MB is free"):
        SampleStack(tmp_path, 2000, 3000, 3, 4)
    assert list(tmp_path.iterdir()) == []
