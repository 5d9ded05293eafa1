"""Sentinel-1 Level-1 GRD SAFE products (folder, ``manifest.safe`` or ``.zip``) as linear sigma0.

Per polarisation: ``measurement/<stem>.tiff`` (uint16 amplitude DN, radar geometry),
``annotation/<stem>.xml`` (image size, geolocation grid), ``annotation/calibration/
calibration-<stem>.xml`` (sigmaNought LUT) and ``noise-<stem>.xml`` (thermal noise LUTs).

``read`` returns ``sigma0 = (DN^2 - noise) / A^2`` (float32 linear power), ``A`` and ``noise``
interpolated bilinearly from the LUTs (:mod:`.sentinel1_luts`) on the window only. With
thermal-noise removal (the default, unless the IPF already applied it), values that fall
below zero are clipped to 0 (ESA practice; SNAP does the same), so dark water stays valid
and becomes the darkest value after dB conversion. DN 0 (the border fill) is nodata (NaN).

Georeferencing is by GCPs: the annotation's geolocation grid (``line``, ``pixel`` ->
``longitude``, ``latitude``, ``height``), CRS EPSG:4326 (WGS84 ellipsoid).

GDAL's own ``SENTINEL1_CALIB:SIGMA0:...`` subdatasets are not used: GDAL 3.10 refuses them
for GRD products ("Measurement bands not found") and they do no noise removal.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import InputError, UnsupportedFormatError
from ..radiometry import Quantity, Scale
from ._raster import LazyDataset, check_readable, open_raster, parse_xml
from .base import BandInfo, Scene
from .sentinel1_luts import LineLut, NoiseLuts, parse_calibration, parse_noise

__all__ = ["SafeFiles", "Sentinel1SafeScene", "find_safe_root", "ipf_version", "open_sentinel1_safe"]

log = logging.getLogger(__name__)


class SafeFiles:
    """Files of a SAFE product, in a folder or inside a zip, by path relative to the SAFE root."""

    def __init__(self, location: Path, zip_prefix: str | None = None) -> None:
        self.location = location  # the .SAFE folder, or the .zip file
        self.zip_prefix = zip_prefix  # "<name>.SAFE/" inside the zip, or None for a folder
        self._zip: zipfile.ZipFile | None = None

    def __getstate__(self) -> dict:  # picklable: the zip handle is reopened on demand
        return {**self.__dict__, "_zip": None}

    @property
    def name(self) -> str:
        base = self.zip_prefix.rstrip("/") if self.zip_prefix is not None else self.location.name
        return base[:-5] if base.upper().endswith(".SAFE") else base

    def names(self) -> list[str]:
        if self.zip_prefix is None:
            out = []
            for dirpath, _, files in os.walk(self.location, followlinks=True):
                rel = os.path.relpath(dirpath, self.location)
                out += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
            return sorted(out)
        n = len(self.zip_prefix)
        return sorted(z[n:] for z in self._zipfile().namelist() if z.startswith(self.zip_prefix) and not z.endswith("/"))

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel``; :class:`InputError` naming it if it cannot be read."""
        try:
            if self.zip_prefix is None:
                return (self.location / rel).read_bytes()
            return self._zipfile().read(self.zip_prefix + rel)
        except (OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"{self.display(rel)}: cannot be read ({exc}); the SAFE product is incomplete or "
                             "damaged: download or unpack it again") from None

    def display(self, rel: str) -> str:
        """``rel`` as a name for messages: its path, or ``<zip>/<name>.SAFE/<rel>`` inside a zip."""
        if self.zip_prefix is None:
            return str(self.location / rel)
        return f"{self.location}/{self.zip_prefix}{rel}"

    def xml(self, rel: str) -> ET.Element:
        """The parsed XML file ``rel``; a truncated or junk file is one :class:`InputError` naming it."""
        return parse_xml(self.read(rel), self.display(rel))

    def gdal_path(self, rel: str) -> str:
        if self.zip_prefix is None:
            return str(self.location / rel)
        return f"/vsizip/{self.location.resolve()}/{self.zip_prefix}{rel}"

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.location)
        return self._zip

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def find_safe_root(path: Path, manifest_marker: str = "manifest.safe") -> SafeFiles | None:
    """A :class:`SafeFiles` for a SAFE folder, its manifest/metadata file or a zip holding one; else None."""
    if path.is_dir():
        return SafeFiles(path) if (path / manifest_marker).is_file() else None
    if path.name == manifest_marker:
        return SafeFiles(path.parent)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                parts = n.split("/")
                if len(parts) == 2 and parts[1] == manifest_marker:
                    return SafeFiles(path, parts[0] + "/")
    return None


def ipf_version(manifest: bytes) -> str | None:
    """The Sentinel-1 IPF version string (e.g. ``"003.40"``) from ``manifest.safe``."""
    m = re.search(rb'name="Sentinel-1 IPF"\s+version="(\d+(?:\.\d+)?)"', manifest)
    return m.group(1).decode() if m else None


@dataclass(frozen=True)
class _Pol:
    measurement: str  # relative path
    calibration: str
    noise: str | None


@dataclass
class Sentinel1SafeScene(Scene):
    """Sentinel-1 GRD bands as linear power sigma0 in radar geometry, georeferenced by GCPs."""

    thermal_noise_removal: bool = True
    _files: SafeFiles | None = field(default=None, repr=False)
    _pols: dict[str, _Pol] = field(default_factory=dict, repr=False)
    _datasets: dict[str, LazyDataset] = field(default_factory=dict, repr=False)

    _calibration_luts: dict[str, LineLut] = field(default_factory=dict, repr=False)
    _noise_luts: dict[str, NoiseLuts | None] = field(default_factory=dict, repr=False)

    def _safe_files(self) -> SafeFiles:
        assert self._files is not None, "a Sentinel1SafeScene reads its LUTs from the SAFE it was opened from"
        return self._files

    def calibration_lut(self, pol: str) -> LineLut:
        """The sigmaNought LUT of ``pol`` (parsed on first use, then kept)."""
        if pol not in self._calibration_luts:
            rel, files = self._pols[pol].calibration, self._safe_files()
            self._calibration_luts[pol] = parse_calibration(files.read(rel), source=files.display(rel))[0]
        return self._calibration_luts[pol]

    def noise_luts(self, pol: str) -> NoiseLuts | None:
        """The thermal-noise LUTs of ``pol`` (parsed on first use), None if the product has none."""
        if pol not in self._noise_luts:
            rel = self._pols[pol].noise
            if rel:
                files = self._safe_files()
                self._noise_luts[pol] = parse_noise(files.read(rel), source=files.display(rel))
            else:
                self._noise_luts[pol] = None
        return self._noise_luts[pol]

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        pol = self.band(band).name
        if window is None:
            window = Window(col_off=0, row_off=0, width=self.width, height=self.height)
        # integer pixel window, so that DN and LUT positions cannot disagree by a rounding
        r0, c0 = round(window.row_off), round(window.col_off)
        window = Window(col_off=c0, row_off=r0, width=round(window.width), height=round(window.height))
        raw, mask = self._datasets[pol].read(1, window)
        invalid = raw == 0
        if mask is not None:
            invalid |= ~mask
        if invalid.all():  # border fill (or a sparse scene's empty block): no LUT work
            return np.full(raw.shape, np.nan, dtype=np.float32)
        rows = np.arange(r0, r0 + raw.shape[0])
        cols = np.arange(c0, c0 + raw.shape[1])
        a = self.calibration_lut(pol).evaluate(rows, cols)
        power = raw.astype(np.float64) ** 2
        if self.thermal_noise_removal:
            noise = self.noise_luts(pol)
            if noise is not None:
                power = np.maximum(power - noise.evaluate(rows, cols), 0.0)
        out = (power / (a * a)).astype(np.float32)
        out[invalid] = np.nan
        return out

    def close(self) -> None:
        for d in self._datasets.values():
            d.close()
        if self._files is not None:
            self._files.close()


def _text(root: ET.Element, path: str, default: str = "") -> str:
    v = root.findtext(path)
    return v.strip() if v is not None else default


def _value(root: ET.Element, path: str, kind: type, source: str, default: str | None = None):
    """``kind(text)`` of the element at ``path``; :class:`InputError` naming ``source`` if missing or malformed."""
    text = _text(root, path, default if default is not None else "")
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"{source}: <{path.rsplit('/', 1)[-1]}> is missing or not a number (got {text!r}); "
                         "the annotation is incomplete or damaged: download or unpack the SAFE product again") from None


def open_sentinel1_safe(path: str | Path, *, thermal_noise_removal: bool = True) -> Sentinel1SafeScene:
    """Open a Sentinel-1 GRD SAFE (folder, ``manifest.safe`` or ``.zip``); see the module docstring."""
    path = Path(path)
    files = find_safe_root(path)
    if files is None:
        raise InputError(f"{path}: not a Sentinel-1 SAFE (no manifest.safe); point to the .SAFE folder or its .zip")
    names = files.names()
    manifest = files.read("manifest.safe")
    ipf = ipf_version(manifest)
    pols, annotations = _polarisations(files, names)

    order = [p for p in ("VV", "VH", "HH", "HV") if p in pols] + [p for p in pols if p not in ("VV", "VH", "HH", "HV")]
    first = annotations[order[0]]
    first_name = files.display(f"annotation/{pols[order[0]].measurement.split('/')[-1].rsplit('.', 1)[0]}.xml")
    width = _value(first, "imageAnnotation/imageInformation/numberOfSamples", int, first_name)
    height = _value(first, "imageAnnotation/imageInformation/numberOfLines", int, first_name)
    if width <= 0 or height <= 0:
        raise InputError(f"{first_name}: image size {width} x {height} is not positive; the annotation is damaged: "
                         "download or unpack the SAFE product again")
    noise_done = _text(first, "imageAnnotation/processingInformation/thermalNoiseCorrectionPerformed").lower() == "true"
    remove_noise = thermal_noise_removal and not noise_done
    gcps = _geolocation_gcps(first, first_name)
    noise_kind = ""
    if remove_noise:
        old = ipf is not None and float(ipf) < 2.90
        noise_kind = "range LUT (IPF < 2.90)" if old else "range x azimuth LUTs"
        missing = [p for p in order if pols[p].noise is None]
        if missing:
            log.warning("%s: no noise annotation for %s; thermal noise not removed there", files.location, ", ".join(missing))
    calibration_luts, noise_luts = _parse_luts(files, pols, order, remove_noise)
    bands, datasets = _open_measurements(files, pols, order, remove_noise, noise_kind)

    calibration = "sigma0 from the annotation sigmaNought LUT (bilinear), sigma0 = DN^2/A^2"
    if remove_noise:
        calibration += f"; thermal noise removed ({noise_kind}, IPF {ipf}), negatives clipped to 0"
    elif noise_done:
        calibration += "; thermal noise already removed by the IPF"
    return Sentinel1SafeScene(
        path=path,
        sensor="Sentinel-1",
        product_id=files.name,
        width=width,
        height=height,
        bands=bands,
        gcps=(gcps, CRS.from_epsg(4326)),
        frequency_band="C",
        calibration=calibration,
        metadata=_scene_metadata(first, files, ipf, remove_noise, noise_done),
        thermal_noise_removal=remove_noise,
        _files=files,
        _pols=pols,
        _datasets=datasets,
        _calibration_luts=calibration_luts,
        _noise_luts=noise_luts,
    )


def _polarisations(files: SafeFiles, names: list[str]) -> tuple[dict[str, _Pol], dict[str, ET.Element]]:
    """The measurement, calibration and noise files of each polarisation, and its product annotation."""
    pols: dict[str, _Pol] = {}
    annotations: dict[str, ET.Element] = {}
    for rel in names:
        if not (rel.startswith("measurement/") and rel.lower().endswith((".tiff", ".tif"))):
            continue
        stem = rel.split("/")[-1].rsplit(".", 1)[0]
        ann, cal, noi = f"annotation/{stem}.xml", f"annotation/calibration/calibration-{stem}.xml", f"annotation/calibration/noise-{stem}.xml"
        if ann not in names or cal not in names:
            log.warning("%s: %s has no annotation/calibration file; skipped", files.location, rel)
            continue
        root = files.xml(ann)
        pol = _text(root, "adsHeader/polarisation").upper()
        if root.find("adsHeader") is None or not pol:
            raise InputError(f"{files.display(ann)}: not a Sentinel-1 product annotation (no <adsHeader> with a "
                             "<polarisation>); the file is damaged: download or unpack the SAFE product again")
        if _text(root, "adsHeader/productType") != "GRD":
            raise UnsupportedFormatError(
                f"{files.location}: {_text(root, 'adsHeader/productType')} products are not supported, only GRD; "
                "use a GRD product (or a terrain-corrected GeoTIFF)"
            )
        pols[pol] = _Pol(rel, cal, noi if noi in names else None)
        annotations[pol] = root
    if not pols:
        raise InputError(
            f"{files.location}: no measurement/*.tiff with its annotation and calibration files; the SAFE is incomplete"
        )
    return pols, annotations


def _geolocation_gcps(first: ET.Element, first_name: str) -> list[GroundControlPoint]:
    """The annotation's geolocation grid as GCPs (lon/lat, at least 3)."""
    gcps = [
        GroundControlPoint(
            row=_value(g, "line", float, first_name), col=_value(g, "pixel", float, first_name),
            x=_value(g, "longitude", float, first_name), y=_value(g, "latitude", float, first_name),
            z=_value(g, "height", float, first_name, "0"),
            id=str(i + 1),
        )
        for i, g in enumerate(first.iter("geolocationGridPoint"))
    ]
    if len(gcps) < 3:
        raise InputError(f"{first_name}: {len(gcps)} <geolocationGridPoint> (at least 3 are needed to georeference "
                         "the scene); the annotation is incomplete or damaged: download or unpack the SAFE product again")
    return gcps


def _parse_luts(files: SafeFiles, pols: dict[str, _Pol], order: list[str],
                remove_noise: bool) -> tuple[dict[str, LineLut], dict[str, NoiseLuts | None]]:
    """Every calibration (and, removing noise, noise) LUT by polarisation, parsed now: a truncated or junk one
    fails at open."""
    calibration: dict[str, LineLut] = {}  # a few ms each
    noise: dict[str, NoiseLuts | None] = {}
    for pol in order:
        cal = pols[pol].calibration
        calibration[pol] = parse_calibration(files.read(cal), source=files.display(cal))[0]
        noi = pols[pol].noise
        if remove_noise and noi:
            noise[pol] = parse_noise(files.read(noi), source=files.display(noi))
    return calibration, noise


def _open_measurements(files: SafeFiles, pols: dict[str, _Pol], order: list[str], remove_noise: bool,
                       noise_kind: str) -> tuple[dict[str, BandInfo], dict[str, LazyDataset]]:
    """Band infos and lazy datasets of the measurement rasters, each checked readable now."""
    bands: dict[str, BandInfo] = {}
    datasets: dict[str, LazyDataset] = {}
    for pol in order:
        desc = "sigma0 = DN^2 / A^2, A = sigmaNought LUT (bilinear)"
        if remove_noise and pols[pol].noise:
            desc = "sigma0 = max(DN^2 - noise, 0) / A^2, A = sigmaNought LUT, noise = " + noise_kind + " (bilinear)"
        bands[pol] = BandInfo(pol, Quantity.SIGMA0, Scale.LINEAR, desc, pols[pol].measurement)
        gdal_path = files.gdal_path(pols[pol].measurement)
        with open_raster(gdal_path) as ds:  # a truncated measurement fails here, not mid-translation
            check_readable(ds, gdal_path)
        datasets[pol] = LazyDataset(gdal_path)
    return bands, datasets


def _scene_metadata(first: ET.Element, files: SafeFiles, ipf: str | None, remove_noise: bool,
                    noise_done: bool) -> dict[str, object]:
    """Mission, mode, times, orbit, pixel spacings and noise handling, from the first annotation."""
    info = "imageAnnotation/imageInformation/"
    return {
        "mission": _text(first, "adsHeader/missionId"),
        "mode": _text(first, "adsHeader/mode"),
        "product_type": _text(first, "adsHeader/productType"),
        "start_time": _text(first, "adsHeader/startTime"),
        "stop_time": _text(first, "adsHeader/stopTime"),
        "absolute_orbit": _text(first, "adsHeader/absoluteOrbitNumber"),
        "pass": _text(first, "generalAnnotation/productInformation/pass"),
        "ipf_version": ipf or "",
        "range_pixel_spacing_m": float(_text(first, info + "rangePixelSpacing", "nan")),
        "azimuth_pixel_spacing_m": float(_text(first, info + "azimuthPixelSpacing", "nan")),
        "incidence_angle_mid_swath_deg": float(_text(first, info + "incidenceAngleMidSwath", "nan")),
        "thermal_noise_removed": remove_noise,
        "thermal_noise_removed_by_ipf": noise_done,
        "georeferencing": "gcps (annotation geolocation grid)",
        "container": "zip" if files.zip_prefix is not None else "folder",
    }
