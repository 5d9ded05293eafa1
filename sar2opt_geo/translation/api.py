"""The one public entry point: :func:`translate` a SAR (or optical) scene into a georeferenced RGB GeoTIFF.

The CLI (``sar2opt translate``), the QGIS plugin and the AOI batch runner are thin shells
over this function. It is a short pipeline of plain functions around frozen values:

1. **open** the scene (:func:`sar2opt_geo.sensors.open_scene`): calibrated, lazily read;
2. **load** the model (:func:`sar2opt_geo.models.loading.load`: a checkpoint path, a bundled
   short name, the bundled default for the scene type, or an already loaded model) ->
   :class:`~sar2opt_geo.models.loading.LoadedModel`;
3. **plan** (:func:`sar2opt_geo.translation.plan.plan_translation`) -> :class:`~sar2opt_geo.translation.plan.Plan`:
   bands from the card, the model grid (the card's pixel spacing in the scene's projected CRS,
   or the UTM zone of the scene centre), the crop and its context, the AOI mask, the final
   grid, the tiling and the normaliser with its scene statistics;
4. **run** the tiled, blended inference (:func:`sar2opt_geo.engine.run_tiled`) on calibrated
   values resampled in linear power (:func:`sar2opt_geo.preprocess.open_linear_source`);
5. **write** the product (:func:`sar2opt_geo.io.open_product`): scratch raster -> COG with
   mask, band names and provenance tags (reprojected onto the final grid if needed), optional
   PNG quicklook, under temporary names renamed at the very end (nothing at ``dst`` on error
   or cancel).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..options import TranslateOptions
from ..progress import CancelFn, ProgressFn
from ..progress import sub_range as _sub
from .pipeline import Result, encode_product, make_result, run_inference

__all__ = ["Result", "TranslateOptions", "resolve_device", "translate"]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU, else ``"cpu"``; others are checked and returned (a string)."""
    from ..engine.devices import resolve_device as _resolve

    return str(_resolve(device))


def translate(
    src: str | os.PathLike | list[str | os.PathLike],
    dst: str | os.PathLike,
    model: Any = None,
    options: TranslateOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    **overrides: Any,
) -> Result:
    """Translate the scene ``src`` into an RGB Cloud Optimized GeoTIFF at ``dst``.

    Args:
        src: scene path (GeoTIFF, Sentinel-1 SAFE folder/zip, PALSAR-2 product or mosaic tile, URL ...),
            or a list of single-polarisation files (``[".../x_VV.tif", ".../x_VH.tif"]``).
        dst: output GeoTIFF path; ``<dst stem>.png`` too with ``quicklook``.
        model: checkpoint path, bundled short name (``"sar"``, ``"gray"``), None (bundled
            default: ``"sar"`` for SAR scenes, ``"gray"`` for optical), or an already loaded
            :class:`~sar2opt_geo.models.loading.LoadedModel` (or ``(module, card[, hash])``).
        options: :class:`TranslateOptions`; ``overrides`` replace single fields of it.
        progress: ``progress(fraction, message)``, fraction in [0, 1].
        cancel: polled regularly; returning True raises :class:`~sar2opt_geo.errors.CancelledError`.

    Returns:
        :class:`Result`. Sensor/band mismatch warnings are logged, returned and tagged.

    Raises:
        sar2opt_geo.errors.Sar2OptError subclasses with one-line messages; nothing is left at
        ``dst`` (or the quicklook path) when anything fails or is cancelled.
    """
    from ..engine.backends import resolve_precision
    from ..io import check_outputs, open_product, quicklook_path
    from ..models.loading import load
    from ..sensors import open_scene
    from .plan import plan_translation
    from .sampling import open_samples, spread_path

    opts = options or TranslateOptions()
    if overrides:
        opts = opts.replace(**overrides)
    t0 = time.perf_counter()
    dst = Path(dst)
    device = resolve_device(opts.device)
    opts = opts.replace(precision=resolve_precision(opts.precision, device, opts.backend))  # 'auto' -> fp32 / bf16
    spread_dst = spread_path(dst) if opts.samples > 1 else None
    check_outputs(list(src) if isinstance(src, (list, tuple)) else [src], {"output": dst, "quicklook": quicklook_path(dst) if opts.quicklook else None,
                          "spread layer": spread_dst}, overwrite=opts.overwrite)  # fail before any work
    with open_scene(src, bands=list(opts.bands) if opts.bands else None,
                    calibration_factor_db=opts.calibration_factor_db, sensor=opts.sensor, units=opts.input_units,
                    thermal_noise_removal=opts.thermal_noise_removal) as scene:
        loaded = load(model, device, kind="sar" if scene.is_sar else "gray")
        plan = plan_translation(scene, loaded, opts, device=device, progress=_sub(progress, 0.0, 0.05), cancel=cancel)
        with open_product(dst, plan.out_grid, loaded.card.out_channels, clip=plan.aoi, quicklook=opts.quicklook,
                          overwrite=opts.overwrite) as product, \
                open_samples(dst, plan.out_grid, loaded.card.out_channels, opts.samples, clip=plan.aoi,
                             overwrite=opts.overwrite) as samples:
            stats, resampling_note = run_inference(scene, loaded, plan, opts, product, device, progress=progress,
                                                   cancel=cancel, samples=samples)
            encode_product(scene, loaded, plan, opts, product, product.valid_pixels, resampling_note, progress=progress,
                           cancel=cancel, samples=samples)
    return make_result(dst, product, plan, loaded, stats.tiles, stats.tiles_skipped, t0, spread=spread_dst)
