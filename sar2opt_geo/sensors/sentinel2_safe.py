"""Sentinel-2 L1C / L2A SAFE products (folder, ``MTD_MSIL*.xml`` or ``.zip``): the 10 m bands as reflectance.

Bands: B02, B03, B04, B08 (blue, green, red, nir) at 10 m, from ``GRANULE/*/IMG_DATA/`` (L1C,
``*_B04.jp2``) or ``GRANULE/*/IMG_DATA/R10m/`` (L2A, ``*_B04_10m.jp2``); file paths from the
product metadata's ``IMAGE_FILE`` entries, else found by name. GeoTIFF band files (``.tif``)
are accepted too.

Reflectance (ESA, processing baseline 04.00 and later): ``(DN + offset) / Q`` with ``offset``
from ``RADIO_ADD_OFFSET`` (L1C) or ``BOA_ADD_OFFSET`` (L2A) per band (-1000 since 04.00; absent
before, i.e. 0) and ``Q`` the ``QUANTIFICATION_VALUE`` / ``BOA_QUANTIFICATION_VALUE`` (10000).
DN 0 is nodata.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from ..errors import InputError
from ..radiometry import Quantity, Scale
from ._raster import LazyDataset, open_raster, to_float
from .base import BandInfo, Scene
from .sentinel1_safe import SafeFiles

__all__ = ["BANDS_10M", "Sentinel2SafeScene", "find_s2_root", "open_sentinel2_safe"]

log = logging.getLogger(__name__)

# band code -> (name, band_id used by the offset lists)
BANDS_10M = {"B04": ("red", 3), "B03": ("green", 2), "B02": ("blue", 1), "B08": ("nir", 7)}
_MTD = re.compile(r"^MTD_MSIL(1C|2A)\.xml$")


def find_s2_root(path: Path) -> tuple[SafeFiles, str] | None:
    """(files, metadata file name) for an S2 SAFE folder, its ``MTD_MSIL*.xml`` or a zip holding one."""
    import zipfile

    if path.is_dir():
        for p in path.iterdir():
            if _MTD.match(p.name):
                return SafeFiles(path), p.name
        return None
    if _MTD.match(path.name):
        return SafeFiles(path.parent), path.name
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                parts = n.split("/")
                if len(parts) == 2 and _MTD.match(parts[1]):
                    return SafeFiles(path, parts[0] + "/"), parts[1]
    return None


@dataclass
class Sentinel2SafeScene(Scene):
    """Sentinel-2 10 m bands as reflectance (0..1), NaN = nodata."""

    _datasets: dict[str, LazyDataset] = field(default_factory=dict, repr=False)
    _offsets: dict[str, float] = field(default_factory=dict, repr=False)
    quantification: float = 10000.0

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        name = self.band(band).name
        raw, mask = self._datasets[name].read(1, window)
        dn = to_float(raw, (0,), mask)
        return ((dn + np.float32(self._offsets[name])) / np.float32(self.quantification)).astype(np.float32)

    def close(self) -> None:
        for d in self._datasets.values():
            d.close()


def _first(root: ET.Element, tags: tuple[str, ...]) -> str | None:
    for el in root.iter():
        if el.tag.split("}")[-1] in tags and el.text and el.text.strip():
            return el.text.strip()
    return None


def open_sentinel2_safe(path: str | Path) -> Sentinel2SafeScene:
    """Open a Sentinel-2 L1C/L2A SAFE; see the module docstring."""
    path = Path(path)
    found = find_s2_root(path)
    if found is None:
        raise InputError(f"{path}: not a Sentinel-2 SAFE (no MTD_MSIL1C.xml / MTD_MSIL2A.xml); point to the .SAFE folder or its .zip")
    files, mtd_name = found
    root = files.xml(mtd_name)  # a truncated or junk metadata file: one InputError naming it
    level = "L2A" if "2A" in mtd_name else "L1C"
    baseline = _first(root, ("PROCESSING_BASELINE",)) or ""
    offsets_by_id: dict[int, float] = {}
    try:
        quant = float(_first(root, ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")) or 10000.0)
        for el in root.iter():
            tag = el.tag.split("}")[-1]
            offset_id = el.get("band_id")
            if tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and offset_id is not None:
                offsets_by_id[int(offset_id)] = float(el.text or "")  # no text: ValueError, as a junk number
    except (TypeError, ValueError):
        raise InputError(f"{files.display(mtd_name)}: a quantification value or band offset is not a number; the "
                         "metadata file is damaged: download or unpack the SAFE product again") from None
    try:
        new_baseline = float(baseline) >= 4.0
    except ValueError:
        new_baseline = False
    if new_baseline and not offsets_by_id:
        log.warning("%s: baseline %s but no ADD_OFFSET list; assuming -1000", files.location, baseline)

    names = files.names()
    image_files = [el.text.strip() for el in root.iter() if el.tag.split("}")[-1] == "IMAGE_FILE" and el.text]
    bands: dict[str, BandInfo] = {}
    datasets: dict[str, LazyDataset] = {}
    offsets: dict[str, float] = {}
    for code, (name, band_id) in BANDS_10M.items():
        rel = _band_file(code, image_files, names, level)
        if rel is None:
            continue
        offset = offsets_by_id.get(band_id, -1000.0 if new_baseline else 0.0)
        offsets[name] = offset
        desc = f"reflectance = (DN {offset:+g}) / {quant:g}; DN 0 = nodata" if offset else f"reflectance = DN / {quant:g}; DN 0 = nodata"
        bands[name] = BandInfo(name, Quantity.REFLECTANCE, Scale.LINEAR, desc, rel)
        datasets[name] = LazyDataset(files.gdal_path(rel))
    if not bands:
        raise InputError(f"{files.location}: no 10 m band files (B02/B03/B04/B08) under GRANULE/*/IMG_DATA; the SAFE is incomplete")

    ds = open_raster(next(iter(datasets.values())).path)
    try:
        width, height, crs, transform = ds.width, ds.height, ds.crs, ds.transform
    finally:
        ds.close()
    metadata = {
        "level": level,
        "processing_baseline": baseline,
        "quantification_value": quant,
        "add_offsets": ", ".join(f"{k}: {v:g}" for k, v in offsets.items()),
        "sensing_time": _first(root, ("PRODUCT_START_TIME", "DATATAKE_SENSING_START")) or "",
        "spacecraft": _first(root, ("SPACECRAFT_NAME",)) or "",
        "georeferencing": "transform",
        "container": "zip" if files.zip_prefix is not None else "folder",
    }
    off_txt = ", ".join(sorted({f"{v:+g}" for v in offsets.values()}))
    return Sentinel2SafeScene(
        path=path,
        sensor="Sentinel-2",
        product_id=files.name,
        width=width,
        height=height,
        bands=bands,
        crs=crs,
        transform=transform,
        frequency_band=None,
        calibration=f"{level} reflectance = (DN + offset) / {quant:g}, offset {off_txt} (baseline {baseline or '?'}); DN 0 = nodata",
        metadata=metadata,
        quantification=quant,
        _datasets=datasets,
        _offsets=offsets,
    )


def _band_file(code: str, image_files: list[str], names: list[str], level: str) -> str | None:
    """Relative path of band ``code`` at 10 m, from IMAGE_FILE entries first, then by name."""
    pattern = re.compile(rf"_{code}(_10m)?$")
    for entry in image_files:
        if pattern.search(entry):
            for ext in (".jp2", ".tif"):
                if entry + ext in names:
                    return entry + ext
    candidates = [
        n for n in names
        if n.startswith("GRANULE/") and "/IMG_DATA/" in n
        and re.search(rf"_{code}(_10m)?\.(jp2|tif)$", n) and ("/R20m/" not in n and "/R60m/" not in n)
    ]
    return min(candidates) if candidates else None
