"""Band and sensor vocabularies shared by the readers (names only, no I/O)."""

from __future__ import annotations

import re

from ..errors import UnsupportedFormatError

__all__ = [
    "COLOUR_NAMES",
    "LANDSAT7_BANDS",
    "LANDSAT8_BANDS",
    "POLARISATIONS",
    "S2_BANDS",
    "SENSOR_ALIASES",
    "find_polarisation",
    "normalise_sensor",
]

POLARISATIONS = ("HH", "HV", "VH", "VV")

# Sentinel-2 MSI band codes -> names used by the library.
S2_BANDS = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "water_vapour", "B10": "cirrus",
    "B11": "swir1", "B12": "swir2",
}
# Landsat-8 OLI/TIRS (Collection 1/2 band numbers).
LANDSAT8_BANDS = {
    1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2", 8: "pan", 9: "cirrus",
    10: "tir1", 11: "tir2",
}
# Landsat-7 ETM+.
LANDSAT7_BANDS = {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 6: "tir", 7: "swir2", 8: "pan"}

COLOUR_NAMES = ("red", "green", "blue", "nir", "gray", "pan", "coastal", "swir1", "swir2", "alpha")

# canonical sensor name -> accepted spellings (compared lower-case, without punctuation)
SENSOR_ALIASES = {
    "Sentinel-1": ("sentinel1", "s1", "s1a", "s1b", "s1c"),
    "ALOS-2 PALSAR-2": ("alos2", "palsar2", "alos2palsar2", "palsar"),
    "Sentinel-2": ("sentinel2", "s2", "s2a", "s2b", "s2c"),
    "Landsat-8": ("landsat8", "l8", "lc08", "oli"),
    "Landsat-7": ("landsat7", "l7", "le07", "etm"),
    "SAR": ("sar",),
    "optical": ("optical", "opt"),
}
SAR_SENSORS = ("Sentinel-1", "ALOS-2 PALSAR-2", "SAR")


def normalise_sensor(name: str | None) -> str | None:
    """Canonical sensor name for a user spelling (``"s1"``, ``"Sentinel-1"``, ``"palsar2"``); None stays None."""
    if name is None:
        return None
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for canonical, aliases in SENSOR_ALIASES.items():
        if key == re.sub(r"[^a-z0-9]", "", canonical.lower()) or key in aliases:
            return canonical
    raise UnsupportedFormatError(f"sensor={name!r} is unknown; use one of {', '.join(SENSOR_ALIASES)}")


_POL_RE = re.compile(r"(?<![a-z])(hh|hv|vh|vv)(?![a-z])")


def find_polarisation(text: str) -> str | None:
    """The one polarisation token (HH/HV/VH/VV, delimited by non-letters) in ``text``, else None."""
    found = {m.upper() for m in _POL_RE.findall(text.lower())}
    return found.pop() if len(found) == 1 else None
