"""Remote inputs (issue 21): http(s):// URLs read through GDAL's /vsicurl/ with range requests.

Each test starts its own HTTP server on 127.0.0.1 (nothing else on the network), serving a copy
of the real Sentinel-1 dB GeoTIFF from ../shared/data written into the test's folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sar2opt_geo.cli.main import main
from sar2opt_geo.sensors.open import gdal_name

# The server runs in its own process: GDAL reads while holding the GIL, so a server thread in this
# process could never answer it.
_SERVER = r"""
import http.server, io, os, re, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    ranges = sys.argv[2] == "ranges"

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        with open(path, "rb") as f:
            data = f.read()
        size = len(data)
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if m and self.ranges:
            start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            body = data[start:end + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

os.chdir(sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def _serve(folder: Path, ranges: bool = True):
    """``http://127.0.0.1:PORT`` serving ``folder`` (static files; HTTP range requests if ``ranges``)."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(folder), "ranges" if ranges else "whole"],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def served(tmp_path, s1_db_tif):
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(s1_db_tif, folder / "scene.tif")
    with _serve(folder) as base:
        yield base, folder / "scene.tif"


def test_url_names_map_to_gdal_virtual_file_systems():
    assert gdal_name("https://example.org/a.tif") == "/vsicurl/https://example.org/a.tif"
    assert gdal_name("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert gdal_name("gs://bucket/key.tif") == "/vsigs/bucket/key.tif"
    assert gdal_name("/data/a.tif") == "/data/a.tif"


def test_translate_a_url_gives_the_local_files_pixels(served, tmp_path):
    """Was: "no such file or folder" for any URL."""
    base, local = served
    via_url, via_file = tmp_path / "url.tif", tmp_path / "file.tif"
    assert main(["translate", f"{base}/scene.tif", str(via_url), "--progress", "none"]) == 0
    assert main(["translate", str(local), str(via_file), "--progress", "none"]) == 0
    with rasterio.open(via_url) as a, rasterio.open(via_file) as b:
        assert a.tags()["SAR2OPT_SOURCE"] == f"/vsicurl/{base}/scene.tif"  # the URL as given, not folded to http:/
        assert a.crs == b.crs and a.transform == b.transform
        np.testing.assert_array_equal(a.read(), b.read())


def test_missing_url_is_one_line_naming_the_http_status(served, tmp_path, capsys):
    base, _ = served
    out = tmp_path / "never.tif"
    assert main(["translate", f"{base}/missing.tif", str(out), "--progress", "none"]) != 0
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "missing.tif" in errors[0] and "404" in errors[0]
    assert not out.exists()


def test_server_without_range_requests_is_one_clear_line(tmp_path, s1_db_tif, capsys):
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(s1_db_tif, folder / "scene.tif")
    out = tmp_path / "never.tif"
    with _serve(folder, ranges=False) as base:
        assert main(["translate", f"{base}/scene.tif", str(out), "--progress", "none"]) != 0
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "range requests" in errors[0].lower() and not out.exists()


def _item(assets: dict[str, str]) -> str:
    return json.dumps({"type": "Feature", "stac_version": "1.0.0", "id": "S1A_test_rtc", "properties": {},
                       "geometry": None, "links": [],
                       "assets": {k: {"href": v, "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
                                  for k, v in assets.items()}})


@pytest.fixture
def two_pols(tmp_path, data_dir):
    """**Synthetic** Planetary-Computer-like item folder (vv.tif, vh.tif: linear gamma0), made from the
    real BigEarthNet VV and VH dB patches."""
    folder = tmp_path / "www"
    folder.mkdir()
    src = data_dir / "pairs" / "bigearthnet" / "36_85"
    for pol in ("vv", "vh"):
        with rasterio.open(next(src.glob(f"S1*_{pol.upper()}.tif"))) as ds:
            db, profile = ds.read(1), ds.profile
        with rasterio.open(folder / f"{pol}.tif", "w", **profile) as dst:
            dst.write((10 ** (db / 10)).astype("float32"), 1)
    return folder


def test_stac_item_file_and_url_choose_the_polarisation_assets(two_pols, tmp_path):
    """A STAC item (local JSON, then the same item over HTTP with relative hrefs) reads its vv/vh assets."""
    from sar2opt_geo.sensors import open_scene

    (two_pols / "item.json").write_text(_item({"vh": "./vh.tif", "vv": "vv.tif", "thumbnail": "preview.png"}))
    with open_scene(two_pols / "item.json") as local:
        assert list(local.bands) == ["VV", "VH"]
        vh = local.read("VH")
        assert np.nanmin(vh) > 0  # linear gamma0, as the vv/vh naming says
    out = tmp_path / "rgb.tif"
    with _serve(two_pols) as base:
        with open_scene(f"{base}/item.json") as remote:
            assert list(remote.bands) == ["VV", "VH"] and "/vsicurl/" in remote.metadata["files"]
            np.testing.assert_array_equal(remote.read("VH"), vh)
        assert main(["translate", f"{base}/item.json", str(out), "--progress", "none"]) == 0
    with rasterio.open(out) as ds:
        assert ds.tags()["SAR2OPT_INPUT_BANDS"] == "VH" and ds.count == 3


def test_stac_item_without_polarisation_assets_is_one_line(tmp_path, capsys):
    item = tmp_path / "item.json"
    item.write_text(_item({"visual": "visual.tif"}))
    assert main(["translate", str(item), str(tmp_path / "never.tif"), "--progress", "none"]) != 0
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "no polarisation assets" in errors[0] and "visual" in errors[0]
