"""CRS helpers shared by the readers' resampling and the product writer's final warp."""

from __future__ import annotations

from rasterio.crs import CRS

__all__ = ["lon_wrapped", "warp_crs"]


def warp_crs(crs: CRS | str, bounds: tuple[float, float, float, float]) -> CRS:
    """The CRS to warp from or to for a grid of ``bounds`` in ``crs``: ``crs`` itself, or, for a
    geographic grid whose longitudes leave [-180, 180] (a scene across the antimeridian, written
    with longitudes up to 180.5), the same CRS with ``+lon_wrap=180``, so that PROJ returns
    longitudes in [0, 360) and the pixels east of 180 degrees are found."""
    crs = CRS.from_user_input(crs)
    left, _, right, _ = bounds
    if crs.is_geographic and (right > 180.0 or left < -180.0):
        return lon_wrapped(crs, 180 if right > 180.0 else -180)
    return crs


def lon_wrapped(crs: CRS, centre: int) -> CRS:
    """Geographic ``crs`` with PROJ's ``+lon_wrap=centre``: longitudes in [centre - 180, centre + 180)."""
    return CRS.from_proj4(f"{crs.to_proj4()} +lon_wrap={centre}")
