"""``sar2opt demo``: generate the synthetic sample scene and translate it with the bundled SAR model.

Writes, next to ``--output`` (default ``out/demo_rgb.tif``):

* ``sample_s1_vh_db.tif`` — a **synthetic** Sentinel-1 VH-like scene (sigma0 dB, 10 m, UTM 31N,
  from :func:`sar2opt_geo.samples.write_sample_scene`; no real data is shipped);
* ``demo_rgb.tif`` — the translated RGB Cloud Optimized GeoTIFF (opens in QGIS);
* ``demo_rgb.png`` — a PNG preview.

This is what ``make demo`` runs on a fresh machine.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import add_device, add_progress, add_verbosity, emit_json, make_progress

__all__ = ["SAMPLE_NAME", "add_parser", "run"]

log = logging.getLogger(__name__)

SAMPLE_NAME = "sample_s1_vh_db.tif"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="translate a generated (synthetic) Sentinel-1 sample scene with the bundled model",
        description=(
            "Generate a synthetic Sentinel-1 VH sample scene (sigma0 dB, 10 m, UTM 31N) next to OUTPUT as "
            f"{SAMPLE_NAME}, translate it with the bundled SAR model into an RGB GeoTIFF, write a PNG "
            "preview, and print the three paths."
        ),
    )
    p.add_argument("--output", "-o", type=Path, default=Path("out/demo_rgb.tif"), metavar="PATH",
                   help="output GeoTIFF (default out/demo_rgb.tif; the PNG preview gets the same stem)")
    p.add_argument("--size", type=int, default=1024, metavar="PX", help="sample scene width = height in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the synthetic landscape (default 0)")
    p.add_argument("--model", metavar="PATH", help="generator checkpoint (default: the bundled SAR model)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api import translate
    from ..samples import write_sample_scene

    if args.size < 16:
        print(f"sar2opt demo: error: --size {args.size} is too small; give at least 16 pixels")
        return 2
    output: Path = args.output
    sample = write_sample_scene(output.parent / SAMPLE_NAME, size=args.size, seed=args.seed)
    progress, close = make_progress(args.progress, "demo")
    try:
        result = translate(sample, output, args.model, device=args.device, quicklook=True, progress=progress)
    finally:
        close()
    if args.progress == "json":
        emit_json({"event": "done", "outputs": {"INPUT": str(sample), "OUTPUT": str(result.path),
                                                "QUICKLOOK": str(result.quicklook)}})
    else:
        print(f"sample scene (synthetic): {sample}")
        print(f"RGB GeoTIFF:              {result.path}  ({result.width} x {result.height} px, {result.crs})")
        print(f"PNG preview:              {result.quicklook}")
    return 0
