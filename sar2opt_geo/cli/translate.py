"""``sar2opt translate INPUT [OUTPUT]``: one scene -> a georeferenced RGB Cloud Optimized GeoTIFF."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ._common import (
    add_device,
    add_progress,
    add_tiling,
    add_verbosity,
    emit_json,
    emit_raster_done,
    make_progress,
)

__all__ = ["add_parser", "default_output", "options_from_args", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
units and conventions:
  --tile/--overlap are pixels of the model grid (multiples of 16); --tr is in units of
  the output CRS (metres for UTM, degrees for EPSG:4326); --calibration-factor in dB.

grid and CRS:
  By default the output is on the model grid: the model's pixel spacing (10 m for the
  bundled models, from the checkpoint's card) in the input's projected CRS, covering
  the input's bounds; lon/lat and GCP-georeferenced inputs (Sentinel-1 GRD SAFE) go to
  the UTM zone of the scene centre. Resampling happens on linear power, not dB.
  --match-input-grid resamples the result back onto the input's own pixel grid;
  --t-srs/--tr reproject it instead (--tr alone keeps the CRS).

input domain:
  Normalisation (dB clip or scene percentile), bands and pixel spacing come from the
  model card, not from flags. A sensor/band mismatch with the card (a VH model on HV,
  a C-band model on L-band) is a warning recorded in the output's tags; --strict refuses.

output:
  uint8 RGB (round(255*(y+1)/2)) with an internal nodata mask, or float32 ((y+1)/2, NaN
  nodata); tiled 512, DEFLATE, internal overviews (COG layout); nodata in -> nodata out.
  Written under a temporary name and renamed at the end: on error or Ctrl-C nothing is
  left at OUTPUT. Default OUTPUT: ./<INPUT name>_rgb.tif; --quicklook adds <OUTPUT stem>.png.

examples:
  sar2opt translate S1A_IW_GRDH_...SAFE s1_rgb.tif --quicklook
  sar2opt translate palsar2_dir/ out.tif --bands HV --calibration-factor -83
  sar2opt translate scene.tif out.tif --t-srs EPSG:4326 --dtype float32 --progress json
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "translate",
        help="translate one SAR (or optical) scene into a georeferenced RGB GeoTIFF",
        description=(
            "Translate INPUT (GeoTIFF, Sentinel-1 GRD SAFE folder/zip, PALSAR-2 L2.1 product, Sentinel-2 SAFE, "
            "any raster GDAL reads) into an optical-looking RGB Cloud Optimized GeoTIFF with a pix2pix generator, "
            "keeping CRS, bounds and nodata."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="scene file or product folder")
    p.add_argument("output", metavar="OUTPUT", nargs="?", type=Path,
                   help="output GeoTIFF (default: ./<INPUT name>_rgb.tif)")
    p.add_argument("--model", metavar="PATH",
                   help="generator checkpoint (.safetensors with a model card); default: the bundled SAR model "
                        "for SAR scenes, the bundled gray model for optical scenes")
    p.add_argument("--bands", metavar="B[,B]",
                   help="scene bands fed to the model, comma-separated names (HH, VH, red ...) or 1-based "
                        "indices (default: the card's bands; a single-pol scene's only band)")
    g = p.add_argument_group("tiling")
    add_tiling(g)
    g.add_argument("--batch", type=int, default=4, metavar="N", help="tiles per forward pass (default 4)")
    g = p.add_argument_group("output grid")
    g.add_argument("--t-srs", metavar="CRS", help="reproject the result to this CRS, e.g. EPSG:4326 (default: model grid)")
    g.add_argument("--tr", type=float, metavar="RES", help="output resolution in units of the output CRS")
    g.add_argument("--match-input-grid", action="store_true",
                   help="resample the result back onto the input's own grid (map-projected inputs only)")
    g.add_argument("--resampling", default="bilinear", metavar="NAME",
                   help="GDAL resampling for upsampling the input and reprojecting the output (default bilinear; "
                        "downsampling the input always uses average)")
    g.add_argument("--bounds", type=float, nargs=4, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
                   help="write only this rectangle (data around it is read as context)")
    g.add_argument("--bounds-crs", metavar="CRS", help="CRS of --bounds (default: --t-srs if given, else the input's)")
    g = p.add_argument_group("radiometry")
    g.add_argument("--speckle", choices=("none", "lee"), default="none",
                   help="speckle filter on linear power before translation (default none)")
    g.add_argument("--speckle-window", type=int, default=7, metavar="PX", help="Lee window in input pixels, odd (default 7)")
    g.add_argument("--calibration-factor", type=float, metavar="DB",
                   help="PALSAR-2 calibration factor in dB (default: from the product's LED file, else -83.0)")
    g.add_argument("--thermal-noise-removal", action=argparse.BooleanOptionalAction, default=True,
                   help="Sentinel-1 SAFE: subtract the thermal noise LUTs (default: on)")
    g.add_argument("--strict", action="store_true", help="refuse a sensor/band mismatch with the model card")
    g = p.add_argument_group("output")
    g.add_argument("--dtype", choices=("uint8", "float32"), default="uint8",
                   help="uint8 RGB with nodata mask (default) or float32 in [0, 1] with NaN nodata")
    g.add_argument("--quicklook", action="store_true", help="also write <OUTPUT stem>.png (<= 1024 px, transparent nodata)")
    g.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=True,
                   help="replace an existing OUTPUT (default: yes; --no-overwrite refuses)")
    g.add_argument("--stochastic", action="store_true", help="keep dropout on at inference (the article's mode)")
    g.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the dropout masks with --stochastic (default 0)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def default_output(input_path: str) -> Path:
    """``./<INPUT name without extension>_rgb.tif`` (a SAFE folder keeps its product name)."""
    name = Path(str(input_path).rstrip("/\\")).name
    for suffix in (".zip", ".SAFE", ".safe", ".tiff", ".tif", ".TIF", ".TIFF", ".vrt", ".img"):
        name = name.removesuffix(suffix)
    return Path(f"{name or 'output'}_rgb.tif")


def options_from_args(args: argparse.Namespace):
    """The :class:`~sar2opt_geo.api.TranslateOptions` the flags ask for."""
    from ..api import TranslateOptions

    kw: dict[str, Any] = {
        "tile_size": args.tile, "overlap": args.overlap, "batch_size": args.batch, "device": args.device,
        "dst_crs": args.t_srs, "dst_res": args.tr, "match_input_grid": args.match_input_grid, "resampling": args.resampling,
        "dtype": args.dtype, "speckle_filter": args.speckle, "speckle_window": args.speckle_window,
        "calibration_factor_db": args.calibration_factor, "thermal_noise_removal": args.thermal_noise_removal,
        "stochastic": args.stochastic, "seed": args.seed, "strict": args.strict, "quicklook": args.quicklook,
        "overwrite": args.overwrite,
    }
    if args.bands:
        kw["bands"] = tuple(b.strip() for b in args.bands.split(",") if b.strip())
    if args.bounds:
        kw["bounds"] = tuple(args.bounds)
        kw["bounds_crs"] = args.bounds_crs
    return TranslateOptions(**kw)


def run(args: argparse.Namespace) -> int:
    from ..api import resolve_device, translate

    output = args.output or default_output(args.input)
    try:
        options = options_from_args(args)
        resolve_device(options.device)
    except ValueError as exc:  # a bad flag value: one line, exit status 2 like argparse
        return _usage_error(args, str(exc))
    progress, close = make_progress(args.progress, "translate")
    try:
        result = translate(args.input, output, args.model, options, progress=progress)
    finally:
        close()
    if args.progress == "json":
        emit_raster_done(result)
    else:
        print(f"{result.path}  ({result.width} x {result.height} px, {result.crs}, model {result.model_name})")
        if result.quicklook is not None:
            print(result.quicklook)
    return 0


def _usage_error(args: argparse.Namespace, message: str) -> int:
    import sys

    if args.progress == "json":
        emit_json({"event": "error", "message": message})
    print(f"sar2opt translate: error: {message}", file=sys.stderr)
    return 2
