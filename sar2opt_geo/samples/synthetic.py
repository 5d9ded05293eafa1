"""Synthetic sample scenes (clearly labelled **synthetic**; the one real sample pair is in :mod:`sar2opt_geo.samples.demo`).

* :func:`write_sample_scene`: a Sentinel-1 VH-like GeoTIFF, float32 sigma0 in dB, 10 m,
  UTM 31N, nodata -9999, used by ``sar2opt demo``. Structure: dark water bodies and a river
  (about -24 dB), textured agricultural parcels (-22..-14 dB with tillage stripes), forest
  (-15 dB), bright urban blocks with point scatterers (about -6 dB, up to +5 dB), multiplicative
  speckle (gamma, ENL 4.4 as in IW GRDH), and a nodata wedge at the swath edge.
* :func:`write_synthetic_palsar2_l21`: an ALOS-2 PALSAR-2 Level 2.1 product folder with the
  real naming and layout of JAXA's GeoTIFF products (``IMG-HH-/IMG-HV-ALOS2...-FBDR2.1GUD.tif``
  uint16 amplitude DN, ``LUT-<pol>-...txt`` files, ``summary.txt`` with the keys of a real
  product listing the IMG files first, then the LUT files), optionally a minimal CEOS ``LED-``
  file with the calibration factor, georeferenced in UTM (or polar stereographic). DN encode
  the same kind of landscape.

Everything is deterministic given ``seed`` and written block by block (bounded memory),
atomically (temporary name, then rename).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from affine import Affine

from ..errors import ConfigError
from ..io.atomic import atomic_file

__all__ = [
    "SAMPLE_CRS",
    "SAMPLE_NODATA",
    "synthetic_db",
    "write_ceos_leader",
    "write_sample_scene",
    "write_synthetic_palsar2_l21",
]

log = logging.getLogger(__name__)

SAMPLE_CRS = "EPSG:32631"
SAMPLE_NODATA = -9999.0
_BLOCK = 256
_ENL = 4.4


class _Landscape:
    """Deterministic land-cover fields over a ``size`` x ``size`` grid, evaluated on row blocks."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1])
        self.size = size
        self.cell = 96  # px per coarse cell of the smooth fields
        n = size // self.cell + 3
        self.water = rng.normal(size=(n, n))
        self.urban = rng.normal(size=(n, n))
        self.forest = rng.normal(size=(n, n))
        # every scene, however small, gets at least one town and one lake in its interior
        m = max(1, size // self.cell)
        town, lake = rng.integers(0, m + 1, size=2), rng.integers(0, m + 1, size=2)
        if (town == lake).all():
            lake = (lake + 1) % (m + 1)
        self.urban[town[0], town[1]] = 2.5
        self.water[lake[0], lake[1]] = 2.5
        self.water[town[0], town[1]] = min(self.water[town[0], town[1]], 0.0)
        # river: a sinuous band across the scene
        self.river_c0 = rng.uniform(0.3, 0.7) * size
        self.river_amp = rng.uniform(0.05, 0.12) * size
        self.river_period = rng.uniform(0.6, 1.2) * size
        self.river_width = max(3.0, size / 80)
        # parcels: strips of random height, each cut into random widths
        heights = rng.integers(40, 130, size=size // 40 + 2)
        self.strip_edges = np.concatenate([[0], np.cumsum(heights)])
        self.parcel_edges = [np.concatenate([[0], np.cumsum(rng.integers(40, 160, size=size // 40 + 2))]) for _ in heights]
        self.parcel_db = rng.uniform(-22.0, -14.0, size=(len(heights), size // 40 + 3)).astype(np.float32)
        self.parcel_theta = rng.uniform(0, np.pi, size=(len(heights), size // 40 + 3)).astype(np.float32)
        self.scatter_seed = seed

    def _smooth(self, coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        gy, gx = rows / self.cell, cols / self.cell
        y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
        ty, tx = (gy - y0)[:, None], (gx - x0)[None, :]
        a = coarse[np.ix_(y0, x0)]
        b = coarse[np.ix_(y0, x0 + 1)]
        c = coarse[np.ix_(y0 + 1, x0)]
        d = coarse[np.ix_(y0 + 1, x0 + 1)]
        ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)  # smoothstep: no grid artefacts
        return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty

    def db(self, row0: int, nrows: int, block_seed: Sequence[int]) -> np.ndarray:
        """Speckled VH-like sigma0 in dB for rows ``row0 .. row0+nrows``, all columns."""
        rows = np.arange(row0, row0 + nrows, dtype=np.float64)
        cols = np.arange(self.size, dtype=np.float64)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        # agricultural parcels with tillage stripes
        strip = np.searchsorted(self.strip_edges, rows, side="right") - 1
        out = np.empty((nrows, self.size), dtype=np.float32)
        for s in np.unique(strip):
            sel = strip == s
            parcel = np.searchsorted(self.parcel_edges[s], cols, side="right") - 1
            parcel = np.minimum(parcel, self.parcel_db.shape[1] - 1)
            base = self.parcel_db[s, parcel][None, :]
            theta = self.parcel_theta[s, parcel][None, :]
            phase = rr[sel] * np.cos(theta) + cc[sel] * np.sin(theta)
            out[sel] = base + 0.8 * np.sin(2 * np.pi * phase / 9.0)
        forest = self._smooth(self.forest, rows, cols) > 0.6
        out[forest] = -15.0
        urban = self._smooth(self.urban, rows, cols) > 1.0
        out[urban] = -6.0 + 2.0 * (np.sin(rr[urban] / 7.0) > 0.6)  # street grid
        water = self._smooth(self.water, rows, cols) > 0.9
        river = np.abs(cc - (self.river_c0 + self.river_amp * np.sin(2 * np.pi * rr / self.river_period))) < self.river_width
        water |= river
        out[water] = -24.0
        rng = np.random.default_rng(list(block_seed))
        # bright point scatterers in urban areas
        pts = urban & ~water & (rng.random(out.shape) < 0.01)
        out[pts] = rng.uniform(-1.0, 5.0, size=int(pts.sum()))
        speckle = rng.gamma(_ENL, 1.0 / _ENL, size=out.shape).astype(np.float32)
        return (out + 10.0 * np.log10(speckle)).astype(np.float32)

    def nodata(self, row0: int, nrows: int) -> np.ndarray:
        """True in a wedge along the right edge (a swath border)."""
        rows = np.arange(row0, row0 + nrows)[:, None]
        cols = np.arange(self.size)[None, :]
        return cols > self.size - 1 - (0.02 * self.size + 0.06 * rows)


def synthetic_db(size: int = 256, seed: int = 0) -> np.ndarray:
    """The sample landscape as one in-memory (size, size) float32 dB array, NaN = nodata (small sizes)."""
    land = _Landscape(size, seed)
    out = land.db(0, size, (seed, 0))
    out[land.nodata(0, size)] = np.nan
    return out


_atomic = atomic_file


def write_sample_scene(path: str | Path, size: int = 1024, seed: int = 0) -> Path:
    """Write a **synthetic** Sentinel-1 VH-like scene: float32 sigma0 dB, 10 m, UTM 31N, nodata -9999.

    ``size``: width = height in pixels. Deterministic given ``seed``. Tags say it is synthetic.
    """
    import rasterio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    land = _Landscape(size, seed)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32", "crs": SAMPLE_CRS,
        "transform": Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 4_800_000.0), "nodata": SAMPLE_NODATA,
        "tiled": True, "blockxsize": _BLOCK, "blockysize": _BLOCK, "compress": "deflate", "predictor": 3,
    }
    if size < _BLOCK:
        profile.update(tiled=False)
        del profile["blockxsize"], profile["blockysize"]
    with _atomic(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for i, row0 in enumerate(range(0, size, _BLOCK)):
            n = min(_BLOCK, size - row0)
            block = land.db(row0, n, (seed, i))
            block[land.nodata(row0, n)] = SAMPLE_NODATA
            dst.write(block, 1, window=rasterio.windows.Window(col_off=0, row_off=row0, width=size, height=n))
        dst.set_band_description(1, "VH")
        dst.update_tags(
            SENSOR="Sentinel-1 (synthetic)", POLARISATION="VH", QUANTITY="sigma0", UNITS="dB",
            SYNTHETIC="yes: synthetic scene generated by sar2opt_geo.samples.write_sample_scene, not a real acquisition",
            SEED=str(seed),
        )
    log.info("wrote synthetic sample scene %s (%d x %d)", path, size, size)
    return path


# -- ALOS-2 PALSAR-2 Level 2.1 ----------------------------------------------------------

_SCENE_ID = "ALOS2123452750-200105"  # orbit 12345, frame 2750, 2020-01-05 (synthetic)


def write_ceos_leader(path: str | Path, calibration_factor_db: float) -> Path:
    """A minimal CEOS leader (``LED-``) file: file descriptor + radiometric data record with the CF.

    Only the parts the reader uses are filled in (record headers and the F16.7 calibration
    factor at bytes 21-36 of the radiometric record); everything else is blank.
    """
    path = Path(path)
    fd = bytearray(b" " * 720)
    fd[0:12] = struct.pack(">IBBBBI", 1, 11, 192, 18, 18, 720)
    fd[12:16] = b"A   "
    fd[16:28] = b"CEOS-SAR    "
    rad = bytearray(b" " * 9860)
    rad[0:12] = struct.pack(">IBBBBI", 2, 18, 50, 18, 20, 9860)
    rad[12:20] = b"   1   1"
    rad[20:36] = f"{calibration_factor_db:16.7f}".encode("ascii")
    with _atomic(path) as tmp:
        tmp.write_bytes(bytes(fd) + bytes(rad))
    return path


def write_synthetic_palsar2_l21(
    folder: str | Path,
    size: int = 256,
    seed: int = 0,
    *,
    polarisations: Sequence[str] = ("HH", "HV"),
    calibration_factor_db: float = -83.0,
    write_led: bool = True,
    crs_in_tif: bool = True,
    transform_in_tif: bool = True,
    utm_zone: int = 54,
    south: bool = False,
    pixel_spacing: float = 6.25,
    level: str = "2.1",
    map_projection: str = "U",
) -> Path:
    """Write a **synthetic** PALSAR-2 L2.1 product folder; returns the folder.

    DN are ``round(sqrt(10^((sigma0_dB - CF)/10)))`` (uint16, DN 0 = nodata in a border wedge)
    of the sample landscape (HV; HH = HV + 7 dB). ``crs_in_tif=False`` / ``transform_in_tif=False``
    drop the GeoTIFF's CRS / geotransform to exercise the ``summary.txt`` fallbacks.

    Layout as in JAXA's GeoTIFF products: ``summary.txt`` lists the ``IMG-<pol>-...tif`` files
    first (``Pdi_L21ProductFileName01`` is the first image), then one ``LUT-<pol>-...txt`` per
    polarisation. The LUT files are placeholders that say they are synthetic (JAXA's LUT content is
    not reproduced; the reader does not use them). ``write_led`` adds a minimal CEOS leader (not
    listed in summary.txt) carrying ``calibration_factor_db``, which the reader prefers to -83 dB.
    ``level`` and ``map_projection`` (the product id letter: ``"U"`` UTM in ``utm_zone``, ``"P"``
    polar stereographic, written as EPSG:3031 south / EPSG:3413 north) make other product ids.
    """
    if map_projection not in ("U", "P"):
        raise ConfigError(f"map_projection must be 'U' (UTM) or 'P' (polar stereographic), got {map_projection!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    product = f"FBDR{level}G{map_projection}D"
    epsg, transform, corners = _palsar2_geometry(size, utm_zone, south, pixel_spacing, map_projection)
    land = _Landscape(size, seed)
    gain = {"HV": 0.0, "HH": 7.0, "VV": 6.0, "VH": 0.0}
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16", "nodata": None}
    if transform_in_tif:
        profile["transform"] = transform
    if crs_in_tif and transform_in_tif:
        profile["crs"] = f"EPSG:{epsg}"
    names, luts = [], []
    for p_i, pol in enumerate(polarisations):
        name = f"IMG-{pol}-{_SCENE_ID}-{product}.tif"
        names.append(name)
        _write_palsar2_image(folder / name, land, profile, (seed, p_i), gain.get(pol, 0.0), calibration_factor_db)
        lut = f"LUT-{pol}-{_SCENE_ID}-{product}.txt"
        luts.append(lut)
        with _atomic(folder / lut) as tmp:
            tmp.write_text("# SYNTHETIC placeholder written by sar2opt_geo.samples.write_synthetic_palsar2_l21: "
                           "not a JAXA LUT (its content is not reproduced here; sar2opt does not read LUT files)\n",
                           encoding="ascii")
    lines = _palsar2_summary(seed=seed, product=product, level=level, map_projection=map_projection, utm_zone=utm_zone,
                             pixel_spacing=pixel_spacing, size=size, corners=corners, listed=names + luts)
    with _atomic(folder / "summary.txt") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="ascii")
    if write_led:
        write_ceos_leader(folder / f"LED-{_SCENE_ID}-{product}", calibration_factor_db)
    return folder


def _palsar2_geometry(size: int, utm_zone: int, south: bool, pixel_spacing: float,
                      map_projection: str) -> tuple[int, Affine, dict[str, tuple[float, float]]]:
    """EPSG code, geotransform and corner (lon, lat) of a synthetic product near the UTM zone's central meridian."""
    from pyproj import Transformer

    if map_projection == "U":
        epsg = (32700 if south else 32600) + utm_zone
        lat0 = -36.0 if south else 36.0
    else:
        epsg = 3031 if south else 3413
        lat0 = -75.0 if south else 75.0
    lon0 = -183 + 6 * utm_zone + 0.05  # a little east of the UTM zone's central meridian
    x0, y0 = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon0, lat0)
    x0, y0 = round(x0 / pixel_spacing) * pixel_spacing, round(y0 / pixel_spacing) * pixel_spacing
    transform = Affine(pixel_spacing, 0.0, x0, 0.0, -pixel_spacing, y0)
    to_ll = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    corners = {
        "LeftTop": to_ll.transform(x0, y0), "RightTop": to_ll.transform(x0 + size * pixel_spacing, y0),
        "LeftBottom": to_ll.transform(x0, y0 - size * pixel_spacing),
        "RightBottom": to_ll.transform(x0 + size * pixel_spacing, y0 - size * pixel_spacing),
        "Center": to_ll.transform(x0 + size * pixel_spacing / 2, y0 - size * pixel_spacing / 2),
    }
    return epsg, transform, corners


def _write_palsar2_image(path: Path, land: _Landscape, profile: dict, block_seed: tuple[int, int],
                         gain_db: float, calibration_factor_db: float) -> None:
    """One ``IMG-`` GeoTIFF: uint16 amplitude DN of the landscape (DN 0 in the nodata wedge), block by block."""
    import warnings

    import rasterio

    size = land.size
    with _atomic(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, row0 in enumerate(range(0, size, _BLOCK)):
                n = min(_BLOCK, size - row0)
                db = land.db(row0, n, (*block_seed, i)) + gain_db
                dn = np.sqrt(10.0 ** ((db.astype(np.float64) - calibration_factor_db) / 10.0))
                dn = np.clip(np.rint(dn), 1, 65535).astype(np.uint16)
                dn[land.nodata(row0, n)] = 0
                dst.write(dn, 1, window=rasterio.windows.Window(col_off=0, row_off=row0, width=size, height=n))


def _palsar2_summary(*, seed: int, product: str, level: str, map_projection: str, utm_zone: int,
                     pixel_spacing: float, size: int, corners: dict[str, tuple[float, float]],
                     listed: Sequence[str]) -> list[str]:
    """The lines of a synthetic product's ``summary.txt`` (the keys of a real one), ``listed`` files in order."""
    lines = [
        "# SYNTHETIC product written by sar2opt_geo.samples.write_synthetic_palsar2_l21 (not a JAXA product)",
        f'Odi_SceneId="SYNTHETIC-{seed:08d}"',
        'Odi_SiteDateTime="PROCESS:SYNTHETIC sar2opt_geo.samples"',
        f'Scs_SceneID="{_SCENE_ID}"',
        'Scs_SceneShift="0"',
        f'Pds_ProductID="{product}"',
        'Pds_ResamplingMethod="BL"',
    ]
    if map_projection == "U":
        lines.append(f'Pds_UTM_ZoneNo="{utm_zone}"')
    lines += [
        'Pds_MapDirection="MapNorth"',
        f'Pds_PixelSpacing="{pixel_spacing:.6f}"',
        'Img_SceneCenterDateTime="20200105 02:45:10.000"',
        'Img_SceneStartDateTime="20200105 02:45:05.000"',
        'Img_SceneEndDateTime="20200105 02:45:15.000"',
    ]
    for kind in ("Image", "Frame"):
        for corner, (lon, lat) in corners.items():
            lines.append(f'Img_{kind}Scene{corner}Latitude="{lat:.3f}"')
            lines.append(f'Img_{kind}Scene{corner}Longitude="{lon:.3f}"')
    lines += [
        'Img_OffNadirAngle="32.5"',
        f'Pdi_CntOfL21ProductFileName="{len(listed)}"',
    ]
    for i, n in enumerate(listed, 1):
        lines.append(f'Pdi_L21ProductFileName{i:02d}="{n}"')
    lines += [
        'Pdi_BitPixel="16"',
        f'Pdi_NoOfPixels_0="{size}"',
        f'Pdi_NoOfLines_0="{size}"',
        'Pdi_ProductFormat="GeoTIFF"',
        'Lbi_Satellite="ALOS2"',
        'Lbi_Sensor="SAR"',
        f'Lbi_ProcessLevel="{level}"',
        'Lbi_ProcessFacility="SYNTHETIC"',
        'Lbi_ObservationDate="20200105"',
        'Synthetic="yes"',
    ]
    return lines
