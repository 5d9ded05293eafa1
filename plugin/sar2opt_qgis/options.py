"""Translate options as the plugin shows them: defaults and limits of the tiling parameters,
and the QGIS parameter names that stand for the library's option names in messages.

Standard library only (tested outside QGIS). The numbers are the library's
(``sar2opt_geo.engine.tiling``: tiles and overlaps are multiples of the generator's
downsampling factor 16, overlap at least ``2 * margin`` = 96, ``TranslateOptions`` defaults
512 / 128); they live here once for every algorithm, ready to be read from
``sar2opt_geo/options.py`` when the library defines them there.
"""

from __future__ import annotations

import re

__all__ = [
    "BACKEND_NAMES",
    "DOWNSAMPLING",
    "OVERLAP_DEFAULT",
    "OVERLAP_MIN",
    "TILE_SIZE_DEFAULT",
    "TILE_SIZE_MAX",
    "TILE_SIZE_MIN",
    "check_tiling",
    "qgis_message",
]

DOWNSAMPLING = 16
"""Total downsampling of the bundled generators: tile sizes and overlaps are multiples of it (pixels)."""
MARGIN = 48
"""Pixels next to an inner tile edge that get no weight (the generator's receptive-field margin)."""
TILE_SIZE_DEFAULT = 512
OVERLAP_DEFAULT = 128
OVERLAP_MIN = 2 * MARGIN
"""Smallest overlap without gaps between tiles (pixels)."""
TILE_SIZE_MIN = OVERLAP_MIN + DOWNSAMPLING
"""Smallest tile that is larger than the smallest overlap (pixels)."""
TILE_SIZE_MAX = 8192
OVERLAP_MAX = TILE_SIZE_MAX - DOWNSAMPLING


def check_tiling(tile_size: int, overlap: int) -> str | None:
    """``None`` when ``TILE_SIZE`` and ``OVERLAP`` can work, else the message naming them and a fix."""
    d = DOWNSAMPLING
    if tile_size % d:
        return f"TILE_SIZE={tile_size} is not a multiple of {d} pixels; use e.g. {max(TILE_SIZE_MIN, -(-tile_size // d) * d)}"
    if overlap % d:
        return f"OVERLAP={overlap} is not a multiple of {d} pixels; use e.g. {max(OVERLAP_MIN, -(-overlap // d) * d)}"
    if overlap < OVERLAP_MIN:
        return f"OVERLAP={overlap} is smaller than {OVERLAP_MIN} pixels (twice the model's {MARGIN} px margin): tiles would leave gaps; use {OVERLAP_MIN} or more"
    if overlap >= tile_size:
        return f"OVERLAP={overlap} must be smaller than TILE_SIZE={tile_size}; use a larger TILE_SIZE or a smaller OVERLAP"
    return None


BACKEND_NAMES: dict[str, str] = {
    # CLI flag or API keyword -> the QGIS parameter a user of the plugin can change
    "--tile": "TILE_SIZE",
    "tile_size": "TILE_SIZE",
    "--overlap": "OVERLAP",
    "overlap": "OVERLAP",
    "--bands": "BANDS",
    "bands": "BANDS",
    "--model": "MODEL",
    "--device": "DEVICE",
    "--t-srs": "TARGET_CRS",
    "dst_crs": "TARGET_CRS",
    "--match-input-grid": "MATCH_INPUT_GRID",
    "match_input_grid": "MATCH_INPUT_GRID",
    "--buffer": "BUFFER",
    "buffer_m": "BUFFER",
    "--name-field": "NAME_FIELD",
    "name_field": "NAME_FIELD",
    "--aoi": "AOI",
    "--workers": "WORKERS",
    "--co": "CO_POL",
    "co": "CO_POL",
    "--cross": "CROSS_POL",
    "cross": "CROSS_POL",
    "--stretch": "STRETCH",
}
"""Which QGIS parameter stands for a CLI flag (``--tile``) or an API keyword (``tile_size=``)."""

# Phrases of the library that have no one-to-one flag: rewritten first.
_PHRASES = (
    (re.compile(r"dst_crs/dst_res \(--t-srs/--tr\)"), "TARGET_CRS"),
    (re.compile(r"dst_crs/dst_res"), "TARGET_CRS"),
    (re.compile(r"\s*\(co=, cross=\)"), ""),
    (re.compile(r"\bpass (?=--[a-z])"), "set "),
)
_KEYWORDS_ALONE = {"match_input_grid", "dst_crs"}  # distinctive enough to replace as whole words


def _pattern(names: dict[str, str]) -> re.Pattern:
    alternatives = []
    for name in sorted(names, key=len, reverse=True):
        if name.startswith("--"):
            alternatives.append(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
        elif name in _KEYWORDS_ALONE:
            alternatives.append(rf"\b{re.escape(name)}\b")
        else:  # ordinary words (overlap, bands, co) only as keyword=value
            alternatives.append(rf"\b{re.escape(name)}(?==)")
    return re.compile("|".join(alternatives))


_NAMES_PATTERN = _pattern(BACKEND_NAMES)


def qgis_message(text: str, names: dict[str, str] | None = None) -> str:
    """``text`` (a library or CLI message) with option names replaced by QGIS parameter names:
    ``tile_size=100 ...`` -> ``TILE_SIZE=100 ...``, ``pass --co and --cross`` -> ``set CO_POL and CROSS_POL``."""
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    mapping = BACKEND_NAMES if names is None else names
    pattern = _NAMES_PATTERN if names is None else _pattern(mapping)
    return pattern.sub(lambda m: mapping[m.group(0)], text)
