"""Options of ``sar2opt pairs`` (:func:`sar2opt_geo.data.make_pairs.make_pairs`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["PairsOptions"]


@dataclass(frozen=True)
class PairsOptions:
    """How to build pairs. Sizes in pixels of the pairs' grid; spacing in metres; fractions 0..1."""

    pixel_spacing_m: float | None = None  # ground pixel spacing of the pairs (default: the model card's, 10 m)
    tile_size: int = 256  # tile side, pixels, multiple of 16
    stride: int | None = None  # pixels between tile origins (default: tile_size, no overlap)
    sar_bands: tuple[str, ...] | None = None  # SAR bands stored (default: those translate feeds the model)
    optical_bands: tuple[str, ...] = ("red", "green", "blue")  # optical red, green, blue: names or 1-based indices
    max_nodata: float = 0.0  # largest fraction of a tile invalid on either side
    max_cloud: float = 0.01  # largest fraction of a tile failing the cloud/saturation test
    max_days: float | None = None  # refuse scenes acquired further apart (days)
    append: bool = False  # add to an existing dataset in out_dir
    model: str = "sar"  # model card whose input domain the pairs are stored in (path or bundled name)
    sar_date: str | None = None  # acquisition date overrides (YYYY-MM-DD or ISO 8601)
    optical_date: str | None = None
    scl: str | None = None  # Sentinel-2 scene classification raster (default: the SAFE's SCL_20m, if any)
    resampling: str = "bilinear"  # GDAL resampling when upsampling (downsampling always averages)
    calibration_factor_db: float | None = None  # PALSAR-2 calibration factor override
    thermal_noise_removal: bool = True  # Sentinel-1 SAFE

    def __post_init__(self) -> None:
        from ..options import RESAMPLING_METHODS, parse_bands

        put = object.__setattr__
        put(self, "sar_bands", parse_bands(self.sar_bands))
        put(self, "optical_bands", parse_bands(self.optical_bands) or ("red", "green", "blue"))
        if len(self.optical_bands) != 3:
            raise ConfigError(f"optical_bands must name red, green, blue (3 bands), got {','.join(self.optical_bands)}")
        if self.tile_size < 16 or self.tile_size % 16:
            raise ConfigError(f"tile size must be a multiple of 16 pixels (>= 16), got {self.tile_size}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise ConfigError(f"stride must be a whole number of pixels >= 1, got {self.stride!r}")
        for name in ("max_nodata", "max_cloud"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a fraction within 0..1, got {v}")
        if self.max_days is not None and not self.max_days >= 0:
            raise ConfigError(f"max_days must be >= 0 days, got {self.max_days}")
        if self.pixel_spacing_m is not None and not self.pixel_spacing_m > 0:
            raise ConfigError(f"pixel spacing must be a positive number of metres, got {self.pixel_spacing_m}")
        if self.resampling not in RESAMPLING_METHODS:
            raise ConfigError(f"unknown resampling {self.resampling!r}; e.g. nearest, bilinear, cubic, average")

    @property
    def tile_stride(self) -> int:
        """Pixels between tile origins: ``stride``, else ``tile_size``."""
        return self.tile_size if self.stride is None else int(self.stride)

    def replace(self, **changes: Any) -> PairsOptions:
        return dataclasses.replace(self, **changes)
