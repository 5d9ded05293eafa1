"""COG writer: layout, dtype encoding, nodata mask, colour interpretation, tags."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.transform import from_origin
from rasterio.windows import Window

from sar2opt_geo.errors import CancelledError
from sar2opt_geo.io.geotiff import ScratchRaster, encode_block, write_cog


def _scratch(tmp_path, h=700, w=600, seed=0):
    rng = np.random.default_rng(seed)
    unit = rng.random((3, h, w), dtype=np.float32)
    unit[:, :50, :] = np.nan  # nodata band at the top
    unit[1, h // 2, w // 2] = np.nan  # one band missing -> the pixel is nodata in all bands
    path = tmp_path / "stage.tif"
    with ScratchRaster(path, crs="EPSG:32631", transform=from_origin(600000, 4800000, 10, 10), width=w, height=h) as st:
        for r in range(0, h, 96):  # row blocks, as the engine writes them
            n = min(96, h - r)
            st.write(Window(col_off=0, row_off=r, width=w, height=n), unit[:, r : r + n])
    valid = np.isfinite(unit).all(axis=0)
    assert st.valid_pixels == int(valid.sum())
    return path, unit, valid


def test_encode_block_uint8_and_float32():
    unit = np.array([[[0.0, 0.5, 1.0, np.nan]], [[0.2, 0.4, 1.2, 0.3]], [[-0.1, 0.0, 0.7, 0.9]]], dtype=np.float32)
    data, mask = encode_block(unit, "uint8")
    assert data.dtype == np.uint8
    assert mask.tolist() == [[255, 255, 255, 0]]
    assert data[:, 0, 3].tolist() == [0, 0, 0]  # nodata pixel: zeros, never noise
    assert data[0, 0, :3].tolist() == [0, round(255 * 0.5), 255]
    assert data[1, 0, 2] == 255 and data[2, 0, 0] == 0  # clipped to [0, 1]
    f, _ = encode_block(unit, "float32")
    assert f.dtype == np.float32 and np.isnan(f[:, 0, 3]).all()
    assert np.allclose(f[:, 0, :3], np.clip(unit[:, 0, :3], 0, 1))


def test_uint8_cog_layout_mask_and_metadata(tmp_path):
    stage, unit, valid = _scratch(tmp_path)
    dst = tmp_path / "out.tif"
    with rasterio.open(stage) as src:
        n = write_cog(src, dst, dtype="uint8", tags={"SAR2OPT_MODEL": "m", "SAR2OPT_INPUT_BANDS": ("VH",)})
    assert n == int(valid.sum())
    with rasterio.open(dst) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.profile["tiled"] and ds.block_shapes[0] == (512, 512)
        assert ds.overviews(1) == [2]
        assert ds.compression.name.upper() == "DEFLATE"
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert ds.descriptions == ("red", "green", "blue")
        assert ds.tags()["SAR2OPT_MODEL"] == "m" and ds.tags()["SAR2OPT_INPUT_BANDS"] == "VH"
        assert ds.crs.to_epsg() == 32631 and ds.transform == from_origin(600000, 4800000, 10, 10)
        assert all(MaskFlags.per_dataset in f for f in ds.mask_flag_enums)
        mask = ds.read_masks(1)
        data = ds.read()
    assert np.array_equal(mask > 0, valid)
    assert (data[:, ~valid] == 0).all()
    expected = np.round(np.clip(unit, 0, 1) * 255)
    assert np.array_equal(data[:, valid], expected[:, valid].astype(np.uint8))
    assert list(tmp_path.glob(".*")) == []  # the encode scratch file is gone


def test_float32_cog_nan_nodata(tmp_path):
    stage, unit, valid = _scratch(tmp_path, h=300, w=200)
    dst = tmp_path / "out.tif"
    with rasterio.open(stage) as src:
        write_cog(src, dst, dtype="float32", compress="ZSTD")
    with rasterio.open(dst) as ds:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        data = ds.read()
    assert np.array_equal(np.isfinite(data).all(axis=0), valid)
    assert np.isnan(data[:, ~valid]).all()
    assert np.allclose(data[:, valid], unit[:, valid])


def test_cancel_stops_encoding_and_cleans_scratch(tmp_path):
    stage, _, _ = _scratch(tmp_path, h=100, w=100)
    with rasterio.open(stage) as src, pytest.raises(CancelledError):
        write_cog(src, tmp_path / "out.tif", cancel=lambda: True)
    assert not (tmp_path / "out.tif").exists()
    assert list(tmp_path.glob(".*")) == []
