"""The on-disk pairs dataset that :mod:`sar2opt_geo.data.make_pairs` writes and ``sar2opt train`` reads.

* the folder: a new dataset is built in a hidden folder beside ``out_dir`` and renamed into
  place at the end; an append stages its tiles in a hidden folder inside it, moves them in
  and replaces ``metadata.json`` last (:func:`staging`, :func:`publish`), so that after an
  error, a cancel or Ctrl-C the dataset is as it was;
* the storage rules (:func:`storage_doc`) and the tile files (:func:`write_tiles`): small
  DEFLATE GeoTIFFs on the pairs' grid, band descriptions (``VH``, ``red`` ...), RGB colour
  interpretation, an internal mask where a tile has nodata, provenance tags;
* the entries of ``metadata.json``: a new dataset's (:func:`new_metadata`) and one per scene
  pair (:func:`scene_pair_entry`, :func:`sar_entry`, :func:`optical_entry`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from rasterio.windows import Window

from ..errors import InputError, OutputExistsError
from ..io.atomic import atomic_file
from ..progress import CancelFn, ProgressFn
from .built_pairs import PAIRS_FORMAT, PAIRS_VERSION, read_pairs_metadata

if TYPE_CHECKING:
    from .pairs_options import PairsOptions

__all__ = [
    "OPT_PERCENTILE",
    "SAR_NODATA_UINT8",
    "Storage",
    "check_cancel",
    "existing_dataset",
    "new_metadata",
    "optical_entry",
    "output_spec",
    "publish",
    "sar_entry",
    "scene_pair_entry",
    "staging",
    "storage_doc",
    "write_tiles",
]

#: How tiles are stored: "percentile" (uint8 in the scene-percentile domain) or "db" (float32 dB + uint16 reflectance).
Storage = Literal["percentile", "db"]

#: round(255 * (0 + 1) / 2): the model-domain nodata fill 0.0 in the 8-bit SAR storage.
SAR_NODATA_UINT8 = 128
#: Percentile of the optical bands' scaling in the "percentile" storage.
OPT_PERCENTILE = 99.0


def check_cancel(cancel: CancelFn | None, what: str) -> None:
    """Raise :class:`~sar2opt_geo.errors.CancelledError` if ``cancel()`` says so."""
    from ..errors import CancelledError

    if cancel is not None and cancel():
        raise CancelledError(f"{what}: cancelled; the dataset was left as it was")


# -- the dataset folder ------------------------------------------------------------------


def existing_dataset(out_dir: Path, append: bool) -> dict | None:
    """The metadata of the dataset in ``out_dir`` to append to, or None for a new one; refuses what cannot work."""
    if out_dir.is_file():
        raise OutputExistsError(f"{out_dir}: is a file; give a folder for the pairs")
    meta = out_dir / "metadata.json"
    if meta.exists():
        if not append:
            raise OutputExistsError(f"{out_dir}: already holds a pairs dataset; pass --append (append=True) to add "
                                    "this scene pair, or choose a new folder")
        return read_pairs_metadata(out_dir)
    if out_dir.is_dir() and any(p for p in out_dir.iterdir() if not p.name.startswith(".")):
        raise OutputExistsError(f"{out_dir}: folder is not empty and holds no pairs dataset (no metadata.json); "
                                "choose a new or empty folder")
    return None


@contextlib.contextmanager
def staging(out_dir: Path, appending: bool) -> Iterator[Path]:
    """A hidden folder to write the new tiles into, removed whatever happens."""
    from ..io.atomic import sweep_stale, temp_path_for

    parent = out_dir if appending else out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(parent)
        stage = (out_dir / temp_path_for(out_dir / "append").name) if appending else temp_path_for(out_dir)
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "sar").mkdir(parents=True)
        (stage / "opt").mkdir()
    except OSError as exc:
        raise InputError(f"{parent}: cannot write the pairs there ({exc.strerror or exc}); choose another folder") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out_dir: Path, metadata: dict, appending: bool) -> None:
    """Move the staged tiles into ``out_dir`` and write ``metadata.json`` last (atomically)."""
    text = json.dumps(metadata, indent=1)
    if not appending:
        (stage / "metadata.json").write_text(text)
        if out_dir.is_dir():
            out_dir.rmdir()  # an empty folder the user made (non-empty ones were refused)
        os.replace(stage, out_dir)
        return
    for side in ("sar", "opt"):
        (out_dir / side).mkdir(exist_ok=True)
        for f in sorted((stage / side).iterdir()):
            os.replace(f, out_dir / side / f.name)
    with atomic_file(out_dir / "metadata.json") as tmp:
        tmp.write_text(text)


# -- storage rules and tile files --------------------------------------------------------


def storage_doc(storage: Storage, card: Any) -> dict[str, str]:
    """The storage rule of the tiles, in words (``metadata.json["storage"]`` and the tiles' tags)."""
    if storage == "percentile":
        return {"rule": "percentile",
                "sar": f"uint8 = round(255 * clip(linear {card.input.quantity} / scene p"
                       f"{card.input.percentile:g}, 0, 1)); nodata {SAR_NODATA_UINT8} (model-domain 0) + mask",
                "optical": f"uint8 red, green, blue = round(255 * clip(band / band p{OPT_PERCENTILE:g}, 0, 1)); "
                           "nodata 0 + mask",
                "read_as": "x / 255 (layout 'pairs', scaling 'uint8')"}
    return {"rule": "db", "sar": f"float32 {card.input.quantity} in dB, NaN nodata",
            "optical": "uint16 red, green, blue = round(reflectance x 10000); nodata 0",
            "read_as": "dB clipped to (-25, 0) dB; reflectance 0..0.3 (layout 'pairs', scalings 'db_clip', "
                       "'reflectance')"}


def write_tiles(read: Callable, kept: list[dict], cols: list[int], T: int, grid: Any, win: Window, stage: Path,
                 pair_id: str, *, plan: Any, card: Any, storage: Storage, scales: list[float] | None, sscene: Any,
                 oscene: Any, progress: ProgressFn | None, cancel: CancelFn | None) -> list[dict]:
    """Pass 2: encode and write the kept tiles into ``stage``; their metadata entries."""
    from ..normalize import percentile_to_unit
    from ..radiometry import to_db

    entries: list[dict] = []
    by_row: dict[int, list[dict]] = {}
    for d in kept:
        by_row.setdefault(d["row"], []).append(d)
    crs_name = grid.crs.to_string()
    sar_names = tuple(plan.bands.bands)
    done = 0
    for r, tiles in by_row.items():
        check_cancel(cancel, "writing pairs")
        s_lin, o_lin, valid, _ = read(r)
        for d in tiles:
            cs = slice(d["col"] - cols[0], d["col"] - cols[0] + T)
            ok = valid[:, cs]
            s, o = s_lin[:, :, cs], o_lin[:, :, cs]
            if storage == "percentile":
                unit = (plan.normaliser(s) + 1.0) / 2.0
                sar = np.round(np.nan_to_num(unit, nan=0.5) * 255.0).astype(np.uint8)
                sar[:, ~ok] = SAR_NODATA_UINT8
                ounit = percentile_to_unit(o, np.asarray(scales, np.float32), quantize_levels=255)
                opt = np.round(np.nan_to_num(ounit, nan=0.0) * 255.0).astype(np.uint8)
                opt[:, ~ok] = 0
            else:
                sar = to_db(s)
                sar[:, ~ok] = np.nan
                opt = np.clip(np.round(np.nan_to_num(o, nan=0.0) * 10000.0), 1, 65535).astype(np.uint16)
                opt[:, ~ok] = 0
            name = f"{pair_id}_r{int(win.row_off) + d['row']:05d}_c{int(win.col_off) + d['col']:05d}"
            tgrid = grid.window_grid(Window(col_off=d["col"], row_off=d["row"], width=T, height=T))
            tags = {"SAR2OPT_PAIR": pair_id, "SAR2OPT_SOURCE": str(sscene.path)}
            write_tif(stage / "sar" / f"{name}.tif", sar, tgrid, sar_names, ok, storage, {
                **tags, "SAR2OPT_STORAGE": storage_doc(storage, card)["sar"],
                "SAR2OPT_NORMALISATION": plan.normaliser.describe()})
            write_tif(stage / "opt" / f"{name}.tif", opt, tgrid, ("red", "green", "blue"), ok, storage, {
                **tags, "SAR2OPT_SOURCE": str(oscene.path), "SAR2OPT_STORAGE": storage_doc(storage, card)["optical"],
                "SAR2OPT_PERCENTILES": ",".join(f"{v:.6g}" for v in scales) if scales else ""})
            entries.append({"name": name, "pair": pair_id, "crs": crs_name, "bounds": list(tgrid.bounds),
                            "row": d["row"], "col": d["col"], "nodata_fraction": d["nodata_fraction"],
                            "cloud_fraction": d["cloud_fraction"]})
            done += 1
            if progress is not None:
                progress(done / len(kept), f"tiles {done}/{len(kept)}")
    return entries


def write_tif(path: Path, data: np.ndarray, grid: Any, names: Sequence[str], valid: np.ndarray, storage: Storage,
               tags: dict[str, str]) -> None:
    import rasterio
    from rasterio.enums import ColorInterp

    profile: dict[str, Any] = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": data.shape[0],
        "dtype": str(data.dtype), "crs": grid.crs, "transform": grid.transform, "compress": "deflate",
        "predictor": 3 if data.dtype.kind == "f" else 2,
    }
    if data.dtype.kind == "f":
        profile["nodata"] = float("nan")
    elif data.dtype == np.uint16:
        profile["nodata"] = 0
    masked = data.dtype == np.uint8 and not valid.all()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        if tuple(names) == ("red", "green", "blue"):
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        dst.write(data)
        if masked:
            dst.write_mask(np.where(valid, np.uint8(255), np.uint8(0)))
        for i, n in enumerate(names, 1):
            dst.set_band_description(i, n)
        dst.update_tags(**tags)


# -- metadata.json entries ---------------------------------------------------------------


def sar_entry(sscene: Any, plan: Any, sar_src: Any, sar_when: dict) -> dict[str, Any]:
    """The SAR side of a scene pair's metadata entry."""
    return {
        "path": str(Path(sscene.path).resolve()), "product_id": sscene.product_id, "sensor": sscene.sensor,
        "frequency_band": sscene.frequency_band, "bands": list(plan.bands.bands),
        "calibration": sscene.calibration, **sar_when,
        "resampling": sar_src.description,
        "normalisation": plan.normaliser.describe(), "statistics_area": plan.statistics_area,
        "percentiles": dict(zip(plan.bands.bands, plan.normaliser.scales or ())),
    }


def optical_entry(oscene: Any, opt_src: Any, opt_when: dict, scales: list[float] | None) -> dict[str, Any]:
    """The optical side of a scene pair's metadata entry."""
    return {
        "path": str(Path(oscene.path).resolve()), "product_id": oscene.product_id, "sensor": oscene.sensor,
        "bands": list(oscene.bands), "calibration": oscene.calibration, **opt_when,
        "resampling": opt_src.description,
        "percentiles": dict(zip(oscene.bands, scales)) if scales else None,
        "percentile": OPT_PERCENTILE if scales else None,
        "statistics_area": "clear, valid pixels of the overlap on the pairs' grid" if scales else None,
    }


def scene_pair_entry(pair_id: str, sar: dict, optical: dict, days: float | None, crs_name: str, grid: Any,
                     opts: PairsOptions, *, counts: dict[str, int], cloud_test: str, warnings: list[str],
                     command: str | None) -> dict[str, Any]:
    """One scene pair's entry of ``metadata.json``: scenes, grid, tiling, tile counts, provenance."""
    from ..version import __version__

    return {
        "id": pair_id, "sar": sar, "optical": optical,
        "days_apart": round(days, 3) if days is not None else None,
        "crs": crs_name, "grid": {"transform": list(grid.transform)[:6], "width": grid.width, "height": grid.height},
        "bounds": list(grid.bounds), "tile_size": opts.tile_size, "stride": opts.tile_stride, "cloud_test": cloud_test,
        "max_nodata": opts.max_nodata, "max_cloud": opts.max_cloud,
        "tiles": counts,
        "warnings": warnings, "command": command or "", "library_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def new_metadata(storage: Storage, card: Any, meta_input: dict, oscene: Any, tile_size: int) -> dict[str, Any]:
    """The ``metadata.json`` of a new dataset, before its first scene pair."""
    return {
        "format": PAIRS_FORMAT, "version": PAIRS_VERSION,
        "layout": "sar/<name>.tif <-> opt/<name>.tif, matched by name; tiles listed below",
        "storage": storage_doc(storage, card), "input": meta_input,
        "output": json.loads(json.dumps(dataclasses.asdict(output_spec(storage, oscene)))),
        "tile_size": tile_size, "scene_pairs": [], "tiles": [],
    }


def output_spec(storage: Storage, oscene: Any) -> Any:
    """The output spec of the pairs' optical side: red, green, blue in the storage rule's scaling."""
    from ..models.card import PERCENTILE_SCALING, REFLECTANCE_SCALING, OutputSpec

    return OutputSpec(bands=("red", "green", "blue"),
                      scaling=PERCENTILE_SCALING if storage == "percentile" else REFLECTANCE_SCALING,
                      sensor=oscene.sensor)
