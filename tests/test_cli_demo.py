"""``sar2opt demo`` on the bundled real pair: GeoTIFF, preview and the side-by-side picture."""

from __future__ import annotations

import numpy as np
import rasterio
from PIL import Image

from sar2opt_geo.cli.main import main
from sar2opt_geo.samples.demo import ATTRIBUTION, SAMPLE_DIR, bundled_pair, side_by_side


def test_bundled_pair_is_real_small_and_attributed():
    pair = bundled_pair()
    with rasterio.open(pair.sar) as s, rasterio.open(pair.optical) as o:
        assert (s.width, s.height, s.count, s.dtypes[0]) == (512, 512, 1, "uint8")
        assert (o.width, o.height, o.count) == (512, 512, 3)
        assert s.crs == o.crs and s.transform == o.transform  # co-registered, one grid
        assert s.tags()["ATTRIBUTION"] == o.tags()["ATTRIBUTION"] == ATTRIBUTION
        assert s.descriptions == ("VH",) and s.profile["compress"].lower() == "deflate"
        assert float(s.read(1).std()) > 20  # real speckled SAR, not a flat placeholder
    assert sum(p.stat().st_size for p in (pair.sar, pair.optical)) < 1_000_000
    assert ATTRIBUTION in (SAMPLE_DIR / "README.md").read_text()


def test_demo_translates_the_real_sample_and_writes_side_by_side(tmp_path, capsys):
    out = tmp_path / "out" / "demo_rgb.tif"
    assert main(["demo", "--output", str(out), "--progress", "none", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    picture = out.parent / "demo_side_by_side.png"
    for p in (out, out.with_suffix(".png"), picture):
        assert p.exists() and str(p) in printed
    assert ATTRIBUTION in printed
    with rasterio.open(bundled_pair().sar) as s, rasterio.open(out) as o:
        assert o.crs == s.crs and (o.width, o.height) == (512, 512)
    img = np.asarray(Image.open(picture).convert("RGB"))
    assert img.shape[1] == 3 * 512 + 2 * 8 and img.shape[0] > 512  # three panels and captions
    with rasterio.open(bundled_pair().optical) as o:
        optical = np.moveaxis(o.read(), 0, -1)
    top = img.shape[0] - 512 - 22  # caption rows above the panels, attribution below
    assert np.array_equal(img[top : top + 512, 2 * (512 + 8) :], optical)  # the third panel is the real image


def test_side_by_side_without_optical_has_two_panels(tmp_path, make_geotiff):
    sar = make_geotiff(np.linspace(-25, 0, 64 * 64, dtype=np.float32).reshape(64, 64), name="s_db.tif")
    rgb = make_geotiff(np.full((3, 64, 64), 100, np.uint8), name="rgb.tif")
    png = side_by_side(sar, rgb, tmp_path / "pic.png", attribution=None)
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[1] == 2 * 64 + 8
    assert not list(tmp_path.glob(".pic*"))  # no temporary file left behind
