"""JAXA's ALOS-2 PALSAR-2 (and ALOS PALSAR) yearly 25 m mosaic tiles, calibrated to gamma0.

A tile is a folder of GeoTIFFs named ``<tile>_<yy>_<kind>[_<code>].tif`` (e.g.
``N23W161_20_sl_HH_F02DAR.tif``; 1 x 1 degree, EPSG:4326, 0.8 arc-second pixels):

* ``sl_HH``, ``sl_HV`` (``sl_VV``, ``sl_VH``): uint16 amplitude DN, one file per polarisation;
* ``mask``: uint8 quality mask (0 no data, 50 ocean/water, 100 layover, 150 shadow, 255 valid);
* ``linci``: local incidence angle in degrees; ``date``: acquisition day (days since 2014-05-24);
* ``<tile>_<yy>_<code>.xml``: CARD4L NRB metadata, with the conversion equation and the dates.

Calibration (the XML's ``BackscatterConversionEq``, JAXA's mosaic documentation):
``gamma0[dB] = 10 log10(DN^2) + CF`` with ``CF = -83.0``, i.e. linear power
``gamma0 = DN^2 * 10^(CF/10)``: radiometrically terrain-corrected gamma nought. The factor is
read from the XML when it holds the equation, else -83.0 dB. No data: DN 0, the GeoTIFF's nodata
value (1 in the JAXA files) and mask 0; ocean, layover and shadow pixels are kept (the mask is in
:meth:`Palsar2MosaicScene.read_aux`).
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
from ._raster import LazyDataset, check_readable, open_raster
from .base import BandInfo
from .palsar2 import DEFAULT_CALIBRATION_FACTOR_DB, Palsar2Scene

__all__ = ["MOSAIC_NAME", "Palsar2MosaicScene", "is_palsar2_mosaic", "open_palsar2_mosaic"]

log = logging.getLogger(__name__)

#: ``N23W161_20_sl_HH_F02DAR.tif``, ``N23W161_20_mask_F02DAR.tif``, ``N00E000_10_sl_HV.tif`` (older PALSAR).
MOSAIC_NAME = re.compile(
    r"^(?P<tile>[NS]\d{2}[EW]\d{3})_(?P<yy>\d{2})_(?P<kind>sl_(?:HH|HV|VV|VH)|mask|linci|date)"
    r"(?:_(?P<code>[A-Z0-9]+))?\.tiff?$", re.IGNORECASE)
_EQUATION = re.compile(r"log10\s*\(\s*DN\s*\^\s*2\s*\)\s*([+-])\s*([0-9.]+)", re.IGNORECASE)
MASK_VALUES = {0: "no data", 50: "ocean/water", 100: "layover", 150: "shadow", 255: "valid"}


def _files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = MOSAIC_NAME.match(p.name)
        if m:
            kind = m.group("kind")
            out[kind.upper().removeprefix("SL_") if kind.lower().startswith("sl_") else kind.lower()] = p
    return out


def is_palsar2_mosaic(path: Path) -> bool:
    """True for a mosaic tile folder (it holds ``<tile>_<yy>_sl_<pol>...tif`` files) or one of its files."""
    try:
        if path.is_dir():
            return any(k in ("HH", "HV", "VV", "VH") for k in _files(path))
        return bool(MOSAIC_NAME.match(path.name)) or (
            path.suffix.lower() == ".xml" and re.match(r"^[NS]\d{2}[EW]\d{3}_\d{2}", path.name) is not None)
    except OSError:
        return False


def _read_xml(folder: Path) -> dict[str, str]:
    """What the CARD4L XML says that the reader uses (empty where there is no XML)."""
    xmls = sorted(p for p in folder.glob("*.xml") if re.match(r"^[NS]\d{2}[EW]\d{3}_\d{2}", p.name))
    if not xmls:
        return {}
    try:
        root = ET.parse(xmls[0]).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{xmls[0]}: not readable XML ({exc}); restore the file from the tile's archive") from None

    def text(tag: str) -> str:
        node = root.find(f".//{tag}")
        return (node.text or "").strip() if node is not None else ""

    return {
        "xml": str(xmls[0]),
        "equation": text("BackscatterConversionEq"),
        "measurement": text("BackscatterMeasurement"),
        "first_date": text("FirstAcquistionDate") or text("FirstAcquisitionDate"),
        "last_date": text("LastAcquistitionDate") or text("LastAcquisitionDate"),
        "satellite": text("Satellite"),
        "instrument": text("Instrument"),
        "mode": text("ObservationMode"),
        "pass": text("PassDirection"),
        "zero_date": text("ZeroReferenceDate"),
    }


@dataclass
class Palsar2MosaicScene(Palsar2Scene):
    """Mosaic bands as linear power gamma0: the PALSAR-2 reading (``DN^2 * 10^(CF/10)``, DN 0 and
    the GeoTIFF's nodata = NaN), and NaN where the quality mask is 0 (see the module docstring)."""

    _aux: dict[str, LazyDataset] = field(default_factory=dict, repr=False)

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        out = super().read(band, window)
        if "mask" in self._aux:
            mask, _ = self._aux["mask"].read(1, window)
            out[mask == 0] = np.nan
        return out

    def read_aux(self, name: str, window: Window | None = None) -> np.ndarray:
        """A per-pixel layer of the tile: ``mask`` (uint8, :data:`MASK_VALUES`), ``linci`` (local
        incidence angle, degrees) or ``date`` (days since ``metadata["date_zero"]``)."""
        if name not in self._aux:
            raise InputError(f"{self.path}: the tile has no {name} layer (present: {', '.join(self._aux) or 'none'})")
        data, _ = self._aux[name].read(1, window)
        return data

    def close(self) -> None:
        super().close()
        for f in self._aux.values():
            f.close()


def open_palsar2_mosaic(path: str | Path, *, calibration_factor_db: float | None = None) -> Palsar2MosaicScene:
    """Open a mosaic tile folder (all polarisations) or one of its files (``sl_<pol>``: that polarisation)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    found = _files(folder)
    pols: list[str] = [k for k in ("HH", "HV", "VV", "VH") if k in found]
    m = MOSAIC_NAME.match(path.name) if path.is_file() else None
    if m and m.group("kind").lower().startswith("sl_"):
        pols = [m.group("kind")[3:].upper()]
    if not pols:
        raise InputError(f"{folder}: no <tile>_<yy>_sl_<pol>...tif backscatter files here; point to the mosaic tile folder")
    meta = _read_xml(folder)
    eq = _EQUATION.search(meta.get("equation", ""))
    if calibration_factor_db is not None:
        cf, cf_source = float(calibration_factor_db), "calibration_factor_db argument"
    elif eq:
        cf = float(eq.group(2)) * (-1.0 if eq.group(1) == "-" else 1.0)
        cf_source = f"{Path(meta['xml']).name}: {meta['equation']}"
    else:
        cf, cf_source = DEFAULT_CALIBRATION_FACTOR_DB, "JAXA's mosaic default (no conversion equation in an XML)"
    first = found[pols[0]]
    with open_raster(str(first)) as ds:
        width, height, crs, transform, nodata = ds.width, ds.height, ds.crs, ds.transform, ds.nodata
    files: dict[str, LazyDataset] = {}
    bands: dict[str, BandInfo] = {}
    for pol in pols:
        with open_raster(str(found[pol])) as img:  # a truncated file fails here, not mid-translation
            check_readable(img, str(found[pol]))
            if (img.width, img.height) != (width, height):
                raise InputError(f"{found[pol]}: {img.width} x {img.height} px, but {first.name} is {width} x {height}; "
                                 "the files of one tile must match")
        files[pol] = LazyDataset(str(found[pol]))
        bands[pol] = BandInfo(pol, Quantity.GAMMA0, Scale.LINEAR,
                              f"gamma0 = DN^2 * 10^({cf:g}/10), DN 0 / nodata / mask 0 = nodata", str(found[pol]))
    aux: dict[str, LazyDataset] = {k: LazyDataset(str(found[k])) for k in ("mask", "linci", "date") if k in found}
    m0 = MOSAIC_NAME.match(first.name)
    assert m0 is not None  # _files keeps only files whose names match
    tile, yy, code = m0.group("tile").upper(), m0.group("yy"), (m0.group("code") or "").upper()
    # ALOS (PALSAR, 2007-2010 mosaics) has no sensor family of its own here: generic L-band SAR
    sensor = "ALOS-2 PALSAR-2" if (meta.get("satellite") or "ALOS-2").upper().startswith("ALOS-2") else "SAR"
    metadata = {
        "product": "25 m yearly mosaic tile (CARD4L NRB)" if meta else "25 m yearly mosaic tile",
        "tile": tile,
        "year": f"20{yy}",
        "acquisition_date": meta.get("first_date", "") if meta.get("first_date") == meta.get("last_date")
        else f"{meta.get('first_date', '')}..{meta.get('last_date', '')}".strip("."),
        "observation_mode": meta.get("mode", ""),
        "pass_direction": meta.get("pass", ""),
        "calibration_factor_db": cf,
        "calibration_factor_source": cf_source,
        "layers": ", ".join(f"{k}: {Path(v.path).name}" for k, v in aux.items()),
        "date_zero": meta.get("zero_date", "2014-05-24"),
    }
    log.debug("%s: mosaic tile %s, bands %s, CF %g dB", folder, tile, ", ".join(pols), cf)
    return Palsar2MosaicScene(
        path=path,
        sensor=sensor,
        product_id=f"{tile}_{yy}" + (f"_{code}" if code else ""),
        width=width,
        height=height,
        bands=bands,
        crs=crs,
        transform=transform,
        frequency_band="L",
        calibration=f"gamma0[dB] = 10*log10(DN^2) + CF, CF = {cf:g} dB ({cf_source}); DN 0, nodata and mask 0 = nodata",
        metadata=metadata,
        calibration_factor_db=cf,
        _files=files,
        _aux=aux,
        _nodata=nodata,
    )
