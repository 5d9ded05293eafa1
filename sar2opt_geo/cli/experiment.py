"""``sar2opt experiment OUT``: the article's two-generator experiment as one command (thin shell over
:func:`sar2opt_geo.experiment.run.run_experiment`)."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from pathlib import Path

from ._common import (
    add_device,
    add_progress,
    add_tiling,
    add_verbosity,
    emit_json,
    make_progress,
)

__all__ = ["add_parser", "run", "scene_specs"]

log = logging.getLogger(__name__)

_EPILOG = """\
what it does:
  1. paired data (--paired): PSNR / SSIM / L1 of the SAR->RGB generator (fed the SAR) and of
     the gray->RGB generator (fed the gray of the real optical, and fed the SAR as in the
     article) on the held-out area, beside the constant-colour baseline;
  2. each dual-pol scene (--scene, repeatable; --synthetic-palsar2 adds a generated PALSAR-2
     L2.1 product, labelled synthetic): the plain composite and the composites through each
     generator, with SSIM / Pearson r of each against the plain composite;
  3. panels, metrics.json, CSV tables and OUT/report.md.

example (the real data of this project):
  sar2opt experiment out/experiment \\
      --paired ../shared/data/pairs/s1vh_s2rgb_epsg3395 \\
      --scene ../shared/data/pairs/sen12ms_cr/s1/ROIs1970_fall_139_p839.tif \\
      --scene ../shared/data/pairs/sen12ms_cr/s1/ROIs2017_winter_112_p797.tif \\
      --synthetic-palsar2
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "experiment",
        help="the article's two-generator experiment: metrics, composites, panels and report.md",
        description="Run the two-generator experiment (SAR->RGB and gray->RGB) on paired data and dual-pol scenes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (created)")
    p.add_argument("--sar-model", type=Path, metavar="PATH", help="SAR->RGB checkpoint (default: the bundled one)")
    p.add_argument("--gray-model", type=Path, metavar="PATH", help="gray->RGB checkpoint (default: the bundled one)")
    p.add_argument("--paired", type=Path, metavar="DIR", help="paired test data folder (any layout `sar2opt train` reads)")
    p.add_argument("--layout", default="auto", help="layout of --paired (default: auto)")
    p.add_argument("--split", default="auto", choices=("auto", "area", "scene", "none"),
                   help="evaluate on the held-out part of this split, as training does (default: auto)")
    p.add_argument("--max-pairs", type=int, default=8, metavar="N", help="held-out pairs evaluated, 0 = all (default 8)")
    p.add_argument("--eval-crop", type=int, default=512, metavar="PX",
                   help="centre crop side, multiple of 16; 0 = whole images (default 512)")
    p.add_argument("--panel-pairs", type=int, default=4, metavar="N", help="pairs shown in the panel (default 4)")
    p.add_argument("--scene", action="append", default=[], metavar="PATH",
                   help="dual-pol scene (PALSAR-2 L2.1 folder, Sentinel-1 VV+VH GeoTIFF ...), repeatable")
    p.add_argument("--synthetic-palsar2", action="store_true",
                   help="also write a SYNTHETIC PALSAR-2 L2.1 HH+HV product into OUT/data and use it as a scene")
    p.add_argument("--stretch", choices=("fixed", "percentile"), default="fixed",
                   help="stretch of the plain composite shown first (default: fixed dB ranges)")
    p.add_argument("--scene-crop", type=int, default=256, metavar="PX", help="scene crop side in panels (default 256)")
    p.add_argument("--scene-crops", type=int, default=2, metavar="N", help="crops per scene in panels (default 2)")
    add_tiling(p)
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of crops and samples (default 0)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def _label(path: Path, used: set[str]) -> str:
    name = Path(str(path).rstrip("/")).name
    for suffix in (".tif", ".tiff", ".TIF", ".zip", ".SAFE"):
        name = name.removesuffix(suffix)
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "scene"
    label, i = base, 2
    while label in used:
        label, i = f"{base}_{i}", i + 1
    used.add(label)
    return label


def scene_specs(paths: list[str], synthetic: Path | None = None):
    """:class:`~sar2opt_geo.experiment.run.SceneSpec` for each path (unique labels, optical partners found)."""
    from ..experiment.run import SceneSpec, optical_partner

    used: set[str] = set()
    specs = [SceneSpec(Path(p), _label(Path(p), used), optical=optical_partner(Path(p))) for p in paths]
    if synthetic is not None:
        specs.append(SceneSpec(synthetic, _label(Path("palsar2_l21_SYNTHETIC"), used), synthetic=True))
    return tuple(specs)


def run(args: argparse.Namespace) -> int:
    from ..options import check_seed

    check_seed(args.seed)  # before torch is imported and anything is written
    from ..experiment.run import ExperimentConfig, removed_on_failure, run_experiment
    from ..translation.api import resolve_device

    device = resolve_device(args.device)
    progress, close = make_progress(args.progress, "experiment")
    try:
        with removed_on_failure(args.out):  # also the --synthetic-palsar2 product, written before the run
            synthetic = None
            if args.synthetic_palsar2:
                from ..samples.synthetic import write_synthetic_palsar2_l21

                synthetic = write_synthetic_palsar2_l21(args.out / "data" / "palsar2_l21_SYNTHETIC", size=512,
                                                        seed=args.seed)
            cfg = ExperimentConfig(
                out_dir=args.out, scenes=scene_specs(args.scene, synthetic), sar_model=args.sar_model,
                gray_model=args.gray_model, paired_data=args.paired, paired_layout=args.layout, split=args.split,
                eval_crop=args.eval_crop or None, max_pairs=args.max_pairs or None, panel_pairs=args.panel_pairs,
                scene_crop=args.scene_crop, scene_crops=args.scene_crops, stretch=args.stretch, tile_size=args.tile,
                overlap=args.overlap, max_memory_mb=args.max_memory_mb, device=device, seed=args.seed,
                command="sar2opt " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["experiment"] else "",
            )
            result = run_experiment(cfg, progress=progress)
    finally:
        close()
    if args.progress == "json":
        emit_json({"event": "done", "outputs": {"OUTPUT": str(result.report.resolve())}})
    else:
        print(result.report)
    return 0
