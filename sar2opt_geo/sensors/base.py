"""The :class:`Scene` abstraction every reader implements.

A scene is lazy: nothing is read until :meth:`Scene.read` is called for one band and one
window. ``read`` returns calibrated float32 values with NaN for nodata:

* SAR bands: **linear power sigma0** (not dB, not amplitude); convert with
  :func:`sar2opt_geo.radiometry.to_db`.
* Optical bands: reflectance (0..1) where the product defines it, else float DN.

Georeferencing is either ``crs`` + ``transform`` (map-projected products) or ``gcps``
(``(list_of_GroundControlPoint, gcp_crs)``, e.g. Sentinel-1 GRD in radar geometry).
Windows are in the scene's own pixel grid (rows/cols of the measurement raster).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import BandError
from ..radiometry import Quantity, Scale

__all__ = ["BandInfo", "Scene"]


@dataclass(frozen=True)
class BandInfo:
    """One band as :meth:`Scene.read` returns it."""

    name: str  # "HH", "HV", "VV", "VH", "red", "green", "blue", "nir", "gray", "b1", ...
    quantity: Quantity  # what read() returns
    scale: Scale = Scale.LINEAR  # scale of what read() returns (SAR: always LINEAR power)
    description: str = ""  # e.g. "sigma0 = DN^2 / A^2, sigmaNought LUT, bilinear"
    source: str = ""  # file (or GDAL subdataset) the band is read from


@dataclass
class Scene(abc.ABC):
    """A georeferenced scene with lazily read, calibrated bands."""

    path: Path | str  # str for GDAL virtual file names (/vsicurl/https://...), which Path would fold
    sensor: str  # "Sentinel-1", "ALOS-2 PALSAR-2", "Sentinel-2", "Landsat-8", "optical", "unknown"
    product_id: str
    width: int
    height: int
    bands: dict[str, BandInfo]  # ordered by band order in the product
    crs: CRS | None = None
    transform: Affine | None = None
    gcps: tuple[list[Any], CRS] | None = None
    frequency_band: str | None = None  # radar band: "C" (Sentinel-1), "L" (PALSAR-2), "unknown" (SAR of unknown band); None for optical
    calibration: str = ""  # one-line human description of the calibration applied
    metadata: dict[str, Any] = field(default_factory=dict)  # reader-specific facts (acquisition time, mode ...)

    # -- reading -----------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        """Calibrated values of ``band`` in ``window`` (default: whole scene), float32 2-D, NaN = nodata."""

    def close(self) -> None:  # readers holding open datasets override this
        """Release open datasets."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------
    def band(self, name: str) -> BandInfo:
        """Look up a band by name (case-insensitive); :class:`BandError` names what exists."""
        for key, info in self.bands.items():
            if key.lower() == name.lower():
                return info
        raise BandError(f"{self.path}: no band {name!r} in this {self.sensor} scene; it has {', '.join(self.bands)}")

    @property
    def is_sar(self) -> bool:
        return self.frequency_band is not None

    @property
    def georeferenced(self) -> bool:
        return (self.crs is not None and self.transform is not None and not self.transform.is_identity) or bool(
            self.gcps and self.gcps[0]
        )

    def pixel_spacing_m(self) -> float | None:
        """Approximate ground pixel spacing in metres (mean of x and y), or None if unknown."""
        if self.crs is not None and self.transform is not None and not self.transform.is_identity:
            xres, yres = abs(self.transform.a), abs(self.transform.e)
            if self.crs.is_geographic:
                return float((xres + yres) / 2 * 111_320.0)  # rough, at the equator
            factor = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
            return float((xres + yres) / 2 * factor)
        if self.gcps and self.gcps[0]:
            return _spacing_from_gcps(self.gcps[0])
        return None

    def describe(self) -> dict[str, Any]:
        """What the reader sees, as JSON-friendly values (``sar2opt info``)."""
        return {
            "path": str(self.path),
            "sensor": self.sensor,
            "product_id": self.product_id,
            "frequency_band": self.frequency_band,
            "size": [self.width, self.height],
            "bands": {
                k: {"quantity": v.quantity.value, "scale": v.scale.value, "description": v.description, "source": v.source}
                for k, v in self.bands.items()
            },
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6] if self.transform is not None else None,
            "gcps": len(self.gcps[0]) if self.gcps else 0,
            "pixel_spacing_m": self.pixel_spacing_m(),
            "calibration": self.calibration,
            "metadata": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in self.metadata.items()},
        }


def _spacing_from_gcps(gcps: list[Any]) -> float | None:
    """Approximate metres per pixel from lon/lat GCPs (haversine between the two farthest-apart GCPs)."""
    if len(gcps) < 2:
        return None
    a = min(gcps, key=lambda g: (g.row, g.col))
    b = max(gcps, key=lambda g: (g.row, g.col))
    dpix = math.hypot(b.row - a.row, b.col - a.col)
    if dpix == 0:
        return None
    lat1, lat2 = math.radians(a.y), math.radians(b.y)
    dlat, dlon = lat2 - lat1, math.radians(b.x - a.x)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return float(2 * 6_371_008.8 * math.asin(math.sqrt(h)) / dpix)
