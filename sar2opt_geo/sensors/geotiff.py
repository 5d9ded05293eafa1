"""Any raster GDAL opens (GeoTIFF above all): SAR already calibrated, optical, or plain bands.

What the reader works out, and from where (first match wins):

* **Band names**: band descriptions (``VV``, ``Sigma0_VH_db``, ``red``, ``B04``), colour
  interpretation (red/green/blue), the file name (``..._VV.tif``, ``..._B04.tif``), dataset tags
  (``POLARISATION``), known band orders (Landsat-8 3-band crop = B2, B3, B4 = blue, green, red;
  a 7-band Landsat-8 stack = B1..B7; SEN12MS ``s1`` = VV, VH and ``s2`` = B1..B12 with B8A),
  else ``b1``, ``b2``, ...
* **SAR or optical**: the ``sensor`` argument, else polarisation band names or SAR words in the
  name and tags (sigma0, gamma0, S1A, GRD, PALSAR).
* **SAR units** (``units`` argument overrides): tags ``UNITS``/``unit``, then a ``db``/``linear``/
  ``amplitude`` token in the name or description, then: uint8 = *scaled* (linear intensity divided
  by the scene's 99th percentile, clipped to 1, times 255: the Los Angeles training pairs), float
  with negative values = dB, other float = linear power, other integers = amplitude DN.
  ``read`` always returns **linear power** (``scaled``: ``DN / 255``, i.e. linear/p99, a
  *relative* sigma0; the band description says so).
* **Complex data** (SLC: ``complex64``, ``complex128``, GDAL ``CInt16``/``CInt32``): always SAR;
  read as intensity ``|z|^2 = re^2 + im^2`` (linear power; the phase is discarded), as the
  band description, the calibration line and ``metadata["complex"]`` say. ``CInt16`` samples
  are uncalibrated DN (``Quantity.DN``). ``units`` may be left unset (or ``"amplitude"`` /
  ``"linear"``, which mean the same here); ``"db"``, ``"scaled"``, ``"reflectance"`` and
  ``"dn"`` are refused for complex data, as is an optical ``sensor``.
* **Optical units**: Sentinel-2 integers are reflectance ``(DN + offset) / 10000`` (offset -1000
  when the name shows processing baseline N0400 or later); everything else is float DN,
  unless ``units="reflectance"`` (integers / 10000, floats as they are).

Nodata: the dataset's nodata value and internal mask -> NaN; for Landsat and Sentinel-2
integer data without a nodata value, DN 0 (the products' fill value) -> NaN as well.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rasterio.windows import Window

from ..errors import GeoreferencingError, InputError, UnsupportedFormatError
from ..radiometry import Quantity, Scale, amplitude_to_power, from_db
from ._names import (
    LANDSAT7_BANDS,
    LANDSAT8_BANDS,
    S2_BANDS,
    SAR_SENSORS,
    find_polarisation,
    normalise_sensor,
)
from ._raster import (
    GDAL_ERRORS,
    LazyDataset,
    check_readable,
    open_raster,
    read_error,
    sample_values,
    to_float,
)
from .base import BandInfo, Scene

__all__ = ["UNITS", "GeoTiffScene", "Units", "open_geotiff"]

log = logging.getLogger(__name__)

Units = Literal["db", "linear", "amplitude", "scaled", "reflectance", "dn"]
UNITS: tuple[str, ...] = ("db", "linear", "amplitude", "scaled", "reflectance", "dn")

_COLOUR_DESCRIPTIONS = {
    "red": "red", "r": "red", "green": "green", "g": "green", "blue": "blue", "b": "blue",
    "nir": "nir", "near infrared": "nir", "gray": "gray", "grey": "gray", "pan": "pan",
    "panchromatic": "pan", "alpha": "alpha",
}
_SAR_WORDS = re.compile(r"sigma0|sigma_0|gamma0|beta0|backscatter|(?<![a-z0-9])(s1[abcd]?|grd|grdh|palsar\d?|alos2?)(?![a-z0-9])")
_S1_WORDS = re.compile(r"(?<![a-z0-9])(s1[abcd]?|sentinel-?1)(?![a-z0-9])|_iw_|grdh")
_ALOS_WORDS = re.compile(r"alos-?2|palsar")
_S2_WORDS = re.compile(r"(?<![a-z0-9])(s2[abc]?|sentinel-?2)(?![a-z0-9])|msil1c|msil2a|(?<![a-z0-9])l1c(?![a-z0-9])|(?<![a-z0-9])l2a(?![a-z0-9])")
_L8_WORDS = re.compile(r"(?<![a-z0-9])(lc0?8|lo0?8|landsat-?8)")
_L7_WORDS = re.compile(r"(?<![a-z0-9])(le0?7|landsat-?7)")


@dataclass(frozen=True)
class _BandSpec:
    index: int  # 1-based band index in the file
    units: str  # one of UNITS, or "complex" (SLC: intensity |z|^2): how the stored values are to be converted
    scale_divisor: float = 1.0  # scaled: 255 for uint8; reflectance: quantification value
    offset: float = 0.0  # reflectance: added to DN before dividing


@dataclass
class GeoTiffScene(Scene):
    """A single raster file read band by band, window by window."""

    _specs: dict[str, _BandSpec] = field(default_factory=dict, repr=False)
    _nodata: tuple[float | None, ...] = field(default=(), repr=False)
    _source: LazyDataset | None = field(default=None, repr=False)

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        info = self.band(band)
        spec = self._specs[info.name]
        if self._source is None:
            raise InputError(f"{self.path}: the scene is closed; open it again to read {band}")
        raw, mask = self._source.read(spec.index, window)
        values = to_float(raw, self._nodata, mask)
        return _convert(values, spec)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()


def _convert(values: np.ndarray, spec: _BandSpec) -> np.ndarray:
    if spec.units == "db":
        return from_db(values)
    if spec.units == "amplitude":
        return amplitude_to_power(values)
    if spec.units == "scaled":
        return (values / np.float32(spec.scale_divisor)).astype(np.float32)
    if spec.units == "reflectance":
        return ((values + np.float32(spec.offset)) / np.float32(spec.scale_divisor)).astype(np.float32)
    return values.astype(np.float32, copy=False)  # linear, dn, complex (|z|^2 already, by to_float)


def open_geotiff(
    path: str | Path,
    *,
    sensor: str | None = None,
    units: str | None = None,
    require_georeferencing: bool = True,
) -> GeoTiffScene:
    """Open any GDAL raster as a :class:`GeoTiffScene`; see the module docstring for what is inferred.

    ``sensor``: force the sensor family ("Sentinel-1", "ALOS-2", "SAR", "Sentinel-2", "Landsat-8",
    "optical"). ``units``: force how stored values are read (one of :data:`UNITS`).
    """
    path_str = str(path)
    if units is not None and units not in UNITS:
        raise UnsupportedFormatError(f"{path_str}: units={units!r} is unknown; use one of {', '.join(UNITS)}")
    forced = normalise_sensor(sensor)
    ds = open_raster(path_str)
    try:
        check_readable(ds, path_str)  # a truncated file fails here with one line, not mid-translation
        return _inspect(ds, path_str, forced, units, require_georeferencing)
    except GDAL_ERRORS as exc:  # e.g. damaged blocks met while sampling values for the units
        raise read_error(path_str, exc) from None
    finally:
        ds.close()


def _hint_text(path: Path, ds) -> str:
    parts = [path.name, path.parent.name, path.parent.parent.name]
    parts += [f"{k}={v}" for k, v in ds.tags().items() if not k.startswith("STATISTICS_")]
    return "/".join(parts).lower()


def _inspect(ds: Any, path_str: str, forced: str | None, units: str | None, require_geo: bool) -> GeoTiffScene:
    """The scene of an open raster: band names, sensor family, georeferencing, how values are read, metadata."""
    path = Path(path_str)
    name_text = f"{path.name}/{path.parent.name}/{path.parent.parent.name}".lower()
    hints = _hint_text(path, ds)
    tags = {k.lower(): v for k, v in ds.tags().items()}
    descriptions = [d or "" for d in ds.descriptions]

    names, sources = _band_names(ds, path, name_text, tags, descriptions)
    complex_bands = [i for i, t in enumerate(ds.dtypes, 1) if str(t).startswith("complex")]
    if complex_bands:
        _check_complex(path_str, ds, complex_bands, forced, units)
    sensor = _sensor_family(ds, path_str, forced, names, complex_bands, descriptions=descriptions,
                            name_text=name_text, hints=hints, tags=tags)
    is_sar = sensor in SAR_SENSORS
    crs, transform, gcps, has_transform = _georeferencing(ds, path_str, require_geo)

    dtype_name = str(ds.dtypes[0])
    dtype = np.dtype("complex64" if dtype_name == "complex_int16" else dtype_name)  # numpy has no complex int16
    nodata: list[float | None] = [ds.nodata]
    notes: dict[str, str] = {}
    if is_sar:
        specs, bands, notes, calibration = _sar_bands(ds, names, sources, complex_bands, units, tags=tags,
                                                      descriptions=descriptions, name_text=name_text, hints=hints,
                                                      dtype=dtype)
    else:
        specs, bands, calibration = _optical_bands(ds, names, sources, sensor, units, name_text, dtype, nodata)

    metadata = _scene_metadata(ds, dtype_name, crs, has_transform, gcps, names, notes=notes, specs=specs,
                               is_sar=is_sar, complex_bands=complex_bands)
    scene = GeoTiffScene(
        path=path_str if path_str.startswith("/vsi") else path,  # Path() folds /vsicurl/https:// to https:/
        sensor=sensor,
        product_id=path.stem,
        width=ds.width,
        height=ds.height,
        bands=bands,
        crs=crs if has_transform or gcps is None else None,
        transform=transform if has_transform else None,
        gcps=gcps if not has_transform else None,
        frequency_band={"Sentinel-1": "C", "ALOS-2 PALSAR-2": "L"}.get(sensor, "unknown") if is_sar else None,
        calibration=calibration,
        metadata=metadata,
        _specs=specs,
        _nodata=tuple(nodata),
        _source=LazyDataset(path_str),
    )
    log.debug("%s: %s, bands %s", path_str, sensor, ", ".join(bands))
    return scene


def _sensor_family(ds: Any, path_str: str, forced: str | None, names: list[str], complex_bands: list[int], *,
                   descriptions: list[str], name_text: str, hints: str, tags: dict[str, str]) -> str:
    """The sensor family: forced, else from complex samples, polarisation names, words in names and tags, values."""
    if forced is not None:
        return forced
    has_pol = any(n in ("HH", "HV", "VH", "VV") for n in names)
    if complex_bands or has_pol or _SAR_WORDS.search(" ".join(descriptions).lower() + "/" + name_text) or tags.get("quantity", "").lower().startswith("sigma"):
        return "Sentinel-1" if _S1_WORDS.search(hints) else "ALOS-2 PALSAR-2" if _ALOS_WORDS.search(hints) else "SAR"
    if _S2_WORDS.search(name_text) or (("sen12ms" in name_text) and ds.count == 13):
        return "Sentinel-2"
    if _L8_WORDS.search(hints):
        return "Landsat-8"
    if _L7_WORDS.search(hints):
        return "Landsat-7"
    if _looks_like_db(ds):  # reflectance, radiance and DN are not mostly negative: read as black before
        log.warning("%s: read as SAR backscatter in dB (float bands of mostly negative values; neither the name nor "
                    "the tags say what they hold); set --sensor and --input-units (sensor=, units=) if that is wrong",
                    path_str)
        return "SAR"
    return "optical"


def _georeferencing(ds: Any, path_str: str, require_geo: bool) -> tuple[Any, Any, tuple[list, Any] | None, bool]:
    """``(crs, transform, gcps or None, has a non-identity transform)``; an error if required and missing."""
    crs, transform = ds.crs, ds.transform
    gcps = None
    if ds.gcps and ds.gcps[0]:
        gcps = (list(ds.gcps[0]), ds.gcps[1])
    has_transform = transform is not None and not transform.is_identity
    if require_geo and not (crs and has_transform) and not gcps:
        what = "no CRS" if has_transform else "no geotransform or GCPs"
        raise GeoreferencingError(
            f"{path_str}: {what}; assign one first (e.g. gdal_edit.py -a_srs EPSG:32631 or QGIS 'Assign projection')"
        )
    return crs, transform, gcps, has_transform


def _sar_bands(ds: Any, names: list[str], sources: list[str], complex_bands: list[int], units: str | None, *,
               tags: dict[str, str], descriptions: list[str], name_text: str, hints: str,
               dtype: np.dtype) -> tuple[dict[str, _BandSpec], dict[str, BandInfo], dict[str, str], str]:
    """Specs, band infos, units notes and the calibration text of the bands of a SAR raster."""
    specs: dict[str, _BandSpec] = {}
    bands: dict[str, BandInfo] = {}
    notes: dict[str, str] = {}
    quantity = Quantity.GAMMA0 if re.search(r"gamma0|gamma_0|gamma-0|gamma nought", hints) else Quantity.BETA0 if "beta0" in hints else Quantity.SIGMA0
    for i, name in enumerate(names, 1):
        if i in complex_bands:
            band_type = str(ds.dtypes[i - 1])
            u, how = "complex", f"{_COMPLEX_NAMES.get(band_type, band_type)} SLC samples, intensity |z|^2"
            q = Quantity.DN if band_type == "complex_int16" and units is None else quantity
            specs[name] = _BandSpec(i, u)
            notes[name] = how
            bands[name] = BandInfo(name, q, Scale.LINEAR, _sar_description(u, q, 1.0), sources[i - 1])
            continue
        u, how = _sar_units(ds, i, units, tags, descriptions[i - 1], name_text, dtype)
        notes[name] = how
        divisor = float(np.iinfo(dtype).max) if u == "scaled" and dtype.kind in "ui" else 1.0
        specs[name] = _BandSpec(i, u, scale_divisor=divisor)
        q = Quantity.DN if (u == "amplitude" and dtype.kind in "ui" and units is None) else quantity
        bands[name] = BandInfo(name, q, Scale.LINEAR, _sar_description(u, q, divisor), sources[i - 1])
    calibration = "; ".join(sorted({f"{specs[n].units} ({notes[n]})" for n in names}))
    return specs, bands, notes, f"stored as {calibration}; read as linear power"


def _optical_bands(ds: Any, names: list[str], sources: list[str], sensor: str, units: str | None, name_text: str,
                   dtype: np.dtype, nodata: list[float | None]) -> tuple[dict[str, _BandSpec], dict[str, BandInfo], str]:
    """Specs, band infos and the calibration text of an optical raster (appends 0 to ``nodata`` where it means none)."""
    specs: dict[str, _BandSpec] = {}
    bands: dict[str, BandInfo] = {}
    offset, quant = 0.0, 10000.0
    if sensor == "Sentinel-2":
        baseline = re.search(r"_n(\d{4})_", name_text)
        if baseline and int(baseline.group(1)) >= 400:
            offset = -1000.0
    refl = units == "reflectance" or (units is None and sensor == "Sentinel-2" and dtype.kind in "ui")
    if refl and dtype.kind == "f":
        quant = 1.0
    if sensor in ("Sentinel-2", "Landsat-8", "Landsat-7") and dtype.kind in "ui" and ds.nodata is None:
        nodata.append(0)
    for i, name in enumerate(names, 1):
        if refl:
            specs[name] = _BandSpec(i, "reflectance", scale_divisor=quant, offset=offset)
            desc = f"reflectance = (DN {offset:+g}) / {quant:g}" if offset else f"reflectance = DN / {quant:g}"
            bands[name] = BandInfo(name, Quantity.REFLECTANCE, Scale.LINEAR, desc, sources[i - 1])
        else:
            specs[name] = _BandSpec(i, "dn")
            bands[name] = BandInfo(name, Quantity.RADIANCE_DN, Scale.LINEAR, "digital numbers as stored (float)", sources[i - 1])
    return specs, bands, bands[names[0]].description if names else ""


def _scene_metadata(ds: Any, dtype_name: str, crs: Any, has_transform: bool, gcps: Any, names: list[str], *,
                    notes: dict[str, str], specs: dict[str, _BandSpec], is_sar: bool,
                    complex_bands: list[int]) -> dict[str, Any]:
    """The scene's ``metadata``: format, dtype, nodata, georeferencing and how values are read."""
    metadata: dict[str, Any] = {
        "format": ds.driver,
        "dtype": dtype_name,
        "nodata": ds.nodata,
        "georeferencing": "transform" if crs and has_transform else "gcps" if gcps else "none",
    }
    if is_sar:
        metadata["units_detected"] = ", ".join(f"{n}: {notes[n]}" for n in names)
    if complex_bands:
        metadata["complex"] = ("complex (SLC) samples read as intensity |z|^2 = re^2 + im^2 (linear power); "
                               "the phase is discarded")
    if any(s.units == "scaled" for s in specs.values()):
        metadata["relative_radiometry"] = "linear intensity / scene 99th percentile (clipped to 1), not absolute sigma0"
    return metadata


def _looks_like_db(ds) -> bool:
    """Float bands whose sampled values are mostly negative and never above +40: backscatter in dB."""
    if not str(ds.dtypes[0]).startswith("float"):
        return False
    nd = ds.nodata
    for bidx in range(1, ds.count + 1):
        vals = sample_values(ds, bidx)
        vals = vals[np.isfinite(vals) & ((vals != nd) if nd is not None and not np.isnan(nd) else True)]
        if vals.size == 0 or float(np.median(vals)) >= 0 or float(vals.max()) > 40:
            return False
    return True


def _vrt_band_sources(ds, path: Path) -> list[str]:
    """The first source file of each band of a VRT (``gdalbuildvrt -separate`` of one file per
    polarisation), '' where there is none or the file is not a plain VRT."""
    import xml.etree.ElementTree as ET

    names = [""] * ds.count
    if ds.driver != "VRT" or not path.is_file():
        return names
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return names
    for band in root.iter("VRTRasterBand"):
        try:
            i = int(band.get("band", "0")) - 1
        except ValueError:
            continue
        src = band.find(".//SourceFilename")
        if 0 <= i < len(names) and src is not None and src.text:
            names[i] = src.text
    return names


def _single_band_name(path: Path, name_text: str, tags: dict[str, str], file_pol: str | None) -> str | None:
    """The name of a one-band file without a band description: polarisation tag, polarisation in the
    file name, or a Sentinel-2 / Landsat band code (``_B04``) in a file name of that mission."""
    band_code = re.search(r"_b(\d{1,2}|8a)(?:_\d+m)?\.[a-z0-9]+$", path.name.lower())
    pol_tag = tags.get("polarisation") or tags.get("polarization")
    if pol_tag and find_polarisation(pol_tag.lower()):
        return find_polarisation(pol_tag.lower())
    if file_pol:
        return file_pol
    if band_code and _S2_WORDS.search(name_text):
        return S2_BANDS.get(f"B{band_code.group(1).upper().zfill(2)}")
    if band_code and _L8_WORDS.search(name_text):
        return LANDSAT8_BANDS.get(int(band_code.group(1)))
    if band_code and _L7_WORDS.search(name_text):
        return LANDSAT7_BANDS.get(int(band_code.group(1)))
    return None


def _band_names(ds, path: Path, name_text: str, tags: dict[str, str], descriptions: list[str]) -> tuple[list[str], list[str]]:
    """Names for each band (unique), and a short 'source' note per band."""
    count = ds.count
    src = str(path)
    names: list[str | None] = [None] * count
    file_pol = find_polarisation(re.sub(r"\.[a-z0-9]+$", "", path.name.lower()))
    for i, desc in enumerate(descriptions):
        d = desc.strip()
        pol = find_polarisation(d.lower()) if d else None
        if pol:
            names[i] = pol
        elif d.lower() in _COLOUR_DESCRIPTIONS:
            names[i] = _COLOUR_DESCRIPTIONS[d.lower()]
        else:
            m = re.fullmatch(r"b0?(\d{1,2}|8a)", d.lower())
            if m and _S2_WORDS.search(name_text):
                names[i] = S2_BANDS.get(f"B{m.group(1).upper().zfill(2)}")
    for i, source in enumerate(_vrt_band_sources(ds, path)):  # a VRT stack of one file per polarisation
        pol = find_polarisation(re.sub(r"\.[a-z0-9]+$", "", Path(source).name.lower())) if source else None
        if names[i] is None and pol and pol not in names:
            names[i] = pol
    interp = [c.name for c in ds.colorinterp]
    for i, c in enumerate(interp):
        if names[i] is None and c in ("red", "green", "blue", "alpha"):
            names[i] = c
    if count == 1 and names[0] is None:
        names[0] = _single_band_name(path, name_text, tags, file_pol)
    if all(n is None for n in names):
        if "sen12ms" in name_text and count == 2:
            names = ["VV", "VH"]
        elif "sen12ms" in name_text and count == 13:
            names = list(S2_BANDS.values())
        elif _L8_WORDS.search(name_text) and count == 3:
            names = ["blue", "green", "red"]  # the usual B2, B3, B4 true-colour crop
        elif _L8_WORDS.search(name_text) and count == 7:
            names = [LANDSAT8_BANDS[b] for b in range(1, 8)]
    out: list[str] = []
    for i, n in enumerate(names, 1):
        out.append(n if n and n not in out else f"b{i}")
    sources = [f"{src} band {i}" for i in range(1, count + 1)]
    return out, sources


_UNIT_TAG_KEYS = ("units", "unit", "unittype", "scale")


def _sar_units(ds, bidx: int, units: str | None, tags: dict[str, str], desc: str, name_text: str, dtype: np.dtype) -> tuple[str, str]:
    """How band ``bidx`` stores SAR backscatter, and where that was learnt."""
    if units is not None:
        return units, "units argument"
    band_tags = {k.lower(): v for k, v in ds.tags(bidx).items()}
    unit_text = " ".join(str(d.get(k, "")) for d in (band_tags, tags) for k in _UNIT_TAG_KEYS)
    unit_text += " " + (ds.units[bidx - 1] or "")
    u = _units_from_text(unit_text.lower())
    if u:
        return u, "tags"
    u = _units_from_text(desc.lower()) or _units_from_text(re.sub(r"\.[a-z0-9]+$", "", name_text.split("/")[0]))
    if u:
        return u, "name/description"
    if dtype == np.uint8:
        return "scaled", "8-bit data: assumed linear/p99*255"
    if dtype.kind == "f":
        vals = sample_values(ds, bidx)
        nd = ds.nodata
        vals = vals[np.isfinite(vals) & ((vals != nd) if nd is not None and not np.isnan(nd) else True)]
        if vals.size and float(np.nanmin(vals)) < 0:
            return "db", "negative sample values"
        return "linear", "no negative sample values"
    log.warning("%s: integer SAR band %d with no units; reading it as amplitude DN (pass units= to say otherwise)", ds.name, bidx)
    return "amplitude", "integer data: assumed amplitude DN"


_COMPLEX_NAMES = {"complex_int16": "CInt16", "complex64": "CFloat32/CInt32", "complex128": "CFloat64"}


def _check_complex(path: str, ds, complex_bands: list[int], forced: str | None, units: str | None) -> None:
    """Refuse what cannot work with complex (SLC) bands: an optical sensor, units other than intensity."""
    kinds = ", ".join(sorted({_COMPLEX_NAMES.get(str(ds.dtypes[i - 1]), str(ds.dtypes[i - 1])) for i in complex_bands}))
    if len(complex_bands) != ds.count:
        raise UnsupportedFormatError(
            f"{path}: bands {', '.join(map(str, complex_bands))} of {ds.count} hold complex ({kinds}) samples, the "
            "others not; split the complex bands into their own file"
        )
    if forced is not None and forced not in SAR_SENSORS:
        raise UnsupportedFormatError(
            f"{path}: complex ({kinds}) samples are SAR (SLC) data, not {forced}; leave out the sensor option "
            "or name a SAR sensor"
        )
    if units is not None and units not in ("amplitude", "linear"):
        raise UnsupportedFormatError(
            f"{path}: complex ({kinds}) samples are read as intensity |z|^2; units={units!r} does not apply to "
            "them: leave units unset"
        )


def _units_from_text(text: str) -> str | None:
    if re.search(r"(?<![a-z])(db|decibels?)(?![a-z])", text):
        return "db"
    if re.search(r"(?<![a-z])(linear|lin|intensity|power)(?![a-z])", text):
        return "linear"
    if re.search(r"(?<![a-z])(amplitude|amp)(?![a-z])", text):
        return "amplitude"
    return None


def _sar_description(units: str, quantity: Quantity, divisor: float) -> str:
    q = quantity.value
    if units == "db":
        return f"{q} linear power = 10^(dB/10)"
    if units == "amplitude":
        return f"{q} linear power = amplitude^2"
    if units == "complex":
        return f"{q} linear power = |z|^2 of complex (SLC) samples (phase discarded)"
    if units == "scaled":
        return f"relative {q}: linear power / scene 99th percentile = DN/{divisor:g} (clipped at 1 upstream)"
    return f"{q} linear power as stored"
