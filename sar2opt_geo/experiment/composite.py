"""Pseudo-colour composites of dual-polarisation SAR scenes, plain and through generators.

**Plain composite** (the classic dual-pol RGB), from sigma0 in dB:

* R = co-pol (HH or VV), G = cross-pol (HV or VH), B = co-pol - cross-pol (the
  polarisation ratio in dB);
* each band stretched linearly to [0, 1] and clipped, either over **fixed dB ranges**
  (:data:`DEFAULT_DB_RANGES`) or by **percentiles** (default 2-98 %) of the valid pixels of
  the whole scene, computed in a streaming pass (one fixed-bin histogram per band, 0.01 dB
  bins: exact to the bin, memory independent of the scene size).

Why these fixed ranges (sigma0, C and L band, 10-30 m pixels): co-pol land backscatter lies
mostly between -25 dB (smooth bare soil, dry grass) and 0 dB (forest canopies, towns above
0 saturate, as they should); calm water falls below -25 and stays black. Cross-pol sits
about 6-10 dB lower, -32 dB (near the Sentinel-1 noise floor, ~-25 to -30 dB for VH) to
-5 dB (volume scattering of dense forest). The co/cross ratio is about 3-6 dB for forest
(volume scattering), 8-15 dB for bare soil and surface scattering, above 15 dB for urban
double bounce aligned with the track; 0..15 dB spreads these classes over the blue band.

**Generator composites** (the article's procedure): the co-pol and the cross-pol bands are
translated *separately* with one generator (``translate(..., bands=(co,))`` then
``bands=(cross,)``; a generator trained on another band only warns), then the two generated
RGB images are combined with this rule, chosen so that the result is directly comparable
band by band with the plain composite:

* ``L_co``, ``L_cross`` = luminance of each generated image on the unit scale
  (``0.299 R + 0.587 G + 0.114 B``, BT.601, :func:`sar2opt_geo.normalize.gray_from_rgb`);
* R = ``L_co``, G = ``L_cross``, B = ``L_co - L_cross``;
* each band stretched by its scene-wide 2-98 % percentiles (fixed dB ranges mean nothing
  for luminance; the percentile stretch is the same as the plain composite's
  ``stretch="percentile"``).

Outputs: Cloud Optimized GeoTIFF on the scene's own grid (same CRS, transform and size),
uint8 RGB with an internal nodata mask (a pixel is nodata where either polarisation is),
written through :mod:`sar2opt_geo.io` (atomic), plus an optional PNG quicklook. Work is
done window by window (:data:`BLOCK` pixels), never on the whole scene at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import BandError, ConfigError, GeoreferencingError, NoValidDataError
from ..io.outputs import check_outputs
from ..io.quicklook import quicklook_path
from ..preprocess.histogram import StreamingHistogram
from ..progress import ProgressFn
from ..radiometry import to_db

__all__ = [
    "BLOCK",
    "DEFAULT_DB_RANGES",
    "DEFAULT_PERCENTILES",
    "CompositeResult",
    "compare_composites",
    "dual_pol_bands",
    "generator_composite",
    "plain_composite",
    "plain_composite_bands",
    "stretch",
    "windows",
]

log = logging.getLogger(__name__)

#: Window side, pixels: memory is bounded by a few arrays of BLOCK x BLOCK floats.
BLOCK = 1024
#: Fixed stretch ranges in dB for (R = co-pol, G = cross-pol, B = co - cross); see the module docstring.
DEFAULT_DB_RANGES: tuple[tuple[float, float], ...] = ((-25.0, 0.0), (-32.0, -5.0), (0.0, 15.0))
#: Default percentile stretch, percent of valid pixels.
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)
#: Co-/cross-pol band pairs, in the order they are looked for.
POL_PAIRS: tuple[tuple[str, str], ...] = (("HH", "HV"), ("VV", "VH"))

_HIST_DB = (-100.0, 100.0, 20_000)  # lo, hi, bins: 0.01 dB bins
_HIST_UNIT = (-1.0, 1.0, 20_000)  # luminance and luminance differences: 1e-4 bins

Stretch = Literal["fixed", "percentile"]


@dataclass(frozen=True)
class CompositeResult:
    """What a composite run wrote and how it stretched its bands."""

    path: Path
    quicklook: Path | None
    kind: str  # "plain" or "generator:<model name>"
    bands: tuple[str, str]  # (co-pol, cross-pol) scene bands used
    stretch: str
    ranges: tuple[tuple[float, float], ...]  # per output band, in dB (plain) or unit luminance (generator)
    valid_pixels: int
    width: int
    height: int
    seconds: float
    translations: tuple[Path, ...] = ()  # generator composites: the kept per-band RGB translations
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# -- small pieces --------------------------------------------------------------------------------


def windows(height: int, width: int, block: int = BLOCK) -> Iterator[Window]:
    """Row-major windows of at most ``block`` x ``block`` pixels covering ``height`` x ``width``."""
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col_off=col, row_off=row, width=min(block, width - col), height=min(block, height - row))


def dual_pol_bands(scene: Any, co: str | None = None, cross: str | None = None) -> tuple[str, str]:
    """The scene's ``(co-pol, cross-pol)`` band names: HH/HV, else VV/VH, or the ones given.

    Raises :class:`BandError` naming the bands the scene has when no pair is found.
    """
    names = {b.upper(): b for b in scene.bands}
    if co and cross:
        return scene.band(co).name, scene.band(cross).name
    for c, x in POL_PAIRS:
        if c in names and x in names:
            return names[c], names[x]
    raise BandError(
        f"{scene.path}: a composite needs a dual-pol scene (HH+HV or VV+VH); it has {', '.join(scene.bands)}; "
        "pass --co and --cross (co=, cross=) band names"
    )


def plain_composite_bands(co_db: np.ndarray, cross_db: np.ndarray) -> np.ndarray:
    """``(3, h, w)`` dB values: co-pol, cross-pol, co - cross; NaN where either input is NaN."""
    co_db = np.asarray(co_db, dtype=np.float32)
    cross_db = np.asarray(cross_db, dtype=np.float32)
    out = np.stack([co_db, cross_db, co_db - cross_db])
    out[:, ~(np.isfinite(co_db) & np.isfinite(cross_db))] = np.nan
    return out


def stretch(values: np.ndarray, ranges: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Linear stretch of each band ``(lo, hi)`` -> [0, 1], clipped; NaN stays NaN (nodata)."""
    values = np.asarray(values, dtype=np.float32)
    out = np.empty_like(values)
    for i, (lo, hi) in enumerate(ranges):
        span = max(float(hi) - float(lo), 1e-12)
        out[i] = np.clip((values[i] - np.float32(lo)) / np.float32(span), 0.0, 1.0)
    return out


def _percentile_ranges(read3: Callable[[Window], np.ndarray], wins: list[Window], percentiles: tuple[float, float],
                       hist: tuple[float, float, int], progress: ProgressFn | None) -> tuple[tuple[float, float], ...]:
    """Per band ``(lo, hi)`` at ``percentiles`` of the valid pixels, from one streaming histogram per band."""
    hists = [StreamingHistogram(*hist) for _ in range(3)]
    for i, w in enumerate(wins):
        for h, band in zip(hists, read3(w)):
            h.add(band)
        if progress:
            progress(0.4 * (i + 1) / len(wins), "percentiles")
    width = (hist[1] - hist[0]) / hist[2]
    ranges = []
    for h in hists:
        try:
            lo, hi = (h.percentile(p, method="bin_centre") for p in percentiles)
        except NoValidDataError:
            raise NoValidDataError("composite: no valid pixel in the scene to compute a percentile stretch from") from None
        ranges.append((round(float(lo), 4), round(float(hi if hi > lo else lo + width), 4)))
    return tuple(ranges)


def _write_composite(
    read3: Callable[[Window], np.ndarray],
    *,
    dst: Path,
    grid: Any,
    ranges: tuple[tuple[float, float], ...] | None,
    percentiles: tuple[float, float],
    hist: tuple[float, float, int],
    tags: dict[str, Any],
    band_names: tuple[str, str, str],
    quicklook: bool,
    overwrite: bool,
    block: int,
    progress: ProgressFn | None,
) -> tuple[tuple[tuple[float, float], ...], int, Path | None]:
    """Two windowed passes (histograms if ``ranges`` is None, then stretch and write) -> COG + PNG."""
    from ..io import open_product

    wins = list(windows(grid.height, grid.width, block))
    if ranges is None:
        ranges = _percentile_ranges(read3, wins, percentiles, hist, progress)
    with open_product(dst, grid, 3, quicklook=quicklook, overwrite=overwrite) as product:
        for i, w in enumerate(wins):
            product.write(w, stretch(read3(w), ranges))
            if progress:
                progress(0.4 + 0.4 * (i + 1) / len(wins), "stretching")
        valid = product.finish(dtype="uint8", band_names=band_names, tags={**tags, "stretch_ranges": json.dumps(ranges)})
        if valid == 0:
            raise NoValidDataError(f"{dst}: the composite holds no valid pixel (both polarisations are nodata everywhere)")
    if progress:
        progress(1.0, "written")
    return ranges, valid, product.quicklook


def _map_grid(scene: Any) -> Any:
    """The scene's own map grid (:class:`~sar2opt_geo.preprocess.Grid`); GCP-only scenes are refused."""
    from ..preprocess import native_grid

    grid = native_grid(scene)
    if grid is None:
        raise GeoreferencingError(
            f"{scene.path}: composites are written on the scene's map grid, and this scene has only GCPs or no "
            "georeferencing; terrain-correct it first (e.g. sar2opt translate --t-srs, or SNAP/GDAL)"
        )
    return grid


def _open(src: Any, **kwargs: Any) -> tuple[Any, bool]:
    """``(scene, opened_here)``: a path is opened with :func:`sar2opt_geo.sensors.open_scene`."""
    if hasattr(src, "read") and hasattr(src, "bands"):
        return src, False
    from ..sensors import open_scene

    return open_scene(src, **kwargs), True


# -- plain composite -----------------------------------------------------------------------------


def plain_composite(
    src: str | os.PathLike | Any,
    dst: str | os.PathLike,
    *,
    stretch_mode: Stretch = "fixed",
    db_ranges: tuple[tuple[float, float], ...] = DEFAULT_DB_RANGES,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    co: str | None = None,
    cross: str | None = None,
    quicklook: bool = True,
    overwrite: bool = True,
    block: int = BLOCK,
    progress: ProgressFn | None = None,
    scene_options: dict[str, Any] | None = None,
) -> CompositeResult:
    """Write the plain dual-pol composite (R co, G cross, B co - cross, in dB) of ``src`` to ``dst``.

    Args:
        src: a scene path (anything :func:`sar2opt_geo.sensors.open_scene` reads) or an open Scene.
        dst: output GeoTIFF (COG, uint8 RGB + mask, scene grid); ``<stem>.png`` beside it if ``quicklook``.
        stretch_mode: ``"fixed"`` over ``db_ranges`` (dB) or ``"percentile"`` over the scene's valid pixels.
        db_ranges: ``(lo, hi)`` dB per band for ``"fixed"`` (default :data:`DEFAULT_DB_RANGES`).
        percentiles: ``(low, high)`` percent for ``"percentile"`` (default 2, 98).
        co, cross: band names (default: HH/HV, else VV/VH).
        block: window side in pixels.
        scene_options: keyword arguments of ``open_scene`` (e.g. ``calibration_factor_db``).
    """
    t0 = time.perf_counter()
    check_outputs([src], {"output": dst, "quicklook": quicklook_path(dst) if quicklook else None}, overwrite=overwrite)
    scene, opened = _open(src, **(scene_options or {}))
    try:
        grid = _map_grid(scene)
        co_b, cross_b = dual_pol_bands(scene, co, cross)

        def read3(w: Window) -> np.ndarray:
            return plain_composite_bands(to_db(scene.read(co_b, w)), to_db(scene.read(cross_b, w)))

        fixed = tuple((float(lo), float(hi)) for lo, hi in db_ranges) if stretch_mode == "fixed" else None
        if stretch_mode not in ("fixed", "percentile"):
            raise ConfigError(f"stretch must be 'fixed' or 'percentile', got {stretch_mode!r}")
        names = (f"{co_b} dB", f"{cross_b} dB", f"{co_b}-{cross_b} dB")
        tags = {
            "composite": "plain dual-pol: R = co-pol sigma0 dB, G = cross-pol sigma0 dB, B = co - cross dB",
            "source": str(scene.path),
            "stretch": stretch_mode if fixed else f"percentile {percentiles[0]}-{percentiles[1]} % of valid pixels",
        }
        ranges, valid, png = _write_composite(
            read3, dst=Path(dst), grid=grid,
            ranges=fixed, percentiles=percentiles, hist=_HIST_DB, tags=tags, band_names=names,
            quicklook=quicklook, overwrite=overwrite, block=block, progress=progress,
        )
        log.info("plain composite %s: %s, ranges %s dB", dst, stretch_mode, ranges)
        return CompositeResult(
            path=Path(dst), quicklook=png, kind="plain", bands=(co_b, cross_b), stretch=stretch_mode, ranges=ranges,
            valid_pixels=valid, width=scene.width, height=scene.height, seconds=time.perf_counter() - t0,
        )
    finally:
        if opened:
            scene.close()


# -- generator composite -------------------------------------------------------------------------


def _read_unit_rgb(ds: rasterio.io.DatasetReader, w: Window) -> np.ndarray:
    """``(3, h, w)`` unit values of a translate output (uint8 / 255 or float32), NaN where masked."""
    data = ds.read([1, 2, 3], window=w, out_dtype="float32")
    if ds.dtypes[0] == "uint8":
        data /= 255.0
    mask = ds.read_masks(1, window=w)
    data[:, mask == 0] = np.nan
    return data


def generator_composite(
    src: str | os.PathLike | Any,
    dst: str | os.PathLike,
    model: Any = None,
    *,
    co: str | None = None,
    cross: str | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    keep_translations: bool = False,
    quicklook: bool = True,
    overwrite: bool = True,
    block: int = BLOCK,
    progress: ProgressFn | None = None,
    **translate_options: Any,
) -> CompositeResult:
    """The article's composite: translate co- and cross-pol separately with ``model``, combine luminances.

    Rule (module docstring): R = L_co, G = L_cross, B = L_co - L_cross, each stretched by its
    scene-wide ``percentiles``. Both translations are resampled back to the scene grid
    (``match_input_grid=True``), so the composite shares the plain composite's grid.

    Args:
        src: a scene path (a path is needed: ``translate`` opens it) with two polarisations.
        dst: output GeoTIFF; ``<stem>.png`` beside it if ``quicklook``.
        model: what ``sar2opt_geo.translate`` accepts: a checkpoint path, ``(module, card)`` or None.
        keep_translations: keep ``<stem>_<co>_rgb.tif`` and ``<stem>_<cross>_rgb.tif`` beside ``dst``.
        translate_options: more :class:`sar2opt_geo.translation.api.TranslateOptions` fields (tile_size, device, seed...);
            ``keep_structure`` is off here unless given (the composite compares the generator's own output).
    """
    from ..io import work_dir
    from ..normalize import gray_from_rgb
    from ..translation.api import translate

    t0 = time.perf_counter()
    dst = Path(dst)
    check_outputs([src], {"output": dst, "quicklook": quicklook_path(dst) if quicklook else None}, overwrite=overwrite)
    scene, opened = _open(src)
    try:
        grid = _map_grid(scene)
        co_b, cross_b = dual_pol_bands(scene, co, cross)
        width, height, path = grid.width, grid.height, scene.path
    finally:
        if opened:
            scene.close()
    if keep_translations:
        check_outputs([src], {"output": dst, "quicklook": quicklook_path(dst) if quicklook else None,
                              **{f"{b} translation": dst.with_name(f"{dst.stem}_{b.lower()}_rgb.tif")
                                 for b in (co_b, cross_b)}}, overwrite=overwrite)
    src_arg = src if opened else path
    # the article's composite is made of the generator's own luminances: the SAR detail that translate adds
    # by default (keep_structure) would mix the plain composite into it; keep_structure=True asks for it
    opts = {"match_input_grid": True, "dtype": "float32", "quicklook": False, "keep_structure": False,
            **translate_options}
    warnings: list[str] = []
    kept: list[Path] = []
    with work_dir(dst) as tmp_dir:
        outs = []
        for k, band in enumerate((co_b, cross_b)):
            out = (dst.with_name(f"{dst.stem}_{band.lower()}_rgb.tif") if keep_translations
                   else tmp_dir / f"{band.lower()}_rgb.tif")
            sub: ProgressFn | None = (
                (lambda f, m, k=k, band=band: progress(0.3 * k + 0.3 * f, f"translate {band}: {m}")) if progress else None
            )
            res = translate(src_arg, out, model, progress=sub, bands=(band,), **opts)
            warnings += [w for w in res.warnings if w not in warnings]
            outs.append(out)
            model_name = res.model_name
        with rasterio.open(outs[0]) as a, rasterio.open(outs[1]) as b:
            if (a.width, a.height) != (width, height) or (b.width, b.height) != (width, height):
                raise GeoreferencingError(
                    f"{dst}: translations came back on {a.width}x{a.height} / {b.width}x{b.height}, not the scene grid "
                    f"{width}x{height}; translate must honour match_input_grid=True"
                )

            def read3(w: Window) -> np.ndarray:
                la = gray_from_rgb(*_read_unit_rgb(a, w))
                lb = gray_from_rgb(*_read_unit_rgb(b, w))
                return np.stack([la, lb, la - lb])

            tags = {
                "composite": f"generator {model_name}: R = L({co_b} translated), G = L({cross_b} translated), "
                "B = L_co - L_cross; L = BT.601 luminance of the unit RGB",
                "source": str(path),
                "stretch": f"percentile {percentiles[0]}-{percentiles[1]} % of valid pixels, per band",
            }
            sub = (lambda f, m: progress(0.6 + 0.4 * f, m)) if progress else None
            ranges, valid, png = _write_composite(
                read3, dst=dst, grid=grid, ranges=None,
                percentiles=percentiles, hist=_HIST_UNIT, tags=tags,
                band_names=(f"L {co_b}", f"L {cross_b}", f"L {co_b} - L {cross_b}"),
                quicklook=quicklook, overwrite=overwrite, block=block, progress=sub,
            )
        if keep_translations:
            kept = outs
    log.info("generator composite %s (%s): ranges %s", dst, model_name, ranges)
    return CompositeResult(
        path=dst, quicklook=png, kind=f"generator:{model_name}", bands=(co_b, cross_b), stretch="percentile",
        ranges=ranges, valid_pixels=valid, width=width, height=height, seconds=time.perf_counter() - t0,
        translations=tuple(kept), warnings=tuple(warnings),
    )


# -- comparison ----------------------------------------------------------------------------------


def compare_composites(
    a: str | os.PathLike, b: str | os.PathLike, block: int = 256, min_valid: float = 0.99
) -> list[dict[str, float]]:
    """How much of composite ``b``'s structure ``a`` keeps, per band: SSIM and Pearson r.

    Both files must share one grid (as composites of one scene do). Values are compared on
    the unit scale (uint8 / 255) over pixels valid in both. Pearson r uses every valid pixel
    (streaming sums). SSIM (:func:`sar2opt_geo.training.metrics.ssim`, 11 x 11 Gaussian,
    sigma 1.5) is computed per ``block`` x ``block`` window holding at least ``min_valid`` of
    valid pixels (the few invalid ones filled with the window's valid mean in both images)
    and averaged weighted by valid pixels. Returns one dict per band:
    ``{"ssim", "pearson", "pixels"}``.
    """
    import torch

    from ..training.metrics import ssim

    with rasterio.open(a) as da, rasterio.open(b) as db:
        if (da.width, da.height) != (db.width, db.height) or da.transform != db.transform:
            raise GeoreferencingError(f"{a} and {b}: composites are not on one grid; compare composites of one scene")
        n = da.count
        sums = np.zeros((n, 5), dtype=np.float64)  # x, y, xx, yy, xy
        count = np.zeros(n, dtype=np.int64)
        ssim_sum, ssim_w = np.zeros(n), np.zeros(n)
        for w in windows(da.height, da.width, block):
            xa = da.read(window=w, out_dtype="float32") / 255.0
            xb = db.read(window=w, out_dtype="float32") / 255.0
            valid = (da.read_masks(1, window=w) > 0) & (db.read_masks(1, window=w) > 0)
            nv = int(valid.sum())
            if nv == 0:
                continue
            for i in range(n):
                x, y = xa[i][valid].astype(np.float64), xb[i][valid].astype(np.float64)
                sums[i] += (x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
                count[i] += nv
            if nv >= min_valid * valid.size and min(valid.shape) > 11:
                fa, fb = xa.copy(), xb.copy()
                for i in range(n):
                    fa[i][~valid] = fa[i][valid].mean()
                    fb[i][~valid] = fb[i][valid].mean()
                s = ssim(torch.from_numpy(fa[:, None]), torch.from_numpy(fb[:, None]))  # bands as a batch: (n,)
                ssim_sum += s.double().numpy() * nv
                ssim_w += nv
    out = []
    for i in range(n):
        c = max(int(count[i]), 1)
        sx, sy, sxx, syy, sxy = sums[i] / c
        cov, vx, vy = sxy - sx * sy, sxx - sx * sx, syy - sy * sy
        r = cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else float("nan")
        out.append({
            "ssim": float(ssim_sum[i] / ssim_w[i]) if ssim_w[i] else float("nan"),
            "pearson": float(r),
            "pixels": int(count[i]),
        })
    return out
