"""STAC items as inputs: the item's backscatter assets, chosen by polarisation.

A STAC Item is plain GeoJSON (``"type": "Feature"``) whose ``assets`` map keys to ``href``s; the
SAR collections name their polarisation assets after it (Planetary Computer ``sentinel-1-rtc``:
``vv``, ``vh``; Element 84 / AWS ``sentinel-1-grd``: ``vv``, ``vh``; OPERA: ``VV``, ``VH``).
An asset is taken when its key, title or file name holds one polarisation token; relative hrefs
are resolved against the item's own location. The item is read with the standard library (a
local file, or ``http(s)://`` with a 30 s timeout); the assets are then opened as one file per
polarisation (:mod:`sar2opt_geo.sensors.polarisation_files`), remote ones through GDAL's
``/vsicurl/``. Signed URLs (Planetary Computer) must be signed before: pass the signed item.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import InputError
from ._names import find_polarisation

__all__ = ["is_stac_item", "stac_polarisation_assets"]

_POLS = ("HH", "HV", "VV", "VH")


def is_stac_item(path: str) -> bool:
    """True for a ``.json`` path or URL (checked to be an item when read)."""
    return str(path).lower().split("?", 1)[0].endswith(".json")


def _load(location: str) -> dict:
    try:
        if re.match(r"^https?://", location, re.IGNORECASE):
            with urllib.request.urlopen(location, timeout=30) as response:
                text = response.read().decode("utf-8")
        else:
            text = Path(location).read_text(encoding="utf-8")
    except (OSError, urllib.error.URLError, UnicodeDecodeError) as exc:
        raise InputError(f"{location}: cannot read the STAC item ({getattr(exc, 'reason', exc)})") from None
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{location}: not JSON ({exc.msg} at line {exc.lineno}); give a STAC item") from None
    if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{location}: not a STAC item (a GeoJSON Feature with assets); give an item, not a collection "
                         "or a search result")
    return item


def stac_polarisation_assets(location: str | Path) -> list[str]:
    """The hrefs of the item's polarisation assets (HH, HV, VV, VH order), absolute: URLs or local paths."""
    location = str(location)
    item = _load(location)
    base = location if re.match(r"^https?://", location, re.IGNORECASE) else Path(location).resolve().as_uri()
    found: dict[str, str] = {}
    for key, asset in item["assets"].items():
        if not isinstance(asset, dict) or not asset.get("href"):
            continue
        href = str(asset["href"])
        name = urllib.parse.urlparse(href).path.rsplit("/", 1)[-1]
        pol = next((p for p in (find_polarisation(str(key).lower()), find_polarisation(str(asset.get("title", "")).lower()),
                                find_polarisation(re.sub(r"\.[a-z0-9]+$", "", name.lower()))) if p), None)
        if pol is None or pol in found:
            continue
        absolute = urllib.parse.urljoin(base, href)
        found[pol] = urllib.parse.unquote(absolute[len("file://"):]) if absolute.startswith("file://") else absolute
    if not found:
        raise InputError(f"{location}: the STAC item has no polarisation assets (keys or files named vv, vh, hh, hv); "
                         f"it has {', '.join(item['assets']) or 'none'}")
    return [found[p] for p in _POLS if p in found]
