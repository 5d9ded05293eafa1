"""``sar2opt translate INPUT [OUTPUT]``: one scene -> a georeferenced RGB Cloud Optimized GeoTIFF."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from ._common import (
    add_model,
    add_progress,
    add_verbosity,
    emit_json,
    emit_raster_done,
    make_progress,
)
from ._options import add_translate_options, translate_options_from_args

__all__ = ["add_parser", "default_output", "options_from_args", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
units and conventions:
  --tile/--overlap are pixels of the model grid (multiples of the model's downsampling);
  --max-memory-mb is MB of peak memory; --tr is in units of the output CRS (metres for
  UTM, degrees for EPSG:4326); --calibration-factor in dB.

tiling:
  By default the tiling comes from the model and the memory budget: the margin is the
  model's receptive field (tiles are exact: the result equals one whole-image pass),
  and the tile is the size that computes least while peak memory stays under
  --max-memory-mb (default 1500). Explicit --tile/--overlap/--batch win.

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
  sar2opt translate scene.tif out.tif --samples 8   # mean of 8 stochastic runs + out_spread.tif
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
    p.add_argument("paths", metavar="INPUT [INPUT ...] [OUTPUT]", nargs="+",
                   help="scene file, product folder, URL, or single-polarisation files (e.g. x_VV.tif x_VH.tif, "
                        "a folder or a quoted glob of them), then the output GeoTIFF (default: "
                        "./<INPUT name>_rgb.tif)")
    add_model(p, "default: the bundled SAR model for SAR scenes, the bundled gray model for optical scenes")
    add_translate_options(p)
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
    """The :class:`~sar2opt_geo.options.TranslateOptions` the flags ask for."""
    return translate_options_from_args(args)


def split_paths(paths: list[str]) -> tuple[str | list[str], Path | None]:
    """``(input, output)`` from the positional paths: ``IN``, ``IN OUT``, ``IN1 IN2 ... OUT``, or
    ``IN1 IN2`` when both are existing files of two different polarisations (no OUTPUT given)."""
    from ..sensors._names import find_polarisation

    def pol(p: str) -> str | None:
        return find_polarisation(Path(p).stem.lower())

    if len(paths) == 1:
        return paths[0], None
    if len(paths) == 2 and all(Path(p).is_file() for p in paths) and pol(paths[0]) and pol(paths[1]) \
            and pol(paths[0]) != pol(paths[1]):
        return list(paths), None
    inputs = paths[:-1]
    return (inputs[0] if len(inputs) == 1 else list(inputs)), Path(paths[-1])


def run(args: argparse.Namespace) -> int:
    from ..sensors.open import check_exists

    args.input, args.output = split_paths(args.paths)
    for path in (args.input if isinstance(args.input, list) else [args.input]):
        if not any(c in str(path) for c in "*?["):  # a glob is expanded when the scene is opened
            check_exists(path)  # a missing input fails at once, before torch is imported or a bar is drawn
    from ..translation.api import resolve_device, translate

    if isinstance(args.input, list):  # x_VV.tif x_VH.tif -> ./x_rgb.tif
        stem = re.sub(r"[_.-]?(vv|vh|hh|hv)$", "", Path(args.input[0]).stem, flags=re.IGNORECASE)
        output = args.output or default_output(stem or Path(args.input[0]).stem)
    else:
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
        if result.spread is not None:
            print(f"{result.spread}  (spread of {options.samples} stochastic runs)")
    return 0


def _usage_error(args: argparse.Namespace, message: str) -> int:
    import sys

    if args.progress == "json":
        emit_json({"event": "error", "message": message})
    print(f"sar2opt translate: error: {message}", file=sys.stderr)
    return 2
