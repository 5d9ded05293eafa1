"""The tiles of one scene pair on the pairs' grid, for :mod:`sar2opt_geo.data.make_pairs`.

* :func:`lattice`: tile origins on multiples of the stride of the SAR model grid (so tiles of
  one SAR scene line up across scene pairs);
* :func:`row_reader`: one row of tiles read from both resampled sources: SAR and optical
  linear values, the pixels valid on both sides and those failing the cloud/saturation test
  (:mod:`sar2opt_geo.data.cloudmask`); :func:`cloud_test_description` says which test;
* :func:`survey_tiles` (pass 1): every tile's nodata and cloud fractions, kept or not, and the
  optical histograms of the clear, valid pixels; :func:`optical_scales` their percentiles;
  :func:`nothing_kept_message` the error when no tile is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from ..errors import NoValidDataError
from ..progress import CancelFn, ProgressFn
from .cloudmask import SCL_REJECT, rgb_test, scl_test
from .pairs_store import OPT_PERCENTILE, Storage, check_cancel

if TYPE_CHECKING:
    from .pairs_options import PairsOptions

__all__ = [
    "RowReader",
    "cloud_test_description",
    "dn_max",
    "lattice",
    "nothing_kept_message",
    "optical_scales",
    "row_reader",
    "survey_tiles",
]

#: ``read(row) -> (sar linear, optical linear, valid on both sides, cloudy and valid)`` of one row of tiles.
RowReader = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def lattice(offset: int, length: int, tile: int, stride: int) -> list[int]:
    """Tile origins (relative to ``offset``) on multiples of ``stride`` of the full grid, tiles inside ``length``."""
    first = math.ceil(offset / stride) * stride - offset
    return list(range(first, length - tile + 1, stride))


def dn_max(scene: Any) -> float | None:
    """The largest value of the scene's integer data type (saturation), None for floats or unknown types."""
    dtype = (getattr(scene, "metadata", {}) or {}).get("dtype")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    return float(np.iinfo(dt).max) if dt.kind in "ui" else None  # type: ignore[type-var]  # numpy stubs: iinfo of a runtime dtype


def cloud_test_description(scl: Any, reflectance: bool, saturation: float | None) -> str:
    """What the cloud/saturation test of the optical side is: SCL classes, reflectance, saturation or none."""
    return (f"SCL classes {', '.join(str(c) for c in SCL_REJECT)} ({scl.source})" if scl is not None
            else "brightness/whiteness of red, green, blue (reflectance)" if reflectance
            else f"saturation only (digital numbers at {saturation:g})" if saturation
            else "none (no SCL, no reflectance, no integer range)")


def row_reader(sar_src: Any, opt_src: Any, scl: Any, cols: list[int], T: int, reflectance: bool,
               saturation: float | None) -> RowReader:
    """``read(r)``: the row of tiles at row ``r`` (all columns), from both sources and the SCL band if any."""

    def read(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        w = Window(col_off=cols[0], row_off=r, width=cols[-1] + T - cols[0], height=T)
        s_lin, o_lin = sar_src.read(w), opt_src.read(w)
        valid = np.isfinite(s_lin).all(axis=0) & np.isfinite(o_lin).all(axis=0)
        if scl is not None:
            bad, scl_nodata = scl_test(scl.read(w))
            valid &= ~scl_nodata
        else:
            bad = rgb_test(o_lin, reflectance, saturation)
        return s_lin, o_lin, valid, bad & valid

    return read


def survey_tiles(read: Callable, rows: list[int], cols: list[int], T: int, S: int, opts: PairsOptions,
                 storage: Storage, *, progress: ProgressFn | None, cancel: CancelFn | None) -> tuple[list[dict], list[Any]]:
    """Pass 1: nodata and cloud fractions of every tile (keep or not), and the optical histograms of the
    clear, valid pixels of the tiled area (each pixel counted once)."""
    from ..preprocess.domain import HIST_BINS, HIST_LOG10_RANGE
    from ..preprocess.histogram import StreamingHistogram

    decisions: list[dict] = []
    hists: list[Any] = []
    count_cols = cols[-1] + T - cols[0]
    for i, r in enumerate(rows):
        check_cancel(cancel, "building pairs")
        _, o_lin, valid, bad = read(r)
        if storage == "percentile":
            if not hists:
                hists = [StreamingHistogram(*HIST_LOG10_RANGE, HIST_BINS, log10=True) for _ in range(o_lin.shape[0])]
            own = T if i == len(rows) - 1 else min(S, T)  # rows of this block no later block counts
            clear = (valid & ~bad)[:own, :count_cols]
            for b, h in enumerate(hists):
                h.add(np.where(clear, o_lin[b, :own, :count_cols], np.float32(np.nan)))
        for c in cols:
            cs = slice(c - cols[0], c - cols[0] + T)
            invalid = float(1.0 - valid[:, cs].mean())
            cloudy = float(bad[:, cs].mean())
            reason = "nodata" if invalid > opts.max_nodata else "cloud" if cloudy > opts.max_cloud else ""
            decisions.append({"row": r, "col": c, "nodata_fraction": round(invalid, 5),
                              "cloud_fraction": round(cloudy, 5), "keep": not reason, "reason": reason})
        if progress is not None:
            progress((i + 1) / len(rows), f"tile rows {i + 1}/{len(rows)}")
    return decisions, hists


def optical_scales(oscene: Any, hists: list[Any]) -> list[float]:
    """The optical bands' ``OPT_PERCENTILE`` percentiles over the clear, valid pixels the survey counted."""
    scales = []
    for b, h in zip(oscene.bands, hists):
        if h.total == 0:
            raise NoValidDataError(f"{oscene.path}: band {b} has no clear, valid pixel in the overlap")
        scales.append(float(h.percentile(OPT_PERCENTILE)))
    return scales


def nothing_kept_message(sscene: Any, oscene: Any, n: int, n_nodata: int, n_cloud: int, opts: PairsOptions, T: int,
                         cloud_test: str) -> str:
    """The one-line error when none of ``n`` tiles is kept: why, and what to change."""
    if n_cloud and not n_nodata:
        what = f"all {n} tiles of {T} px are cloudy (more than {opts.max_cloud:.0%} fail the test: {cloud_test})"
        fix = "choose a clearer optical scene or raise --max-cloud"
    elif n_nodata == n:
        what = (f"all {n} tiles of {T} px have more than {opts.max_nodata:.0%} nodata on the SAR or the optical side "
                "(the valid areas hardly overlap)")
        fix = "check that both scenes cover the same area, use a smaller --tile or raise --max-nodata"
    else:
        what = f"none of {n} tiles of {T} px kept ({n_nodata} for nodata, {n_cloud} for cloud)"
        fix = "raise --max-nodata/--max-cloud or use a smaller --tile"
    return f"{sscene.path} and {oscene.path}: {what}; {fix}"
