"""One file per polarisation: analysis-ready (RTC) backscatter as OPERA, ASF HyP3 and Microsoft's
Planetary Computer deliver it, read as one scene with a band per file.

Which polarisation and units a file holds comes from its name (then, as for any GeoTIFF, from its
tags and values):

=====================================  ==================================================  ======================
convention                              example name                                        values
=====================================  ==================================================  ======================
OPERA RTC-S1 (NASA/JPL)                 ``OPERA_L2_RTC-S1_..._VV.tif``                      gamma0, linear power
ASF HyP3 RTC                            ``S1A_IW_..._RTC30_G_gpuned_FD6A_VV.tif``           gamma0/sigma0 (``g``/``s``)
                                                                                            in power/amplitude/dB
                                                                                            (``p``/``a``/``d``)
Planetary Computer ``sentinel-1-rtc``   ``vv.tif``, ``vh.tif`` (asset names)                gamma0, linear power
any other                               a polarisation token, e.g. ``scene_VH.tif``         from tags and values
=====================================  ==================================================  ======================

The files must share one grid (CRS, transform, size); :func:`open_polarisation_files` refuses
others with the line that names them. :func:`find_polarisation_files` lists such files in a
folder or a glob pattern.
"""

from __future__ import annotations

import dataclasses
import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from ..errors import InputError
from ..radiometry import Quantity
from ._names import find_polarisation
from .base import Scene

__all__ = ["PolarisationFilesScene", "find_polarisation_files", "name_convention", "open_polarisation_files"]

_HYP3 = re.compile(r"_RTC\d+_[GR]_(?P<radiometry>[gs])(?P<scale>[pad])[a-z]{4}_[0-9A-F]{4}_(?:VV|VH|HH|HV)\.tiff?$",
                   re.IGNORECASE)
_OPERA = re.compile(r"^OPERA_L2_RTC-S1_.*_(?:VV|VH|HH|HV)\.tiff?$", re.IGNORECASE)
_PC = re.compile(r"^(vv|vh|hh|hv)\.tiff?$")
_POLS = ("HH", "HV", "VV", "VH")


def name_convention(path: str | Path) -> tuple[str, str | None, Quantity | None]:
    """``(convention, units, quantity)`` that a file's name says (units/quantity None: not said)."""
    name = Path(path).name
    if _OPERA.match(name):
        return "OPERA RTC-S1", "linear", Quantity.GAMMA0
    m = _HYP3.search(name)
    if m:
        units = {"p": "linear", "a": "amplitude", "d": "db"}[m.group("scale").lower()]
        return "ASF HyP3 RTC", units, Quantity.GAMMA0 if m.group("radiometry").lower() == "g" else Quantity.SIGMA0
    if _PC.match(name):
        return "Planetary Computer sentinel-1-rtc", "linear", Quantity.GAMMA0
    return "polarisation in the file name", None, None


def _pol(path: Path) -> str | None:
    return find_polarisation(re.sub(r"\.[a-z0-9]+$", "", path.name.lower()))


def find_polarisation_files(where: str | Path) -> list[Path]:
    """The single-polarisation rasters in folder ``where`` or matching glob ``where``: files whose
    name holds one polarisation token, one per polarisation (empty if fewer than two)."""
    text = str(where)
    if any(c in text for c in "*?["):
        candidates = [Path(p) for p in sorted(glob.glob(text))]
    elif Path(text).is_dir():
        candidates = sorted(Path(text).iterdir())
    else:
        return []
    found: dict[str, Path] = {}
    for p in candidates:
        if p.is_file() and p.suffix.lower() in (".tif", ".tiff", ".vrt") and (pol := _pol(p)) and pol not in found:
            found[pol] = p
    return [found[p] for p in _POLS if p in found] if len(found) >= 2 else []


@dataclass
class PolarisationFilesScene(Scene):
    """Bands read from one single-band scene each (same grid)."""

    _parts: dict[str, tuple[Scene, str]] = field(default_factory=dict, repr=False)

    def read(self, band: str, window: Window | None = None) -> np.ndarray:
        part, inner = self._parts[self.band(band).name]
        return part.read(inner, window)

    def close(self) -> None:
        for part, _ in self._parts.values():
            part.close()


def open_polarisation_files(paths: Sequence[str | Path], *, sensor: str | None = None,
                            units: str | None = None) -> PolarisationFilesScene:
    """One scene from single-polarisation rasters (see the module docstring); ``sensor``/``units``
    override what the names say, for every file."""
    from .geotiff import open_geotiff

    names = [str(p) for p in paths]  # strings: a /vsicurl/https:// name must keep its double slash
    files = [Path(p) for p in names]  # for file names only
    parts: dict[str, tuple[Scene, str]] = {}
    notes = []
    opened: list[Scene] = []
    try:
        for p, name in zip(files, names):
            convention, named_units, quantity = name_convention(p)
            scene = open_geotiff(name, sensor=sensor or ("SAR" if quantity is not None else None), units=units or named_units)
            opened.append(scene)
            if len(scene.bands) != 1:
                raise InputError(f"{p}: {len(scene.bands)} bands; one file per polarisation needs single-band files")
            inner = next(iter(scene.bands))
            pol = _pol(p) or (inner if inner in _POLS else None)
            if pol is None:
                raise InputError(f"{p}: no polarisation (HH, HV, VV, VH) in the file name or band; rename it, "
                                 "e.g. <name>_VH.tif")
            if pol in parts:
                raise InputError(f"{p}: a second {pol} file (also {parts[pol][0].path}); give one file per polarisation")
            if quantity is not None:
                scene.bands[inner] = dataclasses.replace(scene.bands[inner], quantity=quantity)
            first = opened[0]
            if (scene.width, scene.height) != (first.width, first.height) or scene.crs != first.crs or \
                    scene.transform != first.transform:
                raise InputError(f"{p}: its grid ({scene.width} x {scene.height} px, {scene.crs}) differs from "
                                 f"{Path(str(first.path)).name}'s; the polarisation files must share one grid (warp one onto "
                                 "the other with gdalwarp -tap, or use files of one product)")
            parts[pol] = (scene, inner)
            notes.append(f"{pol}: {p.name} ({convention}; {scene.calibration})")
    except BaseException:
        for s in opened:
            s.close()
        raise
    first = opened[0]
    if not first.is_sar:
        for s in opened:
            s.close()
        raise InputError(f"{files[0]}: read as {first.sensor}, not SAR backscatter; one file per polarisation is for "
                         "SAR (set --sensor SAR and --input-units if the files are SAR)")
    bands = {pol: dataclasses.replace(parts[pol][0].bands[parts[pol][1]], name=pol) for pol in _POLS if pol in parts}
    sensors = {s.sensor for s in opened}
    return PolarisationFilesScene(
        path=files[0],
        sensor=sensors.pop() if len(sensors) == 1 else "SAR",
        product_id="+".join(p.stem for p in files),
        width=first.width,
        height=first.height,
        bands=bands,
        crs=first.crs,
        transform=first.transform,
        gcps=first.gcps,
        frequency_band=first.frequency_band,
        calibration="; ".join(notes),
        metadata={"files": ", ".join(names), **{f"{k}": v for k, v in first.metadata.items()
                                                                  if k in ("format", "dtype", "georeferencing")}},
        _parts=parts,
    )
