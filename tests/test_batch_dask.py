"""AOI batch on a real Dask LocalCluster (2 worker processes): same rasters, same summary as serial."""

from __future__ import annotations

import contextlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from test_batch import _landsat_aois, _translate, gray_model  # noqa: F401  (fixture re-used)

from sar2opt_geo.batch import run_batch

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _read(path):
    with rasterio.open(path) as ds:
        profile = {k: v for k, v in ds.profile.items()}
        return ds.read(), ds.dataset_mask(), profile, ds.tags()


def test_dask_run_matches_serial_run(tmp_path, landsat8_tif, gray_model, client):  # noqa: F811
    crs, _res, polys = _landsat_aois(landsat8_tif)
    aoi_path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"label": [*polys, "far"]}, geometry=[*polys.values(), polys["rect"].buffer(-1e6)],
                     crs=crs).to_file(aoi_path)
    kw = {"model": gray_model, "name_field": "label", "buffer_m": 30.0, "translate": _translate()}
    serial = run_batch([landsat8_tif], aoi_path, tmp_path / "serial", **kw)
    dask = run_batch([landsat8_tif], aoi_path, tmp_path / "dask", client=lambda: contextlib.nullcontext(client), **kw)

    def table(s):
        return [(r.name, Path(r.scene).name, r.status, r.reason, Path(r.output).name, r.input_hash) for r in s.records]

    assert table(dask) == table(serial)
    assert [r.status for r in serial.records] == ["done", "done", "done", "skipped"]
    for rec in serial.records[:3]:
        a, b = _read(rec.output), _read(tmp_path / "dask" / Path(rec.output).name)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2]
    # the workers ran the crops (not this process) and each loaded the model at most once
    pids = client.run(lambda: __import__("sar2opt_geo.batch").batch.load_model_cached.cache_info().misses)
    assert 1 <= sum(pids.values()) <= 2 and all(v <= 1 for v in pids.values())

    # rerun on the cluster skips everything, files untouched
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "dask").glob("*.tif")}
    again = run_batch([landsat8_tif], aoi_path, tmp_path / "dask", client=client, **kw)
    assert [r.status for r in again.records] == ["skipped"] * 4
    # with a cluster factory (what the CLI passes), a rerun with nothing to do starts no cluster
    again = run_batch([landsat8_tif], aoi_path, tmp_path / "dask", client=_no_cluster, **kw)
    assert [r.status for r in again.records] == ["skipped"] * 4
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "dask").glob("*.tif")} == mtimes


def _no_cluster():
    raise AssertionError("a cluster was started although every crop was up to date")
