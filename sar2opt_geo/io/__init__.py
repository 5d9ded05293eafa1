"""Output writers: COG GeoTIFF with mask, PNG quicklook, atomic temp-then-rename."""

from __future__ import annotations

from .atomic import atomic_outputs, check_writable, temp_path_for, work_dir
from .geotiff import ScratchRaster, encode_block, write_cog
from .outputs import check_outputs, input_paths
from .product import Product, open_product
from .quicklook import quicklook_path, write_quicklook

__all__ = [
    "Product",
    "ScratchRaster",
    "atomic_outputs",
    "check_outputs",
    "check_writable",
    "encode_block",
    "input_paths",
    "open_product",
    "quicklook_path",
    "temp_path_for",
    "work_dir",
    "write_cog",
    "write_quicklook",
]
