"""``sar2opt batch``: translate scenes cropped to each feature of an AOI vector file.

Exit status: 0 when no crop *failed* (skipped ones, e.g. AOIs outside a scene or outputs
already up to date, are fine), 1 when at least one failed (the summary says why).
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

from ._common import add_model, add_progress, add_verbosity, emit_json, make_progress
from ._options import add_translate_options, translate_options_from_args

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

#: Translate options the batch sets per crop itself (the crop bounds; outdated outputs are always replaced).
BATCH_DECIDES = ("bounds", "bounds_crs", "overwrite")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch",
        help="translate scenes cropped to each polygon of an AOI file (resumable, on Dask)",
        description=(
            "For each scene x AOI feature, reproject the polygon to the scene CRS, buffer it, translate the "
            "window around it and mask pixels outside the polygon. Writes <name>__<scene>.tif (<name>.tif with "
            "one scene) and summary.gpkg (layer 'summary'). Re-running skips outputs already complete. "
            "Exit status 1 if any crop failed."
        ),
    )
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="scene files, SAFE/PALSAR-2 products, or folders of them")
    p.add_argument("--aoi", required=True, metavar="FILE", help="AOI vector file (Shapefile, GeoPackage, GeoJSON ...)")
    p.add_argument("--layer", metavar="NAME", help="layer of a multi-layer AOI file (GeoPackage)")
    p.add_argument("--name-field", metavar="FIELD", help="attribute naming the outputs (default: the feature id)")
    p.add_argument("--buffer", type=float, default=0.0, metavar="METRES",
                   help="grow (or, negative, shrink) each polygon by this many metres (default 0)")
    p.add_argument("--keep-rectangle", action="store_true", help="keep the whole bounding rectangle, no polygon mask")
    p.add_argument("--output-dir", "-o", required=True, type=Path, metavar="DIR", help="folder for outputs and summary.gpkg")
    add_model(p, "default: the bundled model for the scene type")
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="Dask LocalCluster worker processes (default: CPU cores); 0 runs serially in this process")
    p.add_argument("--scheduler", metavar="ADDR", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--redo", action="store_true",
                   help="redo every crop, even those already up to date (outdated, partial or failed crops are "
                        "always redone; outputs are replaced)")
    add_translate_options(p, exclude=BATCH_DECIDES)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def _workers(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative; give 0 (serial) or a number of worker processes")
    return n


def run(args: argparse.Namespace) -> int:
    from ..sensors.open import check_exists

    for path in (*args.scenes, args.aoi):  # before the heavy imports and the progress bar
        check_exists(path)
    from ..batch import dask_client, run_batch

    options = translate_options_from_args(args)
    if not args.verbose:  # Dask (cluster start/stop) and pyogrio ("Created N records") log at INFO
        for name in ("distributed", "pyogrio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    progress, close = make_progress(args.progress, "batch")
    try:
        summary = run_batch(
            args.scenes, args.aoi, args.output_dir, model=args.model, options=options, layer=args.layer,
            name_field=args.name_field, buffer_m=args.buffer, keep_rectangle=args.keep_rectangle,
            redo=args.redo, client=functools.partial(dask_client, args.workers, args.scheduler),
            progress=progress,
        )
    finally:
        close()
    if args.progress == "json":
        for r in summary.records:
            log.info("%s | %s | %s | %s | %.2f s", r.name, Path(r.scene).name, r.status, r.reason, r.seconds)
        emit_json({"event": "done", "outputs": {"OUTPUT": str(summary.output_dir), "SUMMARY": str(summary.summary_path)}})
    else:
        print(summary.table())
        c = summary.counts
        print(f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed in {summary.seconds:.1f} s; "
              f"summary: {summary.summary_path}")
    return 1 if summary.failed else 0
