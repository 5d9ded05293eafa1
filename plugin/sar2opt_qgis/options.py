"""Translate options as the plugin shows them: defaults and limits of the tiling parameters,
and the QGIS parameter names that stand for the library's option names in messages.

Standard library only (tested outside QGIS). The defaults and the option names come from the
library's own ``sar2opt_geo/options.py`` (stdlib only: the defaults of its ``TranslateOptions``
fields — tile size and overlap unset, i.e. chosen for the model within the memory budget —,
its ``DEFAULT_MAX_MEMORY_MB`` and ``BACKENDS``, and each option field's ``flag`` and ``qgis`` metadata), read as source text from the
backend wheel bundled with the plugin or, in a checkout, from the repository; nothing of
``sar2opt_geo`` is imported (no torch, no rasterio in QGIS's Python). Without that file the
values below are used. The limits are the engine's (``sar2opt_geo.engine.tiling``: tiles and
overlaps are multiples of the generator's downsampling factor 16, overlap at least
``2 * margin`` = 96).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "DOWNSAMPLING",
    "INPUT_UNITS",
    "MAX_MEMORY_MB_DEFAULT",
    "OVERLAP_DEFAULT",
    "OVERLAP_MIN",
    "PRECISIONS",
    "TILE_SIZE_DEFAULT",
    "TILE_SIZE_MAX",
    "TILE_SIZE_MIN",
    "backend_options",
    "check_tiling",
    "qgis_message",
]

PLUGIN_DIR = Path(__file__).resolve().parent
_MODULE = "sar2opt_geo/options.py"


def backend_options(plugin_dir: Path = PLUGIN_DIR) -> ModuleType | None:
    """The library's ``sar2opt_geo/options.py``, executed on its own under a private name (it
    imports only the standard library at module level), from the bundled wheel or the checkout
    the plugin lives in; ``None`` when neither has it (or it cannot be read)."""
    source = None
    for wheel in sorted((plugin_dir / "wheels").glob("sar2opt_geo-*.whl"), reverse=True):
        try:
            with zipfile.ZipFile(wheel) as zf:
                source = zf.read(_MODULE).decode("utf-8")
            break
        except (KeyError, OSError, zipfile.BadZipFile):
            continue
    if source is None:
        path = plugin_dir.parents[1] / _MODULE if len(plugin_dir.parents) > 1 else None
        if path is None or not path.is_file():
            return None
        source = path.read_text(encoding="utf-8")
    name = "sar2opt_qgis._backend_options"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the module up while building the class
    try:
        exec(compile(source, f"<{_MODULE} of the backend>", "exec"), module.__dict__)  # noqa: S102 - our own file
    except Exception:  # noqa: BLE001 - an unreadable file means the fallbacks below
        sys.modules.pop(name, None)
        return None
    return module


_LIBRARY = backend_options()

DOWNSAMPLING = 16
"""Total downsampling of the bundled generators: tile sizes and overlaps are multiples of it (pixels)."""
MARGIN = 48
"""Pixels next to an inner tile edge that get no weight (the generator's receptive-field margin)."""


def _field_default(name: str, fallback: object) -> object:
    """The default of ``TranslateOptions.<name>`` in the library, else ``fallback``."""
    for f in getattr(_LIBRARY, "option_fields", list)():
        if f.name == name:
            return f.default
    return fallback


TILE_SIZE_DEFAULT: int | None = _field_default("tile_size", None)
"""None: the backend chooses the tile for the model within the memory budget."""
OVERLAP_DEFAULT: int | None = _field_default("overlap", None)
"""None: twice the model's receptive margin (exact tiles)."""
KEEP_STRUCTURE_DEFAULT = bool(_field_default("keep_structure", False))
"""Whether translate adds the SAR's own fine structure to the output by default."""
MAX_MEMORY_MB_DEFAULT = float(getattr(_LIBRARY, "DEFAULT_MAX_MEMORY_MB", 1500))
BACKENDS: tuple[str, ...] = tuple(getattr(_LIBRARY, "BACKENDS", ("torch", "onnxruntime", "openvino")))
PRECISIONS: tuple[str, ...] = tuple(getattr(_LIBRARY, "PRECISIONS", ("auto", "fp32", "bf16")))
INPUT_UNITS: tuple[str, ...] = tuple(getattr(_LIBRARY, "INPUT_UNITS", ("db", "linear", "amplitude", "scaled", "reflectance", "dn")))
OVERLAP_MIN = 2 * MARGIN
"""Smallest overlap without gaps between tiles (pixels)."""
TILE_SIZE_MIN = OVERLAP_MIN + DOWNSAMPLING
"""Smallest tile that is larger than the smallest overlap (pixels)."""
TILE_SIZE_MAX = 8192
OVERLAP_MAX = TILE_SIZE_MAX - DOWNSAMPLING


def check_tiling(tile_size: int | None, overlap: int | None) -> str | None:
    """``None`` when ``TILE_SIZE`` and ``OVERLAP`` can work (unset = chosen by the backend), else the
    message naming them and a fix."""
    d = DOWNSAMPLING
    if tile_size is not None and tile_size % d:
        return f"TILE_SIZE={tile_size} is not a multiple of {d} pixels; use e.g. {max(TILE_SIZE_MIN, -(-tile_size // d) * d)}"
    if overlap is None:
        return None
    if overlap % d:
        return f"OVERLAP={overlap} is not a multiple of {d} pixels; use e.g. {max(OVERLAP_MIN, -(-overlap // d) * d)}"
    if overlap < OVERLAP_MIN:
        return f"OVERLAP={overlap} is smaller than {OVERLAP_MIN} pixels (twice the model's {MARGIN} px margin): tiles would leave gaps; use {OVERLAP_MIN} or more"
    if tile_size is not None and overlap >= tile_size:
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
"""Which QGIS parameter stands for a CLI flag (``--tile``) or an API keyword (``tile_size=``):
the library's translate options (field name and flags -> its ``qgis`` name) over the plugin's
own list, which also covers batch (``--buffer``) and composite (``--co``) options."""


def _library_names(library: ModuleType | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for f in getattr(library, "option_fields", list)():
        qgis = f.metadata.get("qgis")
        if qgis:
            names[f.name] = qgis
            for flag in f.metadata.get("flag") or ():
                names[flag] = qgis
    return names


BACKEND_NAMES.update(_library_names(_LIBRARY))

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
