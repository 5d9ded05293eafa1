"""``sar2opt composite INPUT OUTPUT``: pseudo-colour composite of a dual-pol scene, plain or through a
generator (thin shell over :mod:`sar2opt_geo.experiment.composite`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import (
    add_device,
    add_model,
    add_progress,
    add_tiling,
    add_verbosity,
    emit_raster_done,
    make_progress,
)

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
plain composite (default):
  R = co-pol sigma0 dB (HH or VV), G = cross-pol dB (HV or VH), B = co - cross dB.
  --stretch fixed: R -25..0 dB, G -32..-5 dB, B 0..15 dB (override with --range-r/g/b);
  --stretch percentile: 2..98 % of the scene's valid pixels per band (--percentiles LO HI),
  computed in a streaming pass.

generator composite (--model PATH, or --model sar / --model gray for the bundled ones):
  the article's procedure: co-pol and cross-pol are translated separately with the model
  (a band mismatch with the model card only warns), then R = L(co), G = L(cross),
  B = L(co) - L(cross), L = BT.601 luminance of each generated RGB, each band stretched by
  its scene 2..98 % percentiles.

output: Cloud Optimized GeoTIFF on the scene's own grid, uint8 RGB with a nodata mask
(nodata where either polarisation is), and OUTPUT's .png quicklook unless --no-quicklook.
Scenes with only GCPs (Sentinel-1 GRD SAFE) must be terrain-corrected first.

examples:
  sar2opt composite palsar2_L2.1_dir/ palsar_plain.tif
  sar2opt composite s1_vv_vh_db.tif s1_pct.tif --stretch percentile
  sar2opt composite s1_vv_vh_db.tif s1_gray_gen.tif --model gray --keep-translations
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "composite",
        help="pseudo-colour composite of a dual-pol SAR scene (plain, or through a generator as in the article)",
        description="Pseudo-colour RGB composite of a dual-polarisation SAR scene, georeferenced on the scene grid.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="dual-pol scene (PALSAR-2 L2.1 folder, Sentinel-1 VV+VH GeoTIFF, ...)")
    p.add_argument("output", metavar="OUTPUT", type=Path, help="output GeoTIFF")
    add_model(p, "makes the generator composite; default: plain composite")
    p.add_argument("--co", metavar="BAND", help="co-pol band (default: HH, else VV)")
    p.add_argument("--cross", metavar="BAND", help="cross-pol band (default: HV, else VH)")
    g = p.add_argument_group("stretch (plain composite)")
    g.add_argument("--stretch", choices=("fixed", "percentile"), default="fixed",
                   help="fixed dB ranges or scene percentiles (default: fixed)")
    g.add_argument("--range-r", type=float, nargs=2, default=(-25.0, 0.0), metavar=("LO", "HI"),
                   help="co-pol dB range for --stretch fixed (default: -25 0)")
    g.add_argument("--range-g", type=float, nargs=2, default=(-32.0, -5.0), metavar=("LO", "HI"),
                   help="cross-pol dB range (default: -32 -5)")
    g.add_argument("--range-b", type=float, nargs=2, default=(0.0, 15.0), metavar=("LO", "HI"),
                   help="co - cross dB range (default: 0 15)")
    g.add_argument("--percentiles", type=float, nargs=2, default=(2.0, 98.0), metavar=("LO", "HI"),
                   help="percent of valid pixels for percentile stretches (default: 2 98)")
    g = p.add_argument_group("generator composite")
    g.add_argument("--keep-translations", action="store_true",
                   help="keep <OUTPUT stem>_<band>_rgb.tif, the two per-band translations")
    add_tiling(g)
    g.add_argument("--seed", type=int, default=0, metavar="N", help="seed (default 0)")
    p.add_argument("--calibration-factor", type=float, metavar="DB", help="PALSAR-2 calibration factor override, dB")
    p.add_argument("--quicklook", action=argparse.BooleanOptionalAction, default=True,
                   help="write <OUTPUT stem>.png (default: on)")
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=True,
                   help="replace an existing OUTPUT (default: on)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..sensors.open import check_exists

    check_exists(args.input)  # before the heavy imports and the progress bar
    from ..experiment import composite

    progress, close = make_progress(args.progress, "composite")
    try:
        if args.model is None:
            result = composite.plain_composite(
                args.input, args.output, stretch_mode=args.stretch,
                db_ranges=(tuple(args.range_r), tuple(args.range_g), tuple(args.range_b)),
                percentiles=tuple(args.percentiles), co=args.co, cross=args.cross, quicklook=args.quicklook,
                overwrite=args.overwrite, progress=progress,
                scene_options={"calibration_factor_db": args.calibration_factor} if args.calibration_factor else None,
            )
        else:
            extra = {"calibration_factor_db": args.calibration_factor} if args.calibration_factor else {}
            result = composite.generator_composite(
                args.input, args.output, args.model, co=args.co, cross=args.cross,
                percentiles=tuple(args.percentiles), keep_translations=args.keep_translations,
                quicklook=args.quicklook, overwrite=args.overwrite, progress=progress, tile_size=args.tile,
                overlap=args.overlap, max_memory_mb=args.max_memory_mb, seed=args.seed, device=args.device, **extra,
            )
    finally:
        close()
    if args.progress == "json":
        emit_raster_done(result)
    else:
        ranges = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in result.ranges)
        print(f"{result.path}  ({result.kind}, {result.bands[0]}/{result.bands[1]}, stretch {result.stretch}: {ranges})")
        if result.quicklook is not None:
            print(result.quicklook)
    return 0
