"""``sar2opt demo``: translate the bundled real Sentinel-1 sample with the bundled SAR model.

Writes, next to ``--output`` (default ``out/demo_rgb.tif``):

* ``demo_rgb.tif`` — the translated RGB Cloud Optimized GeoTIFF (opens in QGIS);
* ``demo_rgb.png`` — a PNG preview;
* ``demo_side_by_side.png`` — real SAR | translation | real optical, the honest first picture.

The input is a real 512 x 512 px Sentinel-1A VH crop over Los Angeles from the validation area
(the model never trained on it) with its co-registered Sentinel-2 image
(:mod:`sar2opt_geo.samples.demo`; "Contains modified Copernicus Sentinel data 2020"). ``--synthetic``
generates and translates the **synthetic** VH-like scene instead (``sample_s1_vh_db.tif``,
sigma0 dB, 10 m, UTM 31N; no optical image exists for it). This is what ``make demo`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from ._common import add_device, add_progress, add_verbosity, emit_json, make_progress

__all__ = ["SAMPLE_NAME", "SIDE_BY_SIDE_NAME", "add_parser", "check_synthetic_options", "run"]

log = logging.getLogger(__name__)

SAMPLE_NAME = "sample_s1_vh_db.tif"
SIDE_BY_SIDE_NAME = "demo_side_by_side.png"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="translate the bundled real Sentinel-1 sample (or a synthetic scene) with the bundled model",
        description=(
            "Translate the bundled real Sentinel-1A VH sample (512 x 512 px, Los Angeles, validation area: never "
            "trained on) with the bundled SAR model into an RGB GeoTIFF, write a PNG preview and "
            f"{SIDE_BY_SIDE_NAME} (real SAR | translation | real Sentinel-2 optical) next to OUTPUT, and print the "
            "paths. Contains modified Copernicus Sentinel data 2020. --synthetic uses a generated synthetic scene "
            f"({SAMPLE_NAME}: sigma0 dB, 10 m, UTM 31N) instead."
        ),
    )
    p.add_argument("--output", "-o", type=Path, default=Path("out/demo_rgb.tif"), metavar="PATH",
                   help="output GeoTIFF (default out/demo_rgb.tif; the PNG preview gets the same stem)")
    p.add_argument("--synthetic", action="store_true",
                   help="translate a generated synthetic scene instead of the bundled real sample")
    p.add_argument("--size", type=int, default=1024, metavar="PX",
                   help="with --synthetic: scene width = height in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="with --synthetic: seed of the landscape (default 0)")
    p.add_argument("--model", metavar="PATH", help="generator checkpoint (default: the bundled SAR model)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def check_synthetic_options(size: int, seed: int) -> None:
    """``--size`` and ``--seed`` (used by ``--synthetic``): a :class:`~sar2opt_geo.errors.ConfigError` (one
    line on stderr, exit status 1, nothing written) when they cannot work, with or without ``--synthetic``."""
    from ..errors import ConfigError
    from ..options import check_seed

    if size < 16:
        raise ConfigError(f"--size {size} is too small; give at least 16 pixels (e.g. --size 1024, the default)")
    check_seed(seed)


@contextlib.contextmanager
def _removed_on_failure(folder: Path, new_files: list[Path]) -> Iterator[None]:
    """When the block raises: remove ``new_files`` (the demo's outputs that did not exist before), then
    ``folder`` and the parents the block created, if empty. Nothing that existed before is touched."""
    created = []
    for d in (folder, *folder.parents):
        if d.exists() or d == d.parent:
            break
        created.append(d)
    try:
        yield
    except BaseException:
        for path in new_files:
            path.unlink(missing_ok=True)
        for d in created:
            try:
                d.rmdir()
            except OSError:
                break
        raise


def run(args: argparse.Namespace) -> int:
    check_synthetic_options(args.size, args.seed)  # before torch is imported and anything is written
    from ..samples.demo import ATTRIBUTION, bundled_pair, side_by_side
    from ..samples.synthetic import write_sample_scene
    from ..translation.api import resolve_device, translate

    resolve_device(args.device)  # an unusable --device fails before the sample scene is written
    output: Path = args.output
    written = [output.parent / SAMPLE_NAME, output, output.with_suffix(".png"), output.parent / SIDE_BY_SIDE_NAME]
    with _removed_on_failure(output.parent, [p for p in written if not p.exists()]):
        if args.synthetic:
            sample, optical = write_sample_scene(output.parent / SAMPLE_NAME, size=args.size, seed=args.seed), None
            what, title, attribution = "sample scene (synthetic)", "SYNTHETIC scene (no real optical image exists)", None
        else:
            pair = bundled_pair()
            sample, optical = pair.sar, pair.optical
            what, title, attribution = "real Sentinel-1 sample", pair.description, ATTRIBUTION
        progress, close = make_progress(args.progress, "demo")
        try:
            result = translate(sample, output, args.model, device=args.device, quicklook=True, progress=progress)
        finally:
            close()
        picture = side_by_side(sample, result.path, output.parent / SIDE_BY_SIDE_NAME, optical, title=title,
                               attribution=attribution)
    if args.progress == "json":
        emit_json({"event": "done", "outputs": {"INPUT": str(sample), "OUTPUT": str(result.path),
                                                "QUICKLOOK": str(result.quicklook), "SIDE_BY_SIDE": str(picture)}})
    else:
        print(f"{what + ':':26s}{sample}")
        if optical is not None:
            print(f"{'real optical:':26s}{optical}")
        print(f"{'RGB GeoTIFF:':26s}{result.path}  ({result.width} x {result.height} px, {result.crs})")
        print(f"{'PNG preview:':26s}{result.quicklook}")
        print(f"{'side by side:':26s}{picture}")
        if attribution:
            print(attribution)
    return 0
