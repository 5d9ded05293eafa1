"""``sar2opt train``: train a pix2pix generator, by default with the article's recipe (thin shell over
:func:`sar2opt_geo.training.train`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import shutil
from pathlib import Path

from ._common import add_device, add_progress, add_verbosity, make_progress

__all__ = ["add_data_options", "add_parser", "build_datasets", "command_line", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
Train a pix2pix generator (default: the article's U-Net + PatchGAN and recipe) on paired data.
The bundled weights use this recipe (U-Net at --width 0.25, GAN + 100 L1, Adam 2e-4, 256 px crops
of 32 LA/San Antonio tiles; their card's training.command has the full line). The recipe
`scripts/train_defaults.sh full` tries instead (docs/TRAINING.md: more SSIM and edge placement,
less PSNR) adds --arch resnet_lite, --lambda-ssim/--lambda-grad (structure terms), --speckle-aug
(random gain and speckle on the SAR input) and --lr 1e-3.

Data layouts (--layout, default auto-detected from folder names):
  sen1-2       ROIsXXXX_<season>/s1_<n>/..._s1_<n>_p<k>.png <-> .../s2_<n>/..._s2_<n>_p<k>.png
               (SAR: sigma0 dB clipped to -25..0 dB stored as 0..255; optical 8-bit RGB)
  article      root/s1/<class>/*.png <-> root/s2/<class>/*.png (same PNG scaling as sen1-2)
  la           root/sar/NNN.tif (VH, 8-bit: linear / scene p99, clipped) <-> root/opt/NNN.tif (RGB, same rule)
  sen12ms-cr   root/s1/<id>.tif (dB, VV, VH) <-> root/s2/<id>.tif (reflectance x 10000; RGB = B4, B3, B2)
  bigearthnet  one folder per patch with *_VV.tif, *_VH.tif, *_B04.tif, *_B03.tif, *_B02.tif
  pairs        what `sar2opt pairs` builds: root/sar/<name>.tif <-> root/opt/<name>.tif + metadata.json
               (storage rule and input domain recorded there; the card takes its domain from it)
  images       (with --mode colorize) any RGB PNG/JPEG or optical GeoTIFF
Pairs are matched by file name; an unmatched or mis-registered pair is an error.

Normalisation to the model domain [-1, 1]: dB clipped to (-25, 0) dB; reflectance 0..0.3
(DN 0..3000); 8-bit data x / 255; optical GeoTIFFs per band / scene 99th percentile.
Validation is a held-out area (georeferenced tiles: the easternmost ~20% of every scene,
whole tile columns) or held-out scenes, never random patches. Metrics are on the
(y+1)/2 scale in [0, 1]; each run also scores a constant image of the training set's mean
colour on the same validation data (the baseline a model must beat).

Outputs in OUT: log.csv/log.json (per epoch), samples/epoch_NNNN.png (input | generated |
real), checkpoints/{last,best,epoch_NNNN}.safetensors (generator + model card),
checkpoints/state_last.pt (for --resume), curves.png, baseline.json.
Multi-GPU: torchrun --nproc_per_node=N -m sar2opt_geo.cli.main train ... (DDP).
Fine-tuning: --init MODEL starts the generator from a checkpoint or a bundled model ('sar',
'gray'); the card records the parent (name, hash, path) and the new data's input domain.
"""


def _rgb_bands(text: str) -> tuple[int, int, int]:
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) != 3 or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"--rgb-bands wants three 1-based band indexes like 3,2,1, got {text!r}")
    return bands


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Options that say which pairs to read and how to split them (shared with ``evaluate``)."""
    from ..data.pairs import LAYOUTS

    p.add_argument("--layout", default="auto", choices=("auto",) + LAYOUTS,
                   help="dataset layout (default: auto-detect from folder names)")
    p.add_argument("--mode", default="sar", choices=("sar", "colorize"),
                   help="sar: SAR -> RGB pairs; colorize: (gray, RGB) pairs from the optical side, gray = "
                        "0.299 R + 0.587 G + 0.114 B (default: sar)")
    p.add_argument("--sar-band", dest="sar_bands", action="append", metavar="POL",
                   help="SAR polarisation(s) fed to the model for GeoTIFF layouts, repeatable (default: VH)")
    p.add_argument("--rgb-bands", type=_rgb_bands, default=None, metavar="R,G,B",
                   help="1-based red,green,blue band indexes of optical GeoTIFFs in the images layout, e.g. 3,2,1 "
                        "for a blue,green,red file (default: from colour interpretation/band descriptions, else 1,2,3)")
    p.add_argument("--split", default="auto", choices=("auto", "area", "scene", "none"),
                   help="hold-out rule: area (spatial block per scene, georeferenced tiles), scene (whole scenes), "
                        "none, or auto (area when possible, else scene) (default: auto)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of pairs held out for validation (default: 0.2)")
    p.add_argument("--val-crop", type=int, default=None, metavar="PX",
                   help="validate on one centre crop of PX pixels per held-out image (multiple of 16) "
                        "instead of whole images (default: whole images)")


def _float_pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers LO,HI, e.g. 0.7,1.4") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LO <= HI")
    return lo, hi


def data_roots(args: argparse.Namespace) -> list[Path]:
    """The dataset folder(s) of ``args.data`` (one path or a list)."""
    data = args.data if isinstance(args.data, (list, tuple)) else [args.data]
    return [Path(d) for d in data]


def folder_layout(args: argparse.Namespace, root: Path) -> str:
    """The layout of dataset folder ``root``: ``--layout``, else detected (colourisation: any images)."""
    from ..data import detect_layout

    if args.layout != "auto":
        return args.layout
    try:
        return detect_layout(root)
    except Exception:
        if args.mode != "colorize":
            raise
        return "images"


def _find_all_pairs(args: argparse.Namespace) -> tuple[list, str]:
    """Pairs of every folder in ``args.data`` (one layout for all), keys made unique across folders."""
    from ..data import find_pairs
    from ..errors import DatasetError

    roots = data_roots(args)
    layouts, pairs, seen = [], [], set()
    for root in roots:
        layout = folder_layout(args, root)
        layouts.append(layout)
        # the pairs layout stores its bands (metadata.json): all of them unless --sar-band picks some
        sar_bands = tuple(args.sar_bands) if args.sar_bands else (None if layout == "pairs" else ("VH",))
        for p in find_pairs(root, layout, args.mode, sar_bands, getattr(args, "rgb_bands", None)):
            if p.key in seen:  # two folders with a tile of the same name: name it by its folder
                p = dataclasses.replace(p, key=f"{root.name}/{p.key}")
            if p.key in seen:
                raise DatasetError(f"{root}: pair {p.key} appears twice; pass each dataset folder once")
            seen.add(p.key)
            pairs.append(p)
    if len(set(layouts)) > 1:
        raise DatasetError(f"{', '.join(map(str, roots))}: the folders have different layouts ({', '.join(layouts)}); "
                           "train on folders of one layout")
    return pairs, layouts[0]


def build_datasets(args: argparse.Namespace, crop_size: int | None = None, crops_per_image: int = 1,
                   augment: bool = False, seed: int = 0):
    """``(train_ds, val_ds | None, layout, description dict)`` from the data options.

    Several folders (``args.data`` a list) are one dataset: the split runs over their union,
    so ``--split area`` holds out the same block of each scene whichever folder a tile is in.
    """
    from ..data import PairDataset, split_pairs

    pairs, layout = _find_all_pairs(args)
    train_pairs, val_pairs = split_pairs(pairs, args.split, args.val_fraction, seed)
    train_ds = PairDataset(train_pairs, crop_size, crops_per_image, random_crops=True, augment=augment, seed=seed)
    val_ds = PairDataset(val_pairs, args.val_crop, random_crops=False) if val_pairs else None
    roots = [str(r.resolve()) for r in data_roots(args)]
    desc = {
        "root": roots[0] if len(roots) == 1 else roots,
        "layout": layout,
        "mode": args.mode,
        "sar_bands": list(pairs[0].condition.names) if args.mode == "sar" and pairs[0].condition else None,
        "split": args.split,
        "val_fraction": args.val_fraction,
        "train_pairs": [p.key for p in train_pairs],
        "validation_pairs": [p.key for p in val_pairs],
        "validation_crop": args.val_crop or "whole images",
    }
    return train_ds, val_ds, layout, desc


_NOT_RECORDED = {"func", "command", "verbose", "quiet", "progress", "resume", "export", "data", "out"}


def command_line(args: argparse.Namespace) -> str:
    """The full ``sar2opt train`` command for ``args``, every option spelled out (defaults included),
    so that the card records a command that reproduces the run even if defaults change."""
    parts = ["sar2opt", "train", *map(str, data_roots(args)), args.out]
    for dest, value in vars(args).items():
        if dest in _NOT_RECORDED or value is None:
            continue
        flag = "--" + dest.replace("_", "-")
        if dest == "sar_bands":
            for b in value:
                parts += ["--sar-band", b]
        elif isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts += [flag, str(value)]
    if getattr(args, "export", None):
        parts += ["--export", args.export]
    return " ".join(shlex.quote(str(p)) for p in parts)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a pix2pix generator on paired data",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="dataset folder(s) (see layouts above); several folders of one layout are "
                   "one dataset, split over their union")
    p.add_argument("out", help="output folder for logs, samples and checkpoints")
    add_data_options(p)
    g = p.add_argument_group("recipe (defaults: the article's)")
    g.add_argument("--epochs", type=int, default=100, help="epochs (default: 100)")
    g.add_argument("--batch-size", type=int, default=128, help="global batch size in crops (default: 128)")
    g.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate for G and D (default: 2e-4)")
    g.add_argument("--lr-decay-epochs", type=int, default=0, metavar="N",
                   help="pix2pix's linear policy: the learning rate falls linearly towards 0 over the last N of "
                        "--epochs epochs (default: 0, constant)")
    g.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the generator's weights (decay per step, e.g. 0.995); "
                        "validation, samples and checkpoints use the average (default: 0, off)")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (default: 0.5; beta2 is 0.999)")
    g.add_argument("--lambda-l1", type=float, default=100.0,
                   help="weight of the L1 term in G's loss, on the model scale [-1, 1] (default: 100)")
    g.add_argument("--lambda-gan", type=float, default=1.0,
                   help="weight of the adversarial term in G's loss; 0 trains no discriminator (default: 1)")
    g.add_argument("--lambda-ssim", type=float, default=0.0,
                   help="weight of 1 - SSIM (11x11 Gaussian window, [0, 1] scale) in G's loss (default: 0)")
    g.add_argument("--lambda-grad", type=float, default=0.0,
                   help="weight of the L1 between Sobel gradient magnitudes of output and target, [0, 1] scale "
                        "(default: 0)")
    g.add_argument("--arch", default="unet_article", choices=("unet_article", "resnet_lite"),
                   help="generator: unet_article (the article's U-Net, 3.48 M parameters at width 1, 29.9 GFLOP per "
                        "256 px) or resnet_lite (strided stem, residual blocks at 1/4 and 1/8 resolution, 0.64 M, "
                        "4.2 GFLOP) (default: unet_article)")
    g.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier of G and D; unet_article: 1.0 = the article's 3.48 M-parameter generator, "
                        "0.5 ~ 0.87 M, 0.25 ~ 0.22 M (default: 1.0)")
    g.add_argument("--disc-width", type=float, default=None,
                   help="channel multiplier of the discriminator (default: --width)")
    g.add_argument("--crop-size", type=int, default=256, help="training crop side in pixels, multiple of 16 (default: 256)")
    g.add_argument("--crops-per-image", type=int, default=1,
                   help="random crops per training pair per epoch (default: 1)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random flips and 90-degree rotations (default: on)")
    g.add_argument("--speckle-aug", action=argparse.BooleanOptionalAction, default=False,
                   help="SAR input only: random gain (+-2 dB, as if the scene percentile moved) and, on half the "
                        "samples, gamma speckle of 3..30 looks, on linear power (default: off)")
    g.add_argument("--aug-gain-db", type=float, default=2.0, metavar="DB",
                   help="--speckle-aug: half-width of the random gain, dB (default: 2; other regions' scene "
                        "percentiles differ by more: 4-6 trains for them)")
    g.add_argument("--aug-db-gamma", type=_float_pair, default=(1.0, 1.0), metavar="LO,HI",
                   help="--speckle-aug: random contrast on the dB scale (backscatter relative to the scene "
                        "percentile raised to a power drawn log-uniformly in LO..HI), as between regions and "
                        "land covers (default: 1,1 = off; e.g. 0.7,1.4)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, crops, augmentation and dropout (default: 0)")
    g.add_argument("--init", default=None, metavar="PATH|sar|gray",
                   help="fine-tune: start the generator from this checkpoint or bundled model; its architecture, "
                        "width, norm and dropout replace --width; the discriminator starts fresh; the card records "
                        "the parent (name, hash, path) (default: random initialisation)")
    r = p.add_argument_group("run")
    r.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    r.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "none"),
                   help="mixed precision (autocast): on CUDA auto = bf16 if supported, else fp16; on CPU auto = bf16 "
                        "where the CPU has AVX-512 BF16 or AMX (1.5-2x faster per step; validation PSNR of the trained "
                        "model within 0.06 dB of float32, seed noise 0.3 dB, docs/TRAINING.md), float32 elsewhere; SAR2OPT_PRECISION=fp32 "
                        "pins auto to float32; none = float32; fp16 is CUDA only; the card records it (default: auto)")
    r.add_argument("--checkpoint-every", type=int, default=10, help="also keep epoch_NNNN.safetensors every N epochs (default: 10)")
    r.add_argument("--best-metric", default="psnr", choices=("psnr", "ssim", "l1", "grad_r"),
                   help="validation metric that selects best.safetensors (default: psnr)")
    r.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget in minutes: training stops at the first step past it, then validates and saves "
                        "(the last epoch is then partial) (default: no limit)")
    r.add_argument("--max-cpu-minutes", type=float, default=None,
                   help="budget in CPU minutes of this process (all its threads; per rank under torchrun), same rule: "
                        "comparable between runs on a shared machine (default: no limit)")
    r.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/state_last.pt")
    r.add_argument("--name", default=None, help="model name recorded in the card (default: OUT's folder name)")
    r.add_argument("--description", default="", help="free text recorded in the card")
    r.add_argument("--export", default=None, metavar="PATH",
                   help="copy the best (else last) generator checkpoint to PATH at the end")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..options import check_seed

    check_seed(args.seed)  # torch and numpy take 0 .. 2**63 - 1: say so before any work, not in a traceback
    import torch

    from ..training import TrainConfig, card_for_dataset, train

    if args.threads:
        torch.set_num_threads(args.threads)
    parent = _load_parent(args.init) if getattr(args, "init", None) else None
    arch = parent.card.architecture_args if parent is not None else {}
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, lambda_l1=args.lambda_l1,
        lambda_gan=args.lambda_gan, lambda_ssim=args.lambda_ssim, lambda_grad=args.lambda_grad,
        arch=parent.card.architecture if parent is not None else args.arch,
        width=float(arch.get("width", args.width)), norm=str(arch.get("norm", "batch")),
        dropout=float(arch.get("dropout", 0.5)), disc_width=args.disc_width, crop_size=args.crop_size,
        crops_per_image=args.crops_per_image, augment=args.augment, speckle_aug=args.speckle_aug,
        aug_gain_db=args.aug_gain_db, aug_db_gamma=tuple(args.aug_db_gamma), workers=args.workers,
        threads=args.threads, seed=args.seed, checkpoint_every=args.checkpoint_every, best_metric=args.best_metric,
        device=args.device, amp=args.amp, max_minutes=args.max_minutes, max_cpu_minutes=args.max_cpu_minutes,
        lr_decay_epochs=args.lr_decay_epochs, ema=args.ema,
    )
    train_ds, val_ds, layout, desc = build_datasets(args, cfg.crop_size, cfg.crops_per_image, cfg.augment, cfg.seed)
    out = Path(args.out)
    name = args.name or out.resolve().name
    if layout == "pairs":  # the input domain recorded by sar2opt pairs (sensor, bands, frequency band, spacing)
        from ..data.make_pairs import pairs_card

        card = pairs_card(data_roots(args)[0], name, args.description, args.mode, tuple(args.sar_bands or ()))
    else:
        card = card_for_dataset(layout, args.mode, tuple(args.sar_bands or ("VH",)), name, args.description)
    if parent is not None:
        card = _with_parent(card, parent, train_ds, ", ".join(map(str, data_roots(args))))
    command = command_line(args)
    progress, close = make_progress(args.progress, "train")
    try:
        result = train(train_ds, val_ds, out, card, cfg, resume=args.resume, command=command,
                       data_description=desc, progress=progress, init=parent.module if parent is not None else None)
    finally:
        close()
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 writes and reports
        _leave_distributed()
    chosen = result.best or result.last
    if args.export:
        from ..io.atomic import atomic_file

        with atomic_file(args.export) as tmp:
            shutil.copyfile(chosen, tmp)
        log.info("exported %s to %s", chosen, args.export)
    summary = {"out": str(out), "best": str(result.best) if result.best else None, "last": str(result.last),
               "epochs": result.epochs_done, "best_epoch": result.best_epoch, "validation": result.best_metrics,
               "baseline_constant_colour": result.baseline}
    if args.progress == "json":
        from ._common import emit_json

        emit_json({"event": "done", "outputs": {"OUTPUT": str(chosen)}, **summary})
    else:
        print(json.dumps(summary, indent=1))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave_distributed()
    return 0


def _load_parent(model: str):
    """The generator to fine-tune (``--init``): a checkpoint path or bundled name, on the CPU."""
    from ..errors import CheckpointError
    from ..models.loading import load
    from ..training.trainer import TRAINABLE_ARCHITECTURES

    parent = load(model, "cpu")
    if parent.card.architecture not in TRAINABLE_ARCHITECTURES:
        raise CheckpointError(f"{parent.path or model}: --init needs a generator this trainer trains "
                              f"({', '.join(TRAINABLE_ARCHITECTURES)}), this one is {parent.card.architecture}")
    return parent


def _with_parent(card, parent, train_ds, data: str):
    """``card`` with ``training["parent"]``, after checking that the data fit the parent's input."""
    from ..errors import DatasetError

    p, d = parent.card.input, card.input
    where = parent.path or parent.name
    if train_ds.in_channels != parent.card.in_channels or train_ds.out_channels != parent.card.out_channels:
        raise DatasetError(f"{data}: pairs have {train_ds.in_channels} input and {train_ds.out_channels} output "
                           f"band(s), --init {where} takes {parent.card.in_channels} and gives "
                           f"{parent.card.out_channels}; build pairs with as many bands or train from scratch")
    rule = (d.normalisation, d.percentile, d.db_range, d.quantity == "gray")
    if rule != (p.normalisation, p.percentile, p.db_range, p.quantity == "gray"):
        raise DatasetError(f"{data}: pairs are normalised as {d.normalisation} ({d.bands}), --init {where} expects "
                           f"{p.normalisation} ({p.bands}); rebuild them with sar2opt pairs --model {where}")
    if (p.sensor, p.bands, p.frequency_band, p.pixel_spacing_m) != (d.sensor, d.bands, d.frequency_band,
                                                                     d.pixel_spacing_m):
        log.info("fine-tuning %s (%s %s, %s-band, %g m) on %s %s, %s-band, %g m", parent.name, p.sensor,
                 "/".join(p.bands), p.frequency_band, p.pixel_spacing_m, d.sensor, "/".join(d.bands),
                 d.frequency_band, d.pixel_spacing_m)
    info = {"name": parent.name, "hash": parent.card_hash, "path": str(parent.path) if parent.path else None,
            "input": {"sensor": p.sensor, "bands": list(p.bands), "frequency_band": p.frequency_band,
                      "pixel_spacing_m": p.pixel_spacing_m}}
    return card.replace(training={**card.training, "parent": info})


def _leave_distributed() -> None:
    """End a torchrun worker once its work is written, skipping C++ static destructors.

    A Gloo worker that exits normally can die with "terminate called without an active
    exception" (SIGABRT) while torch tears down its communication threads, even after
    ``destroy_process_group``; torchrun then reports the whole run as failed. Everything
    this process owns is written and closed by now, so it leaves with ``os._exit(0)``.
    """
    import logging
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
