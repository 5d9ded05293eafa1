"""``sar2opt batch``: translate whole scenes, or scenes cropped to each feature of an AOI vector
file, resumably, on Dask (a large scene split into row bands over several workers).

Exit status: 0 when no output *failed* (skipped ones, e.g. AOIs outside a scene or outputs
already up to date, are fine), 1 when at least one failed (the summary says why). An AOI layer
without features, an output folder that is a file, read-only or on a full disk (also when the disk
fills up during the batch) are one ``sar2opt: error: ...`` line and exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
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
        help="translate whole scenes, or scenes cropped to each polygon of an AOI file (resumable, on Dask)",
        description=(
            "Without --aoi, translate each whole scene into <scene>.tif; a scene can be split into row bands "
            "translated by several workers (--split), with the same bytes as one translate. With --aoi, for each "
            "scene x AOI feature, reproject the polygon to the scene CRS, buffer it, translate the window around "
            "it and mask pixels outside the polygon: <aoi file stem>__<name>__<scene>.tif (a scene stem shared with "
            "another scene gets -<hash of its path>). Rows go into "
            "summary.gpkg (layer 'summary'), merged with the rows of earlier or concurrent batches. Re-running "
            "skips outputs already complete. Exit status 1 if any output failed."
        ),
    )
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="scene files, SAFE/PALSAR-2 products, or folders of them")
    p.add_argument("--output-dir", "-o", required=True, type=Path, metavar="DIR", help="folder for outputs and summary.gpkg")
    add_model(p, "default: the bundled model for the scene type")
    aoi = p.add_argument_group("AOI crops (without --aoi: whole scenes)")
    aoi.add_argument("--aoi", metavar="FILE", help="AOI vector file (Shapefile, GeoPackage, GeoJSON ...)")
    aoi.add_argument("--layer", metavar="NAME", help="layer of a multi-layer AOI file (GeoPackage)")
    aoi.add_argument("--name-field", metavar="FIELD", help="attribute naming the outputs (default: the feature id)")
    aoi.add_argument("--aoi-key", metavar="NAME",
                     help="the AOI's part of crop file names, <aoi key>__<feature>__<scene>.tif (default: the AOI file's stem)")
    aoi.add_argument("--buffer", type=float, default=None, metavar="METRES",
                     help="grow (or, negative, shrink) each polygon by this many metres (default 0)")
    aoi.add_argument("--keep-rectangle", action="store_true", help="keep the whole bounding rectangle, no polygon mask")
    dask = p.add_argument_group("scale-out")
    dask.add_argument("--workers", type=_workers, default=None, metavar="N",
                      help="Dask LocalCluster worker processes; 0 runs serially in this process (default: "
                           "one per CPU core, started only when the work is large enough to repay the cluster's "
                           "start-up, else serial: small batches run in this process)")
    dask.add_argument("--scheduler", metavar="ADDR", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    dask.add_argument("--split", type=_split, default="auto", metavar="N|auto",
                      help="whole scenes: row bands per scene, run by different workers (same bytes as one pass); "
                           "auto (default): as many as keep every worker busy when there are fewer scenes than "
                           "workers, else 1")
    p.add_argument("--redo", action="store_true",
                   help="redo every output, even those already up to date (outdated, partial or failed ones are "
                        "always redone; outputs are replaced)")
    add_translate_options(p, exclude=BATCH_DECIDES)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run, parser=p)
    return p


def _split(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of row bands; give e.g. 4, or auto") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be >= 1 (1: no split), or auto")
    return n


def _workers(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative; give 0 (serial) or a number of worker processes")
    return n


def run(args: argparse.Namespace) -> int:
    from ..sensors.open import check_exists

    if args.aoi is None:
        given = [flag for flag, value in (("--layer", args.layer), ("--name-field", args.name_field), ("--aoi-key", args.aoi_key),
                                          ("--buffer", args.buffer), ("--keep-rectangle", args.keep_rectangle or None))
                 if value is not None]
        if given:
            args.parser.error(f"{', '.join(given)} need(s) --aoi (without --aoi, whole scenes are translated)")
    elif args.split not in ("auto", 1):
        args.parser.error("--split applies to whole scenes; leave out --aoi (AOI crops run one per task)")
    for path in (*args.scenes, *([args.aoi] if args.aoi else [])):  # before the heavy imports and the progress bar
        check_exists(path)
    if not args.verbose:  # Dask's scheduler and nannies log ~25 INFO lines per run; its config sets the level on import
        os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")
    from ..batch import dask_client, run_batch

    options = translate_options_from_args(args)
    if not args.verbose:  # Dask (cluster start/stop) and pyogrio ("Created N records") log at INFO
        for name in ("distributed", "pyogrio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    progress, close = make_progress(args.progress, "batch")
    try:
        summary = run_batch(
            args.scenes, args.aoi, args.output_dir, model=args.model, options=options, layer=args.layer,
            name_field=args.name_field, aoi_key=args.aoi_key, buffer_m=args.buffer or 0.0, keep_rectangle=args.keep_rectangle,
            redo=args.redo, split=args.split if args.aoi is None else 1,
            client=functools.partial(dask_client, args.workers, args.scheduler), progress=progress,
            auto_workers=(os.cpu_count() or 1) if args.workers is None and args.scheduler is None else None,
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
