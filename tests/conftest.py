"""Shared fixtures.

Real data lives in ``../shared/data`` (override with ``SAR2OPT_DATA``). Tests that need it
skip when the folder is absent, unless ``SAR2OPT_REQUIRE_DATA=1`` (set by ``.ci/run``),
in which case they fail: CI always has the data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# precision='auto' (the default) is bf16 on CPUs with hardware bfloat16 and fp32 elsewhere: pinned to
# fp32 here (and in every CLI/QGIS subprocess, which inherit it) so that no test depends on the CPU.
# tests/test_precision.py asks for bf16 and auto explicitly.
os.environ["SAR2OPT_PRECISION"] = "fp32"
DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        msg = f"real test data not found: {path}"
        if os.environ.get("SAR2OPT_REQUIRE_DATA") == "1":
            pytest.fail(msg + " (SAR2OPT_REQUIRE_DATA=1: CI must have ../shared/data)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real test data (``../shared/data``)."""
    return _require(DATA)


@pytest.fixture(scope="session")
def s1_db_tif(data_dir: Path) -> Path:
    """Real Sentinel-1 VV dB GeoTIFF, 268x217, 20 m, EPSG:32631, nodata -99."""
    return _require(data_dir / "sar" / "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif")


@pytest.fixture(scope="session")
def landsat8_tif(data_dir: Path) -> Path:
    """Real Landsat-8 crop, 3 bands uint16 (B2, B3, B4), 2041x1860, 30 m, EPSG:32621."""
    return _require(data_dir / "optical" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF")


@pytest.fixture(scope="session")
def la_pairs(data_dir: Path) -> Path:
    """Folder with ``sar/NNN.tif`` (VH, 8-bit) and ``opt/NNN.tif`` (RGB, 8-bit), EPSG:3395, 10 m."""
    return _require(data_dir / "pairs" / "s1vh_s2rgb_epsg3395")


@pytest.fixture(scope="session")
def s1_safe(data_dir: Path) -> Path:
    """Real Sentinel-1 GRDH SAFE metadata (measurement tiff is an all-zero placeholder)."""
    return _require(
        data_dir / "sar" / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
    )


@pytest.fixture(scope="session")
def alos2_metadata(data_dir: Path) -> Path:
    """Real ALOS-2 PALSAR-2 L1.5 summary.txt + LED file (no image files)."""
    return _require(data_dir / "sar" / "alos2_l15_FBDR1.5GUA_metadata")


@pytest.fixture
def restore_logging():
    """Put the root logger's handlers and level back after a test (the CLI configures them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine, two spinning threads are much slower than one."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_generator():
    """A narrow, randomly initialised article U-Net (width 1/8) in eval mode, with random BN stats."""
    import torch

    from sar2opt_geo.models import UNetGenerator

    def make(in_channels: int = 1, out_channels: int = 3, width: float = 0.125, seed: int = 0):
        torch.manual_seed(seed)
        g = UNetGenerator(in_channels, out_channels, width=width)
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        return g.eval()

    return make


@pytest.fixture
def make_geotiff(tmp_path: Path):
    """Write a small GeoTIFF with an explicit CRS and transform; returns its path."""
    import rasterio
    from rasterio.transform import from_origin

    def make(
        array: np.ndarray,
        name: str = "scene.tif",
        crs: str = "EPSG:32631",
        transform=None,
        nodata=None,
        descriptions: tuple[str, ...] | None = None,
    ) -> Path:
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        path = tmp_path / name
        transform = transform or from_origin(500_000.0, 4_600_000.0, 10.0, 10.0)
        with rasterio.open(
            path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
            dtype=array.dtype, crs=crs, transform=transform, nodata=nodata,
        ) as dst:
            dst.write(array)
            if descriptions:
                for i, d in enumerate(descriptions, 1):
                    dst.set_band_description(i, d)
        return path

    return make
