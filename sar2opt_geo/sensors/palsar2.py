"""ALOS-2 PALSAR-2 Level 2.1 (and Level 1.5 GeoTIFF) products, calibrated to sigma0.

A JAXA GeoTIFF product folder holds ``IMG-<pol>-ALOS2<orbit:5><frame:4>-<YYMMDD>-<product id>.tif``
(uint16 amplitude DN, one file per polarisation, e.g. ``IMG-HH-ALOS2015976960-140909-FBDR2.1GUD.tif``),
``LUT-<pol>-...txt`` files and ``summary.txt`` (``Key="value"`` lines, the product files listed as
``Pdi_L21ProductFileName01`` ...); CEOS deliveries add a leader file ``LED-...``.

The product id (``FBDR2.1GUD``) is read as JAXA names it: observation mode (``FBD``), look
direction (``R``), processing level (``2.1``), processing option (``G`` geo-coded, ``R``
geo-reference), **map projection** (``U`` UTM, ``P`` polar stereographic, ``M`` Mercator,
``L`` Lambert conformal conic) and orbit direction (``A``/``D``). Real ``summary.txt`` files have
no map-projection key: the letter says which projection the product is in.

Levels: 1.5 and 2.1 are read; 1.1 (slant-range complex) and 3.1 are refused. Level 3.1 DN have
had JAXA's noise reduction and dynamic range compression applied, so the calibration below (which
JAXA gives for Level 1.5/2.1) does not hold for them.

Calibration (JAXA, "ALOS-2/PALSAR-2 calibration factors"):
``sigma0[dB] = 10 log10(DN^2) + CF``, i.e. linear power ``sigma0 = DN^2 * 10^(CF/10)``;
DN 0 is nodata. ``CF`` is, in order of precedence: the ``calibration_factor_db`` argument,
the calibration factor of the LED file's radiometric data record, else -83.0 dB (the
value JAXA gives for current products; some older ScanSAR W2 products need -79.0).

Georeferencing: the GeoTIFF's own CRS and transform, whatever the projection. If the file has
a transform but no CRS, a UTM product (letter ``U``) gets its zone from ``summary.txt``
(``Pds_UTM_ZoneNo``; hemisphere from the scene centre latitude); if it has no transform either,
the upper-left frame corner (``Img_FrameSceneLeftTopLatitude/Longitude``) and
``Pds_PixelSpacing`` give an approximate one (logged as a warning, recorded in
``metadata["georeferencing"]``). Polar stereographic, Mercator and LCC products need the CRS in
the GeoTIFF (summary.txt carries none of their parameters): without it they are refused with
the ``gdal_edit.py`` line that fixes the file.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import GeoreferencingError, InputError, UnsupportedFormatError
from ..radiometry import Quantity, Scale
from ._raster import LazyDataset, check_readable, open_raster, to_float
from .base import BandInfo, Scene

__all__ = [
    "DEFAULT_CALIBRATION_FACTOR_DB",
    "IMG_NAME",
    "MAP_PROJECTIONS",
    "PRODUCT_ID",
    "Palsar2Scene",
    "dn_to_sigma0",
    "is_palsar2",
    "open_palsar2",
    "read_led_calibration_factor",
    "read_summary",
]

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_FACTOR_DB = -83.0
# IMG-HH-ALOS2015976960-140909-FBDR2.1GUD.tif ; group 4 is the product id ("FBDR2.1GUD").
IMG_NAME = re.compile(r"^IMG-(HH|HV|VH|VV)-(ALOS2\d{9})-(\d{6})-([A-Z0-9._]+?)(\.tiff?)?$", re.IGNORECASE)
# FBDR2.1GUD: mode, look direction, level, processing option, map projection, orbit direction
PRODUCT_ID = re.compile(
    r"^(?P<mode>[A-Z]{3})(?P<look>[LR])(?P<level>\d\.\d)(?P<option>[GR_])(?P<projection>[UPML_])(?P<orbit>[AD])$"
)
MAP_PROJECTIONS = {"U": "UTM", "P": "PS", "M": "MER", "L": "LCC"}
_PROJECTION_NAMES = {"UTM": "UTM", "PS": "polar stereographic", "MER": "Mercator", "LCC": "Lambert conformal conic"}
_RADIOMETRIC_RECORD = bytes((18, 50, 18, 20))  # CEOS record subtype codes of the radiometric data record


def read_summary(path: str | Path) -> dict[str, str]:
    """``summary.txt`` as a dict (``Key="value"`` lines; other lines ignored)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        m = re.match(r'\s*([A-Za-z0-9_]+)\s*=\s*"(.*)"\s*$', line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def read_led_calibration_factor(path: str | Path) -> float | None:
    """Calibration factor (dB) from a CEOS leader file's radiometric data record, or None if absent.

    Records start with a 12-byte header: sequence number (int32 BE), four subtype codes, record
    length (int32 BE). The radiometric record (codes 18, 50, 18, 20) stores the factor as
    ASCII F16.7 in bytes 21-36.
    """
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        offset = 0
        while offset + 12 <= size:
            fh.seek(offset)
            header = fh.read(12)
            length = struct.unpack(">I", header[8:12])[0]
            if length < 12:
                return None
            if header[4:8] == _RADIOMETRIC_RECORD:
                fh.seek(offset + 20)
                try:
                    return float(fh.read(16).decode("ascii"))
                except ValueError:
                    return None
            offset += length
    return None


def dn_to_sigma0(dn: np.ndarray, calibration_factor_db: float) -> np.ndarray:
    """Linear power sigma0 ``DN^2 * 10^(CF/10)`` (float32); DN 0 -> NaN."""
    dn = np.asarray(dn)
    out = dn.astype(np.float32) ** 2 * np.float32(10.0 ** (calibration_factor_db / 10.0))
    out[dn == 0] = np.nan
    return out.astype(np.float32)


@dataclass
class Palsar2Scene(Scene):
    """PALSAR-2 bands as linear power sigma0 (see the module docstring)."""

    calibration_factor_db: float = DEFAULT_CALIBRATION_FACTOR_DB
    _files: dict[str, LazyDataset] = field(default_factory=dict, repr=False)
    _nodata: float | None = field(default=None, repr=False)

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        info = self.band(band)
        raw, mask = self._files[info.name].read(1, window)
        out = dn_to_sigma0(raw, self.calibration_factor_db)
        if self._nodata is not None or mask is not None:
            out[np.isnan(to_float(raw, (self._nodata,), mask))] = np.nan
        return out

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def is_palsar2(path: Path) -> bool:
    """True for a PALSAR-2 product folder or one of its IMG/summary/LED files."""
    if path.is_dir():
        return any(IMG_NAME.match(p.name) for p in path.iterdir()) or (
            (path / "summary.txt").is_file() and any(p.name.startswith("LED-ALOS2") for p in path.iterdir())
        )
    return bool(IMG_NAME.match(path.name)) or path.name.startswith("LED-ALOS2") or (
        path.name == "summary.txt" and "ALOS2" in path.read_text(encoding="latin-1", errors="replace")
    )


def open_palsar2(path: str | Path, *, calibration_factor_db: float | None = None) -> Palsar2Scene:
    """Open a PALSAR-2 product folder (all polarisations) or one ``IMG-<pol>-...tif`` (that polarisation)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    tifs = _image_files(path, folder)
    summary_path = folder / "summary.txt"
    summary = read_summary(summary_path) if summary_path.is_file() else {}
    cf, cf_source = _calibration_factor(folder, calibration_factor_db)

    first = tifs[0]
    m0 = _img_name(first)
    product_code = m0.group(4)
    product_id_code = summary.get("Pds_ProductID", product_code)
    level, projection = _level_and_projection(first, summary, product_code, product_id_code)
    ds = open_raster(str(first))
    try:
        width, height, crs, transform, nodata = ds.width, ds.height, ds.crs, ds.transform, ds.nodata
        if ds.dtypes[0] not in ("uint16", "int16", "uint32", "float32"):
            log.warning("%s: unexpected data type %s for PALSAR-2 amplitude DN", first, ds.dtypes[0])
    finally:
        ds.close()
    files, bands = _open_images(tifs, cf)
    crs, transform, georef = _georeferencing(first, summary, projection, product_id_code, crs, transform)

    scene_id = summary.get("Scs_SceneID") or f"{m0.group(2)}-{m0.group(3)}"
    metadata = {
        "scene_id": scene_id,
        "product_code": product_id_code,
        "process_level": summary.get("Lbi_ProcessLevel", level),
        "map_projection": projection,
        "observation_date": summary.get("Lbi_ObservationDate", ""),
        "scene_center_time": summary.get("Img_SceneCenterDateTime", ""),
        "off_nadir_angle_deg": summary.get("Img_OffNadirAngle", ""),
        "pixel_spacing_m": summary.get("Pds_PixelSpacing", ""),
        "calibration_factor_db": cf,
        "calibration_factor_source": cf_source,
        "georeferencing": georef,
        "synthetic": summary.get("Synthetic", "") == "yes",
    }
    return Palsar2Scene(
        path=path,
        sensor="ALOS-2 PALSAR-2",
        product_id=f"{scene_id}-{product_id_code}",
        width=width,
        height=height,
        bands=bands,
        crs=crs,
        transform=transform,
        frequency_band="L",
        calibration=f"sigma0[dB] = 10*log10(DN^2) + CF, CF = {cf:g} dB ({cf_source}); DN 0 = nodata",
        metadata=metadata,
        calibration_factor_db=cf,
        _files=files,
        _nodata=nodata,
    )


def _img_name(tif: Path) -> re.Match[str]:
    """The :data:`IMG_NAME` match of a file :func:`_image_files` returned (they all match)."""
    m = IMG_NAME.match(tif.name)
    assert m is not None
    return m


def _image_files(path: Path, folder: Path) -> list[Path]:
    """The ``IMG-<pol>-...tif`` files of the product (just ``path`` if it is one); errors for CEOS or none."""
    if path.is_file() and IMG_NAME.match(path.name):
        candidates = [path]
    else:
        candidates = sorted(p for p in folder.iterdir() if IMG_NAME.match(p.name))
    tifs = [p for p in candidates if p.suffix.lower() in (".tif", ".tiff")]
    if not tifs:
        if candidates:
            raise UnsupportedFormatError(
                f"{folder}: PALSAR-2 CEOS image files ({candidates[0].name}) are not supported; "
                "order or export the Level 2.1 GeoTIFF product (IMG-<pol>-...tif)"
            )
        raise InputError(f"{folder}: no IMG-<pol>-ALOS2...tif image files here; point to the Level 2.1 product folder")
    return tifs


def _open_images(tifs: list[Path], cf: float) -> tuple[dict[str, LazyDataset], dict[str, BandInfo]]:
    """Lazy datasets and band infos by polarisation, each image checked readable now."""
    files: dict[str, LazyDataset] = {}
    bands: dict[str, BandInfo] = {}
    for tif in tifs:
        with open_raster(str(tif)) as img:  # a truncated IMG file fails here, not mid-translation
            check_readable(img, str(tif))
        pol = _img_name(tif).group(1).upper()
        files[pol] = LazyDataset(str(tif))
        bands[pol] = BandInfo(
            pol, Quantity.SIGMA0, Scale.LINEAR, f"sigma0 = DN^2 * 10^({cf:g}/10), DN 0 = nodata", str(tif)
        )
    return files, bands


def _calibration_factor(folder: Path, calibration_factor_db: float | None) -> tuple[float, str]:
    """``(CF in dB, where it came from)``: the argument, else the LED radiometric record, else the default."""
    if calibration_factor_db is not None:
        return float(calibration_factor_db), "calibration_factor_db argument"
    led = sorted(folder.glob("LED-ALOS2*"))
    led_cf = read_led_calibration_factor(led[0]) if led else None
    if led_cf is not None:
        return led_cf, f"{led[0].name} radiometric record"
    cf = DEFAULT_CALIBRATION_FACTOR_DB
    log.info("%s: no LED calibration factor found; using %.1f dB", folder, cf)
    return cf, "default (no LED radiometric record)"


def _level_and_projection(first: Path, summary: dict[str, str], product_code: str,
                          product_id_code: str) -> tuple[str, str]:
    """Processing level and map projection from the product id; errors for Level 1.1 and 3.1."""
    parsed = PRODUCT_ID.match(product_id_code) or PRODUCT_ID.match(product_code)
    level = parsed.group("level") if parsed else (m.group(1) if (m := re.search(r"(\d\.\d)", product_code)) else "")
    if level == "1.1":
        raise UnsupportedFormatError(f"{first}: PALSAR-2 Level 1.1 (slant-range complex) is not supported; use Level 2.1")
    if level == "3.1":
        raise UnsupportedFormatError(
            f"{first}: PALSAR-2 Level 3.1 DN are noise-reduced and dynamic-range-compressed, so JAXA's "
            "sigma0 = 10*log10(DN^2) + CF (given for Level 1.5/2.1) does not calibrate them; use the Level 2.1 product"
        )
    letter = parsed.group("projection") if parsed else "_"
    projection = MAP_PROJECTIONS.get(letter) or ("UTM" if summary.get("Pds_UTM_ZoneNo", "").strip() else "unknown")
    return level, projection


def _georeferencing(first: Path, summary: dict[str, str], projection: str, product_id_code: str, crs: CRS | None,
                    transform: Affine | None) -> tuple[CRS, Affine, str]:
    """``(crs, transform, how)``: the GeoTIFF's, completed from summary.txt where it lacks them."""
    georef = "GeoTIFF"
    if transform is None or transform.is_identity:
        transform = _transform_from_summary(summary, first, projection, product_id_code)
        crs = crs or _crs_from_summary(summary, first, projection, product_id_code)
        georef = "summary.txt frame corner and pixel spacing (approximate)"
        log.warning("%s has no geotransform; using an approximate one from summary.txt", first)
    elif crs is None:
        crs = _crs_from_summary(summary, first, projection, product_id_code)
        georef = "GeoTIFF transform, CRS from summary.txt UTM zone"
        log.info("%s has no CRS; using %s from summary.txt", first, crs)
    return crs, transform, georef


def _utm_zone(summary: dict[str, str], where: Path, projection: str, product_id: str) -> tuple[int, bool]:
    if projection != "UTM":
        name = _PROJECTION_NAMES.get(projection, "an unknown projection")
        raise GeoreferencingError(
            f"{where}: product {product_id} is in {name} (map projection letter of the product id) and its GeoTIFF "
            "has no CRS; summary.txt carries no parameters for it: assign the product's CRS with "
            "gdal_edit.py -a_srs <CRS> (see the map projection record of its LED file)"
        )
    zone = summary.get("Pds_UTM_ZoneNo", "").strip()
    if not zone:
        raise GeoreferencingError(
            f"{where}: no CRS in the GeoTIFF and no UTM zone (Pds_UTM_ZoneNo) in summary.txt; "
            "assign one with gdal_edit.py -a_srs EPSG:326NN"
        )
    lat = None
    for key in ("Img_SceneCenterLatitude", "Img_ImageSceneCenterLatitude", "Img_FrameSceneCenterLatitude"):
        if summary.get(key, "").strip():
            lat = float(summary[key])
            break
    if lat is None:
        raise GeoreferencingError(f"{where}: summary.txt gives no scene centre latitude to tell the UTM hemisphere; assign a CRS with gdal_edit.py -a_srs")
    return int(float(zone)), lat < 0


def _crs_from_summary(summary: dict[str, str], where: Path, projection: str = "UTM", product_id: str = "") -> CRS:
    zone, south = _utm_zone(summary, where, projection, product_id)
    return CRS.from_epsg((32700 if south else 32600) + zone)


def _transform_from_summary(summary: dict[str, str], where: Path, projection: str = "UTM", product_id: str = "") -> Affine:
    from pyproj import Transformer

    crs = _crs_from_summary(summary, where, projection, product_id)
    try:
        lat = float(summary["Img_FrameSceneLeftTopLatitude"])
        lon = float(summary["Img_FrameSceneLeftTopLongitude"])
        spacing = float(summary["Pds_PixelSpacing"])
    except (KeyError, ValueError) as exc:
        raise GeoreferencingError(
            f"{where}: no geotransform in the GeoTIFF and summary.txt lacks {exc}; re-export the product with georeferencing"
        ) from exc
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return Affine(spacing, 0.0, x, 0.0, -spacing, y)
