"""Acquisition dates of scenes, for pairing SAR and optical scenes in time (``sar2opt pairs --max-days``).

Where a date comes from, first match wins (the source is recorded next to the date):

1. the caller's override (``--sar-date`` / ``--optical-date``: ``YYYY-MM-DD`` or an ISO 8601 time);
2. the reader's metadata: ``start_time`` (Sentinel-1 SAFE annotation), ``sensing_time``
   (Sentinel-2 SAFE ``PRODUCT_START_TIME``), ``observation_date`` (PALSAR-2 ``summary.txt``
   ``Lbi_ObservationDate``);
3. GeoTIFF tags naming an acquisition (``ACQUISITION_DATE``, ``ACQUISITION_START_TIME``,
   ``SENSING_TIME``, ``DATE_ACQUIRED``, ``START_TIME``, ``DATETIME_ACQUIRED``; never
   ``TIFFTAG_DATETIME``, which is when the *file* was written);
4. the file or product name: ``YYYYMMDDTHHMMSS`` (Sentinel-1/-2 product names, e.g.
   ``S1A_IW_GRDH_1SDV_20170617T064724_...``), the ``-YYMMDD-`` field of PALSAR-2 image names
   (``IMG-HH-ALOS2015976960-140909-...``), else the first 8-digit ``YYYYMMDD`` with a plausible
   year (1990-2099), e.g. Landsat's ``LC08_L1TP_224078_20200518_...``.

Otherwise the date is unknown (None); ``--max-days`` then refuses the pair and says how to give it.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["acquisition_time", "days_apart", "parse_time"]

_META_KEYS = ("start_time", "sensing_time", "observation_date", "acquisition_time", "acquisition_date")
_TAG_KEYS = ("ACQUISITION_DATE", "ACQUISITION_START_TIME", "SENSING_TIME", "DATE_ACQUIRED", "START_TIME",
             "DATETIME_ACQUIRED", "ACQUISITIONDATE")
_COMPACT = re.compile(r"(?<!\d)((?:19|20)\d{6})T(\d{6})(?!\d)")
_PALSAR2 = re.compile(r"ALOS2\d{9}-(\d{6})-", re.IGNORECASE)
_YMD = re.compile(r"(?<!\d)((?:199|20\d)\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)")


def parse_time(text: Any) -> _dt.datetime | None:
    """A UTC datetime from ``YYYY-MM-DD``, ISO 8601 (``...T06:47:24.123Z``), ``YYYYMMDD[THHMMSS]`` or
    ``YYYY:MM:DD HH:MM:SS``; None if ``text`` is empty or none of these."""
    s = str(text or "").strip()
    if not s:
        return None
    m = re.fullmatch(r"((?:19|20)\d{6})(?:T?(\d{6}))?", s)
    if m:
        try:
            return _dt.datetime.strptime(m[1] + (m[2] or "000000"), "%Y%m%d%H%M%S").replace(tzinfo=_dt.UTC)
        except ValueError:
            return None
    s = re.sub(r"^(\d{4}):(\d{2}):(\d{2})", r"\1-\2-\3", s).replace("Z", "+00:00")
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)  # fromisoformat takes at most microseconds
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


def _tags(path: Path) -> dict[str, str]:
    try:
        import rasterio

        with rasterio.open(path) as ds:
            return {k.upper(): v for k, v in ds.tags().items()}
    except Exception:  # noqa: BLE001 - a folder, a SAFE, anything rasterio does not open: no tags
        return {}


def acquisition_time(scene: Any, override: str | None = None) -> tuple[_dt.datetime | None, str]:
    """``(UTC datetime or None, where it came from)`` for ``scene`` (see the module docstring)."""
    if override:
        t = parse_time(override)
        if t is None:
            raise ConfigError(f"date {override!r} is not understood; give YYYY-MM-DD or an ISO 8601 time")
        return t, "given"
    meta = getattr(scene, "metadata", {}) or {}
    for key in _META_KEYS:
        t = parse_time(meta.get(key))
        if t is not None:
            return t, f"reader metadata {key}"
    path = Path(scene.path)
    if path.is_file():
        tags = _tags(path)
        for key in _TAG_KEYS:
            t = parse_time(tags.get(key))
            if t is not None:
                return t, f"tag {key}"
    for name in (path.name, str(getattr(scene, "product_id", "")), path.parent.name):
        m = _COMPACT.search(name)
        if m:
            return parse_time(m[1] + "T" + m[2]), f"name {name}"
        m = _PALSAR2.search(name)
        if m:
            return parse_time("20" + m[1]), f"name {name}"
        m = _YMD.search(name)
        if m and parse_time(m[1]) is not None:
            return parse_time(m[1]), f"name {name}"
    return None, "unknown"


def days_apart(a: _dt.datetime | None, b: _dt.datetime | None) -> float | None:
    """``|a - b|`` in days (None if either is unknown)."""
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 86400.0
