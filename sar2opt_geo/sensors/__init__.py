"""Scene readers: one :class:`Scene` per product, calibrated and georeferenced.

:func:`open_scene` picks the reader from the path (Sentinel-1 GRD SAFE, Sentinel-2 SAFE,
ALOS-2 PALSAR-2 L2.1, any GDAL raster); see :mod:`.open`.
"""

from __future__ import annotations

from .base import BandInfo, Scene
from .geotiff import GeoTiffScene
from .open import check_exists, open_scene, select_bands
from .palsar2 import Palsar2Scene
from .sentinel1_safe import Sentinel1SafeScene
from .sentinel2_safe import Sentinel2SafeScene

__all__ = [
    "BandInfo",
    "GeoTiffScene",
    "Palsar2Scene",
    "Scene",
    "Sentinel1SafeScene",
    "Sentinel2SafeScene",
    "check_exists",
    "open_scene",
    "select_bands",
]
