"""``open_scene``: one entry point that picks the reader from what the path is.

Dispatch, in order:

1. Sentinel-1 SAFE: a ``*.SAFE`` folder with ``manifest.safe``, the manifest itself, a ``.zip``
   holding one, or a ``measurement/*.tiff`` inside one (that polarisation only).
2. Sentinel-2 SAFE: a folder, ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` or a ``.zip`` holding one.
3. ALOS-2 PALSAR-2: a product folder with ``IMG-<pol>-ALOS2...tif`` files, one of those files
   (that polarisation only), its ``summary.txt`` or its ``LED-`` file.
4. Anything else GDAL opens (GeoTIFF, VRT, ...): :mod:`.geotiff`.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from ..errors import BandError, ConfigError, InputError, UnsupportedFormatError
from ._names import normalise_sensor
from ._raster import looks_like_tiff
from .base import Scene

__all__ = ["URL_PREFIXES", "check_exists", "gdal_name", "open_scene", "select_bands"]

log = logging.getLogger(__name__)

#: URL schemes and the GDAL virtual file systems that read them (range requests, no download).
URL_PREFIXES = {"http://": "/vsicurl/http://", "https://": "/vsicurl/https://", "s3://": "/vsis3/",
                "gs://": "/vsigs/", "az://": "/vsiaz/"}


def gdal_name(path: str | os.PathLike) -> str:
    """``path`` as GDAL reads it: ``http(s)://`` -> ``/vsicurl/http(s)://``, ``s3://``, ``gs://``,
    ``az://`` -> ``/vsis3/``, ``/vsigs/``, ``/vsiaz/``; anything else unchanged."""
    raw = str(path)
    for prefix, vsi in URL_PREFIXES.items():
        if raw.lower().startswith(prefix):
            return vsi + raw[len(prefix):]
    return raw


def check_exists(path: str | os.PathLike) -> bool:
    """Raise :class:`InputError` if ``path`` is neither an existing file or folder nor a GDAL name
    (``/vsi...``, ``DRIVER:...``) or a URL (:func:`gdal_name`); return whether it is a GDAL name.
    Cheap: the CLI calls it before loading anything heavy (a URL is checked when it is opened)."""
    raw = gdal_name(path)
    is_gdal_name = raw.startswith("/vsi") or bool(re.match(r"^[A-Z0-9_]{2,}:", raw))  # not "C:\\..."
    if not is_gdal_name and not Path(raw).exists():
        raise InputError(f"{raw}: no such file or folder; check the path")
    return is_gdal_name


def open_scene(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    bands: Sequence[str | int] | None = None,
    *,
    sensor: str | None = None,
    units: str | None = None,
    calibration_factor_db: float | None = None,
    thermal_noise_removal: bool = True,
) -> Scene:
    """Open a SAR or optical scene lazily (nothing but metadata is read here).

    ``bands``: names (case-insensitive: "VH", "red", "b1") or 1-based indices in the
    product's band order; the scene keeps only those, in that order (:class:`BandError`
    names what exists). ``sensor``: force the reader's sensor family for plain rasters
    ("Sentinel-1", "ALOS-2", "SAR", "Sentinel-2", "Landsat-8", "optical").
    ``units``: how a plain raster stores values ("db", "linear", "amplitude", "scaled",
    "reflectance", "dn"). ``calibration_factor_db``: PALSAR-2 CF (default from the LED file,
    else -83.0 dB). ``thermal_noise_removal``: Sentinel-1 SAFE noise LUTs (default on).

    One file per polarisation (:mod:`sar2opt_geo.sensors.polarisation_files`): ``path`` may be a
    list of single-polarisation rasters, a glob pattern (``"OPERA_*_V?.tif"``) or a folder of them,
    or a STAC item (``.json`` file or URL, :mod:`sar2opt_geo.sensors.stac`).
    """
    from .polarisation_files import find_polarisation_files, open_polarisation_files

    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            if calibration_factor_db is not None:
                raise ConfigError("--calibration-factor (calibration_factor_db) applies to PALSAR-2 products only; "
                                  "leave it out for polarisation files")
            scene: Scene = open_polarisation_files([gdal_name(p) for p in path], sensor=normalise_sensor(sensor),
                                                   units=units)
            return select_bands(scene, bands) if bands is not None else scene
        path = path[0]
    from .stac import is_stac_item, stac_polarisation_assets

    if is_stac_item(str(path)):  # a STAC item: its polarisation assets
        hrefs = stac_polarisation_assets(str(path))
        return open_scene(hrefs if len(hrefs) > 1 else hrefs[0], bands, sensor=sensor, units=units,
                          calibration_factor_db=calibration_factor_db)
    raw = gdal_name(cast("str | os.PathLike", path))  # lists and tuples were taken apart above
    if any(c in raw for c in "*?[") and not Path(raw).exists():  # a glob pattern
        files = find_polarisation_files(raw)
        if not files:
            raise InputError(f"{raw}: the pattern matches no two files of different polarisations "
                             "(names with _VV, _VH, _HH or _HV)")
        return open_scene(files, bands, sensor=sensor, units=units, calibration_factor_db=calibration_factor_db)
    is_gdal_name = check_exists(raw)
    p = Path(raw)
    forced = normalise_sensor(sensor)
    if calibration_factor_db is not None:
        from .palsar2 import is_palsar2
        from .palsar2_mosaic import is_palsar2_mosaic

        if is_gdal_name or not (is_palsar2(p) or is_palsar2_mosaic(p)):  # it was silently ignored for every other input
            raise ConfigError(
                f"{raw}: --calibration-factor (calibration_factor_db) applies to ALOS-2 PALSAR-2 products "
                "(a product folder or its IMG-/LED- files, or a mosaic tile) only; this input is read as it is "
                "stored: leave it out"
            )
    scene = _dispatch(p, raw, is_gdal_name, forced, units, calibration_factor_db, thermal_noise_removal)
    if bands is not None:
        select_bands(scene, bands)
    return scene


def _dispatch(p, raw, is_gdal_name, forced, units, calibration_factor_db, thermal_noise_removal) -> Scene:
    from .geotiff import open_geotiff
    from .polarisation_files import find_polarisation_files

    if is_gdal_name:
        return open_geotiff(raw, sensor=forced, units=units)

    from .palsar2 import is_palsar2, open_palsar2
    from .sentinel1_safe import find_safe_root, open_sentinel1_safe
    from .sentinel2_safe import find_s2_root, open_sentinel2_safe

    if find_safe_root(p) is not None:
        _plain_only(p, "Sentinel-1 SAFE", forced, units)
        return open_sentinel1_safe(p, thermal_noise_removal=thermal_noise_removal)
    if p.is_file() and p.parent.name == "measurement" and p.parent.parent.name.upper().endswith(".SAFE"):
        safe = p.parent.parent
        if (safe / "manifest.safe").is_file():
            _plain_only(p, "Sentinel-1 SAFE", forced, units)
            scene = open_sentinel1_safe(safe, thermal_noise_removal=thermal_noise_removal)
            pol = next((b for b in scene.bands.values() if b.source.endswith(p.name)), None)
            if pol is not None:
                select_bands(scene, [pol.name])
            return scene
    if find_s2_root(p) is not None:
        _plain_only(p, "Sentinel-2 SAFE", forced, units)
        return open_sentinel2_safe(p)
    from .palsar2_mosaic import is_palsar2_mosaic, open_palsar2_mosaic

    if is_palsar2_mosaic(p):
        _plain_only(p, "PALSAR-2 mosaic", forced, units)
        return open_palsar2_mosaic(p, calibration_factor_db=calibration_factor_db)
    if is_palsar2(p):
        _plain_only(p, "PALSAR-2", forced, units)
        return open_palsar2(p, calibration_factor_db=calibration_factor_db)
    if p.is_dir() and (files := find_polarisation_files(p)):
        from .polarisation_files import open_polarisation_files

        return open_polarisation_files(files, sensor=forced, units=units)
    if p.is_dir():
        raise UnsupportedFormatError(
            f"{p}: folder is not a Sentinel-1/Sentinel-2 SAFE nor a PALSAR-2 product; pass a raster file inside it"
        )
    if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
        raise UnsupportedFormatError(f"{p}: zip holds no Sentinel-1/-2 SAFE product; unzip it and pass the raster file")
    try:
        return open_geotiff(p, sensor=forced, units=units)
    except InputError as exc:
        if looks_like_tiff(str(p)):  # a (Geo)TIFF that is truncated or damaged: say so, not "unknown format"
            raise
        raise UnsupportedFormatError(
            f"{p}: not a raster GDAL can read nor a known SAR/optical product; convert it to GeoTIFF"
        ) from exc


def _plain_only(path: Path, product: str, sensor: str | None, units: str | None) -> None:
    """Products say what they hold: a ``sensor``/``units`` override would be silently ignored, so it is refused."""
    if sensor is not None or units is not None:
        raise ConfigError(f"{path}: --sensor/--input-units (sensor=, units=) describe plain rasters; a {product} "
                          "product says what it holds itself: leave them out")


def select_bands(scene: Scene, bands: Sequence[str | int]) -> Scene:
    """Keep only ``bands`` (names or 1-based indices into the current order) on ``scene``, in that order."""
    if isinstance(bands, (str, int)):
        bands = [bands]
    current = list(scene.bands)
    chosen: dict = {}
    for key in bands:
        name = _resolve(scene, current, key)
        chosen[name] = scene.bands[name]
    scene.bands = chosen
    return scene


def _resolve(scene: Scene, current: list[str], key: str | int) -> str:
    if isinstance(key, str):
        for name in current:
            if name.lower() == key.strip().lower():
                return name
        m = re.fullmatch(r"(?:b|band)?\s*(\d+)", key.strip().lower())
        index = int(m.group(1)) if m else None
    else:
        index = int(key)
    if index is not None and 1 <= index <= len(current):
        return current[index - 1]
    raise BandError(
        f"{scene.path}: no band {key!r} in this {scene.sensor} scene; it has {', '.join(current)} "
        f"(or 1..{len(current)} by position)"
    )
