"""``sar2opt pairs SAR OPTICAL OUT``: co-registered training pairs from two georeferenced scenes
(thin shell over :func:`sar2opt_geo.data.make_pairs.make_pairs`)."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from ._common import add_progress, add_verbosity, emit_json, make_progress

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
Build training pairs for `sar2opt train` from a SAR scene and an optical scene of the same
area: both are read calibrated (SAR: linear power sigma0; optical: reflectance), put on one
grid, cut into tiles, filtered for nodata and cloud, and written as the `pairs` layout
(OUT/sar/<name>.tif, OUT/opt/<name>.tif, OUT/metadata.json).
"""

_EPILOG = """\
grid:
  The SAR scene's model grid: its projected CRS (lon/lat and GCP scenes such as Sentinel-1
  GRD SAFE: the UTM zone of the scene centre) at --pixel-spacing metres, cropped to the
  overlap with the optical scene. SAR is resampled in linear power (average when
  downsampling), the optical scene with GDAL's warper (same rule), an SCL band with
  nearest. Tiles of --tile px every --stride px, on multiples of the stride of that grid.

radiometry (the input domain of --model's card, default the bundled 'sar' model):
  percentile card: SAR uint8 = round(255 * clip(sigma0 / scene p99, 0, 1)), the scene p99
  computed exactly as `sar2opt translate` does; optical uint8 = each band / its p99 over
  the clear, valid pixels of the overlap, clipped, x 255.  dB card: SAR float32 dB and
  optical uint16 reflectance x 10000.  metadata.json records the pairs' input domain
  (sensor, bands, frequency band, spacing), which `sar2opt train` writes into the card.

tiles kept:
  at most --max-nodata of a tile invalid on either side, at most --max-cloud cloudy:
  Sentinel-2 SCL classes 1, 3, 8, 9, 10 (L2A SAFE, or --scl), else a brightness/whiteness
  test on reflectance (mean visible > 0.3 and Fmask whiteness < 0.7, or a band >= 1.0).

dates:
  from the readers' metadata (S1/S2 SAFE, PALSAR-2 summary), acquisition tags, or the file
  name (..._20170617T064724_...); --sar-date/--optical-date override; --max-days refuses
  scenes further apart (and scenes whose date is unknown).

examples:
  sar2opt pairs S1A_IW_GRDH_...SAFE S2B_MSIL2A_...SAFE pairs/ --max-days 6
  sar2opt pairs palsar2_L2.1_dir/ S2A_MSIL1C_...SAFE pairs/ --sar-bands HV --append
  sar2opt train pairs/ runs/palsar2 --init sar --epochs 5
"""


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction within 0..1, got {text!r}")
    return v


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pairs", help="build co-registered training pairs from a SAR scene and an optical scene",
        description=DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sar", metavar="SAR_SCENE", help="SAR scene (Sentinel-1 SAFE/GeoTIFF, PALSAR-2 L2.1, any GDAL raster)")
    p.add_argument("optical", metavar="OPTICAL_SCENE", help="optical scene (Sentinel-2 SAFE/GeoTIFF, any GDAL raster)")
    p.add_argument("out", metavar="OUT_DIR", help="dataset folder (new or empty; an existing one with --append)")
    g = p.add_argument_group("grid and tiles")
    g.add_argument("--pixel-spacing", type=float, default=None, metavar="M",
                   help="ground pixel spacing of the pairs in metres (default: the model card's, 10 m)")
    g.add_argument("--tile", type=int, default=256, metavar="PX", help="tile side in pixels, multiple of 16 (default 256)")
    g.add_argument("--stride", type=int, default=None, metavar="PX",
                   help="pixels between tile origins (default: --tile, tiles do not overlap)")
    b = p.add_argument_group("bands and radiometry")
    b.add_argument("--sar-bands", default=None, metavar="B[,B]",
                   help="SAR bands to store, names (HH, HV, VH ...) or 1-based indices (default: the band(s) "
                        "translate feeds --model, e.g. VH, or the cross-pol HV of a PALSAR-2 scene)")
    b.add_argument("--optical-bands", default="red,green,blue", metavar="R,G,B",
                   help="optical red, green, blue: names (red, B04 ...) or 1-based indices, e.g. 4,3,2 "
                        "(default red,green,blue)")
    b.add_argument("--model", default="sar", metavar="PATH|sar",
                   help="model card whose input domain the pairs are stored in (default: the bundled 'sar')")
    b.add_argument("--calibration-factor", type=float, default=None, metavar="DB",
                   help="PALSAR-2 calibration factor in dB (default: from the LED file, else -83.0)")
    b.add_argument("--thermal-noise-removal", action=argparse.BooleanOptionalAction, default=True,
                   help="Sentinel-1 SAFE: subtract the thermal noise LUTs (default: on)")
    b.add_argument("--resampling", default="bilinear", metavar="NAME",
                   help="GDAL resampling when upsampling (downsampling always averages) (default bilinear)")
    f = p.add_argument_group("filters")
    f.add_argument("--max-nodata", type=_fraction, default=0.0, metavar="F",
                   help="largest fraction of a tile that may be nodata on either side (default 0)")
    f.add_argument("--max-cloud", type=_fraction, default=0.01, metavar="F",
                   help="largest fraction of a tile that may be cloud, shadow or saturated (default 0.01)")
    f.add_argument("--scl", default=None, metavar="PATH",
                   help="Sentinel-2 scene classification raster (default: the L2A SAFE's SCL_20m, if any)")
    f.add_argument("--max-days", type=float, default=None, metavar="N",
                   help="refuse scenes acquired more than N days apart (default: no limit)")
    f.add_argument("--sar-date", default=None, metavar="DATE", help="acquisition date of the SAR scene (YYYY-MM-DD)")
    f.add_argument("--optical-date", default=None, metavar="DATE",
                   help="acquisition date of the optical scene (YYYY-MM-DD)")
    p.add_argument("--append", action="store_true", help="add this scene pair to the existing dataset OUT_DIR")
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


_NOT_RECORDED = {"func", "command", "verbose", "quiet", "progress", "sar", "optical", "out"}


def command_line(args: argparse.Namespace) -> str:
    """The ``sar2opt pairs`` command for ``args``, every option spelled out (recorded in metadata.json)."""
    parts = ["sar2opt", "pairs", args.sar, args.optical, args.out]
    for dest, value in vars(args).items():
        if dest in _NOT_RECORDED or value is None or value is False:
            continue
        flag = "--" + dest.replace("_", "-")
        flag = {"--calibration-factor-db": "--calibration-factor"}.get(flag, flag)
        if dest == "thermal_noise_removal":
            continue  # on by default; off is recorded below
        if value is True:
            parts.append(flag)
        else:
            parts += [flag, str(value)]
    if not args.thermal_noise_removal:
        parts.append("--no-thermal-noise-removal")
    return " ".join(shlex.quote(str(p)) for p in parts)


def run(args: argparse.Namespace) -> int:
    from ..sensors.open import check_exists

    check_exists(args.sar)
    check_exists(args.optical)
    from ..data.make_pairs import PairsOptions, make_pairs

    try:
        opts = PairsOptions(
            pixel_spacing_m=args.pixel_spacing, tile_size=args.tile, stride=args.stride, sar_bands=args.sar_bands,
            optical_bands=args.optical_bands, max_nodata=args.max_nodata, max_cloud=args.max_cloud,
            max_days=args.max_days, append=args.append, model=args.model, sar_date=args.sar_date,
            optical_date=args.optical_date, scl=args.scl, resampling=args.resampling,
            calibration_factor_db=args.calibration_factor, thermal_noise_removal=args.thermal_noise_removal,
        )
    except ValueError as exc:
        if args.progress == "json":
            emit_json({"event": "error", "message": str(exc)})
        print(f"sar2opt pairs: error: {exc}", file=sys.stderr)
        return 2
    command = command_line(args)
    progress, close = make_progress(args.progress, "pairs")
    try:
        r = make_pairs(args.sar, args.optical, args.out, opts, progress=progress, command=command)
    finally:
        close()
    summary = {"out": str(r.out_dir), "pair": r.pair_id, "tiles_kept": r.tiles_kept, "tiles": r.tiles_total,
               "rejected_nodata": r.rejected_nodata, "rejected_cloud": r.rejected_cloud,
               "days_apart": r.days_apart, "crs": r.crs, "cloud_test": r.cloud_test,
               "seconds": round(r.seconds, 1), "warnings": list(r.warnings)}
    if args.progress == "json":
        emit_json({"event": "done", "outputs": {"OUTPUT": str(r.out_dir.resolve())}, **summary})
    else:
        print(json.dumps(summary, indent=1))
    return 0
