"""Planning a translation (sar2opt_geo.translation.plan): crops, context alignment, where statistics come from."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from sar2opt_geo import translate
from sar2opt_geo.errors import NoValidDataError
from sar2opt_geo.models import InputDomain, ModelCard, UNetGenerator
from sar2opt_geo.translation.plan import context_window

FAST = {"tile_size": 256, "overlap": 96, "batch_size": 2, "device": "cpu"}


def _tiny_vh():
    import torch

    torch.manual_seed(0)
    g = UNetGenerator(1, 3, width=0.0625).eval()
    card = ModelCard(name="tiny-vh", architecture="unet_article",
                     architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.0625},
                     input=InputDomain(sensor="Sentinel-1", bands=("VH",), quantity="sigma0",
                                       normalisation="percentile", percentile=99.0, quantize_levels=255))
    return g, card


def test_context_window_is_aligned_to_the_model_downsampling():
    w = context_window(Window(col_off=100, row_off=37, width=50, height=20), 1000, 1000, pad=64, align=16)
    assert (w.col_off % 16, w.row_off % 16) == (0, 0)
    assert w.col_off <= 100 - 64 and w.row_off == 0 and w.col_off + w.width >= 150 + 64


@pytest.fixture(scope="module")
def mostly_empty_scene(tmp_path_factory):
    """Synthetic: 4200 x 4200 px (17.6 Mpx, above the statistics sampling limit) of nodata except one
    300 x 300 px block of linear VH power inside the first 512-px statistics block, which the sampling skips."""
    path = tmp_path_factory.mktemp("plan") / "synthetic_mostly_empty_VH.tif"
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": 4200, "height": 4200, "count": 1, "dtype": "float32", "crs": "EPSG:32631",
                   "transform": from_origin(500000, 4800000, 10, 10), "nodata": float("nan"), "tiled": True,
                   "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as ds:
        ds.set_band_description(1, "VH")
        ds.update_tags(1, UNITS="linear")
        empty = np.full((512, 4200), np.nan, np.float32)
        for row in range(0, 4200, 512):
            block = empty[: min(512, 4200 - row)].copy()
            if row == 0:
                block[50:350, 50:350] = rng.gamma(1.0, 0.02, (300, 300))
            ds.write(block, 1, window=Window(col_off=0, row_off=row, width=4200, height=block.shape[0]))
    return path


def test_statistics_of_a_crop_in_a_mostly_empty_large_scene_bug(mostly_empty_scene, tmp_path):
    """Regression: with --bounds on a large, mostly empty scene the sampled whole-scene statistics pass
    said 'holds only nodata' although the crop has data. Now they come from the crop area, and the tags say so."""
    bounds = (500000 + 60 * 10, 4800000 - 340 * 10, 500000 + 340 * 10, 4800000 - 60 * 10)
    r = translate(mostly_empty_scene, tmp_path / "crop.tif", _tiny_vh(), bounds=bounds, **FAST)
    with rasterio.open(r.path) as out:
        assert (out.width, out.height) == (280, 280)
        assert out.read_masks(1).all()  # the whole crop holds data
        assert "crop area" in out.tags()["SAR2OPT_STATISTICS_AREA"]
    with pytest.raises(NoValidDataError, match="only nodata"):  # the whole scene alone: one clear line, as before
        translate(mostly_empty_scene, tmp_path / "whole.tif", _tiny_vh(), bounds=(520000, 4760000, 530000, 4770000),
                  **FAST)
