"""PNG quicklook: RGBA, <= 1024 px, transparent where the GeoTIFF says nodata."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sar2opt_geo.io.quicklook import quicklook_path, write_quicklook

# a PNG quicklook is a picture without georeferencing, on purpose
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_quicklook_path():
    assert quicklook_path("out/demo_rgb.tif").as_posix() == "out/demo_rgb.png"


def test_downsampled_rgba_transparent_at_nodata(tmp_path):
    h, w = 1200, 2100
    data = np.full((3, h, w), 200, dtype=np.uint8)
    mask = np.full((h, w), 255, dtype=np.uint8)
    mask[:, : w // 2] = 0
    src = tmp_path / "rgb.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
        src, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32631",
        transform=from_origin(0, 0, 10, 10), tiled=True,
    ) as ds:
        ds.write(data)
        ds.write_mask(mask)
    png = write_quicklook(src, tmp_path / "rgb.png")
    with rasterio.open(png) as q:
        assert q.driver == "PNG" and q.count == 4
        assert max(q.width, q.height) == 1024
        assert abs(q.width / q.height - w / h) < 0.01
        rgba = q.read()
    left, right = rgba[:, :, : q.width // 2 - 2], rgba[:, :, q.width // 2 + 2 :]
    assert (left[3] == 0).all() and (left[:3] == 0).all()
    assert (right[3] == 255).all() and (right[:3] == 200).all()
    assert not (tmp_path / "rgb.png.aux.xml").exists()


def test_float_input_is_scaled_and_nan_transparent(tmp_path):
    a = np.full((3, 40, 50), 0.5, dtype=np.float32)
    a[:, :10] = np.nan
    src = tmp_path / "f.tif"
    with rasterio.open(src, "w", driver="GTiff", width=50, height=40, count=3, dtype="float32", nodata=float("nan"),
                       crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(a)
    with rasterio.open(write_quicklook(src, tmp_path / "f.png")) as q:
        rgba = q.read()
    assert (q.width, q.height) == (50, 40)
    assert (rgba[3, :10] == 0).all() and (rgba[3, 10:] == 255).all()
    assert (rgba[:3, 10:] == 128).all()
