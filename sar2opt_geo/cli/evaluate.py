"""``sar2opt evaluate``: PSNR / SSIM / L1 of a generator on paired data, beside the
constant-colour baseline (thin shell over :mod:`sar2opt_geo.training.evaluate`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from ._common import add_device, add_progress, add_verbosity, make_progress

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
Score a generator checkpoint on paired data (same layouts as `sar2opt train`).

Metrics compare (y+1)/2 with the target on the [0, 1] scale (data range 1.0), per image
(whole images, cut to a multiple of 16 px around the centre, or --val-crop centre crops),
averaged over images:
  PSNR  10 log10(1 / MSE), dB
  SSIM  Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03 (Wang et al. 2004, like skimage with
        gaussian_weights=True, use_sample_covariance=False)
  L1    mean absolute difference
  grad r  Pearson r between 3x3 Sobel gradient magnitudes of output and real luminance
        (0.299 R + 0.587 G + 0.114 B), 1-px border left out: does the output put edges where
        the real image has them? (~0 for a blurred average; 0 for the constant colour)
The constant-colour baseline scores an image of one colour everywhere: the training set's
mean colour recorded in the model card (else the evaluated data's own mean, flagged).
By default every pair is scored (--split none); --split area|scene|auto scores only the
held-out part, exactly as training split it.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .train import add_data_options

    p = subparsers.add_parser("evaluate", help="PSNR/SSIM/L1/gradient r of a generator vs the constant-colour baseline",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="generator checkpoint (.safetensors with a model card); 'sar' or 'gray' for the bundled ones")
    p.add_argument("data", help="dataset folder (layouts as in `sar2opt train --help`)")
    add_data_options(p)
    p.set_defaults(split="none", mode=None)
    for action in p._actions:  # the shared options state train's defaults; evaluate's differ
        if action.dest == "split":
            action.help = ("score only the held-out part, split as training split it: area (spatial block per "
                           "scene), scene (whole scenes) or auto; none scores every pair (default: none)")
        elif action.dest == "mode":
            action.help = ("sar: SAR -> RGB pairs; colorize: (gray, RGB) pairs from the optical side "
                           "(default: from the model card: colorize for a gray-input model, else sar)")
    p.add_argument("--output", "-o", default=None, metavar="JSON", help="also write the results to this JSON file")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default: 1)")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..models.loading import load
    from ..training import (
        METRIC_NOTES,
        METRICS,
        constant_baseline,
        evaluate_generator,
        resolve_device,
    )
    from .train import build_datasets

    device = resolve_device(args.device)
    loaded = load(args.model, device)
    model, card, model_path = loaded.module, loaded.card, loaded.path
    if args.mode is None:
        args.mode = "colorize" if card.input.quantity == "gray" else "sar"
    if args.sar_bands is None and args.mode == "sar":
        args.sar_bands = list(card.input.bands)
    if args.split == "none":
        args.val_fraction = 0.0
    train_ds, val_ds, _layout, desc = build_datasets(args, crop_size=None)
    data = val_ds if args.split != "none" else train_ds
    if args.split == "none":  # whole images or centre crops, no randomness
        from ..data import PairDataset

        data = PairDataset(train_ds.pairs, args.val_crop, random_crops=False)
    if data is None:
        from ..errors import DatasetError

        raise DatasetError(f"{args.data}: the split left no pairs to evaluate; use --split none")
    progress, close = make_progress(args.progress, "evaluate")
    try:
        scores = evaluate_generator(model, data, device, batch_size=args.batch_size, progress=progress)
    finally:
        close()
    colour = card.training.get("mean_colour")
    source, label = "training set mean colour (model card)", "flat colour (training mean)"
    if colour is None or len(colour) != data.out_channels:
        colour, source = data.mean_target().tolist(), "mean colour of the evaluated data itself (card has none)"
        label = "flat colour (this data's mean)"  # a stronger baseline than the training mean: it has seen the answer
    baseline = constant_baseline(colour, data)
    result = {
        "model": str(model_path),
        "card_hash": loaded.card_hash,
        "model_name": card.name,
        "data": {k: desc[k] for k in ("root", "layout", "mode", "split")},
        "pairs": [p.key for p in data.pairs],
        "images": scores["images"],
        "model_metrics": {k: scores[k] for k in METRICS},
        "baseline_constant_colour": {k: baseline[k] for k in METRICS},
        "baseline_colour": [float(c) for c in colour],
        "baseline_colour_source": source,
        "baseline_label": label,
        "notes": METRIC_NOTES,
    }
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    m, b = result["model_metrics"], result["baseline_constant_colour"]
    if args.progress == "json":
        from ._common import emit_json

        emit_json({"event": "done", "outputs": {"OUTPUT": args.output} if args.output else {}, **result})
    else:
        print(f"{card.name} on {result['images']} images of {args.data} (split {args.split}), scale (y+1)/2 in [0, 1]:")
        print(f"  {'':30s} {'PSNR dB':>8s} {'SSIM':>7s} {'L1':>7s} {'grad r':>7s}")
        for name, row in (("model", m), (label, b)):
            print(f"  {name:30s} {row['psnr']:8.2f} {row['ssim']:7.3f} {row['l1']:7.4f} {row['grad_r']:7.3f}")
        if args.output:
            print(f"  written to {args.output}")
    return 0
