"""``sar2opt evaluate``: PSNR / SSIM / L1 of a generator on paired data, beside the
constant-colour baseline (thin shell over :mod:`sar2opt_geo.training.evaluate`)."""

from __future__ import annotations

import argparse
import json
import logging
import math
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
  80 m, 160 m  PSNR and SSIM of both images averaged over 80 m / 160 m blocks (8 / 16 px at
        10 m): is the land-cover layout right, whatever the texture? (n/a: image under 11 blocks)
  grad r 2x2  grad r of both luminances averaged over 2x2 px first (20 m); the "input" row is the
        model's own input (the SAR as the model sees it) scored the same way: an output below it
        removes structure its input carries
  contrast  std of output luminance / std of real luminance (below 1: haze; 0: flat colour)
The constant-colour baseline scores an image of one colour everywhere: the training set's
mean colour recorded in the model card (else the evaluated data's own mean, flagged).
Inputs are read the way the model card says: a scene-percentile model (the bundled SAR one)
gets dB pairs (SEN12MS-CR, BigEarthNet) as linear power / scene 99th percentile, as the
inference engine feeds it, and is scored against optical bands / their 99th percentile.
By default every pair is scored (--split none); --split area|scene|auto scores only the
held-out part, exactly as training split it.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .train import add_data_options

    p = subparsers.add_parser("evaluate", help="PSNR/SSIM/L1/gradient r of a generator vs the constant-colour baseline",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="generator checkpoint (.safetensors with a model card); 'sar' or 'gray' for the bundled ones")
    p.add_argument("data", nargs="+", help="dataset folder(s) (layouts as in `sar2opt train --help`); several "
                   "folders are scored one by one, one row each (e.g. your validation area and out-of-region pairs)")
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
    p.add_argument("--keep-structure", action="store_true",
                   help="score the output of translate --keep-structure (the SAR's band-pass detail added)")
    p.add_argument("--structure-strength", type=float, default=None, metavar="K",
                   help="with --keep-structure: its strength (default: translate's, 1)")
    p.add_argument("--per-image", action="store_true",
                   help="also print one line per image: grad r 2x2 of the model and of its input, contrast, PSNR, SSIM")
    add_device(p)
    add_progress(p)
    add_verbosity(p)
    p.set_defaults(func=run)
    return p


def _fmt(v: float | None, spec: str) -> str:
    return "n/a".rjust(len(format(0.0, spec))) if v is None or math.isnan(v) else format(v, spec)


def _folders_and_pairs(args: argparse.Namespace) -> list[tuple[str, list, dict]]:
    """``(folder, pairs to score, description)`` per data folder.

    With a split, folders of one layout are split over their union (as ``sar2opt train`` does
    with several folders) and each folder's row holds its share of the held-out pairs; folders
    of different layouts are split one by one.
    """
    from ..errors import DatasetError
    from .train import build_datasets, folder_layout

    folders = args.data if isinstance(args.data, list) else [args.data]
    if args.split != "none" and len(folders) > 1 and len({folder_layout(args, Path(f)) for f in folders}) == 1:
        _train, val, _layout, desc = build_datasets(argparse.Namespace(**{**vars(args), "data": folders}))
        held = val.pairs if val is not None else []
        out = []
        for f in folders:
            root = Path(os.path.abspath(f))  # not resolve(): tiles may be links into another folder
            mine = [p for p in held if root in Path(os.path.abspath(p.target.files[0])).parents]
            if not mine:
                log.warning("%s: the split over all folders holds out none of its pairs: no row for it", f)
                continue
            out.append((f, mine, {**desc, "root": str(root), "split": f"{args.split} (over all folders)"}))
        if not out:
            raise DatasetError(f"{', '.join(folders)}: the split left no pairs to evaluate; use --split none")
        return out
    out = []
    for f in folders:
        train_ds, val_ds, _layout, desc = build_datasets(argparse.Namespace(**{**vars(args), "data": f}))
        data = val_ds if args.split != "none" else train_ds
        if data is None:
            raise DatasetError(f"{f}: the split left no pairs to evaluate; use --split none")
        out.append((f, data.pairs, desc))
    return out


def _score_folder(args: argparse.Namespace, pairs: list, desc: dict, loaded, device, progress) -> dict:
    """The result dict of one dataset folder (the JSON schema of one row)."""
    from ..data import PairDataset
    from ..data.pairs import pairs_in_card_domain
    from ..training import METRIC_NOTES, constant_baseline, evaluate_generator

    card = loaded.card
    scaling = card.output.scaling if card.output else ""
    data = PairDataset(pairs_in_card_domain(pairs, str(card.input.normalisation), scaling),
                       args.val_crop, random_crops=False)  # whole images or centre crops, no randomness
    pixel_m = float(card.input.pixel_spacing_m or 10.0)
    per_image: list[dict[str, float]] = []
    post = None
    if args.keep_structure:
        from ..engine.structure import DEFAULT_STRENGTH, structure_step

        strength = DEFAULT_STRENGTH if args.structure_strength is None else args.structure_strength
        post = structure_step(card.input, strength)
    scores = evaluate_generator(loaded.module, data, device, batch_size=args.batch_size, progress=progress,
                                pixel_m=pixel_m, rows_out=per_image, postprocess=post)
    colour = card.training.get("mean_colour")
    source, label = "training set mean colour (model card)", "flat colour (training mean)"
    if colour is None or len(colour) != data.out_channels:
        colour, source = data.mean_target().tolist(), "mean colour of the evaluated data itself (card has none)"
        label = "flat colour (this data's mean)"  # a stronger baseline than the training mean: it has seen the answer
    baseline = constant_baseline(colour, data, pixel_m)
    keys = [k for k in scores if k != "images" and not k.startswith("input_")]
    return {
        "model": str(loaded.path),
        "card_hash": loaded.card_hash,
        "model_name": card.name,
        "data": {k: desc[k] for k in ("root", "layout", "mode", "split")},
        "pairs": [p.key for p in data.pairs],
        "images": scores["images"],
        "model_metrics": {k: scores[k] for k in keys},
        "baseline_constant_colour": {k: baseline[k] for k in keys},
        "input_metrics": {"grad_r2": scores.get("input_grad_r2"), "db_grad_r2": scores.get("input_db_grad_r2")},
        "per_image": [{"pair": p.key, **{k: None if math.isnan(v) else v for k, v in row.items()}}
                      for p, row in zip(data.pairs, per_image, strict=True)],
        "baseline_colour": [float(c) for c in colour],
        "baseline_colour_source": source,
        "baseline_label": label,
        "pixel_spacing_m": pixel_m,
        "keep_structure": None if post is None else strength,
        "notes": METRIC_NOTES,
    }


_COLUMNS = (("psnr", "PSNR dB", "8.2f"), ("ssim", "SSIM", "6.3f"), ("psnr_80m", "PSNR 80m", "8.2f"),
            ("ssim_80m", "SSIM 80m", "8.3f"), ("psnr_160m", "PSNR 160m", "9.2f"), ("ssim_160m", "SSIM 160m", "9.3f"),
            ("l1", "L1", "7.4f"), ("grad_r", "grad r", "6.3f"), ("grad_r2", "grad r 2x2", "10.3f"),
            ("contrast", "contrast", "8.3f"))


def _print_table(results: list[dict], split: str) -> None:
    first = results[0]
    ks = f", --keep-structure {first['keep_structure']:g}" if first.get("keep_structure") is not None else ""
    print(f"{first['model_name']} (card {first['card_hash']}){ks}, split {split}, scale (y+1)/2 in [0, 1]; 80/160 m = "
          f"block means at {first['pixel_spacing_m']:g} m pixels:")
    width = max(len(Path(str(r["data"]["root"])).name) for r in results) + 2
    label_w = max(30, *(len(r["baseline_label"]) + 2 for r in results))
    head = " ".join(h.rjust(len(format(0.0, f))) for _, h, f in _COLUMNS)
    print(f"  {'data':{width}s}{'images':>6s}  {'':{label_w}s}{head}")
    for r in results:
        name = Path(str(r["data"]["root"])).name
        rows = (("model", r["model_metrics"]), (r["baseline_label"], r["baseline_constant_colour"]),
                ("input (as the model sees it)", {"grad_r2": r["input_metrics"]["grad_r2"]}),
                ("input in dB", {"grad_r2": r["input_metrics"]["db_grad_r2"]}))
        for i, (label, m) in enumerate(rows):
            cells = " ".join(_fmt(m.get(k), f) if k in m else " " * len(format(0.0, f)) for k, _, f in _COLUMNS)
            lead = f"{name:{width}s}{r['images']:6d}" if i == 0 else " " * (width + 6)
            print(f"  {lead}  {label:{label_w}s}{cells}")


def run(args: argparse.Namespace) -> int:
    from ..models.loading import load
    from ..training import resolve_device

    device = resolve_device(args.device)
    loaded = load(args.model, device)
    card = loaded.card
    if args.mode is None:
        args.mode = "colorize" if card.input.quantity == "gray" else "sar"
    if args.sar_bands is None and args.mode == "sar":
        args.sar_bands = list(card.input.bands)
    if args.split == "none":
        args.val_fraction = 0.0
    folders = _folders_and_pairs(args)
    progress, close = make_progress(args.progress, "evaluate")
    try:
        results = []
        for i, (_folder, pairs, desc) in enumerate(folders):
            def part(f: float, msg: str, i: int = i) -> None:
                progress((i + f) / len(folders), msg)
            results.append(_score_folder(args, pairs, desc, loaded, device, part))
    finally:
        close()
    # one folder: its result at the top level (the schema before several folders); several: a list
    result = dict(results[0]) if len(results) == 1 else {"model": results[0]["model"], "folders": results}
    if args.output:
        from ..io.atomic import atomic_file

        with atomic_file(args.output) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
    if args.progress == "json":
        from ._common import emit_json

        emit_json({"event": "done", "outputs": {"OUTPUT": args.output} if args.output else {}, **result})
    else:
        _print_table(results, args.split)
        if args.per_image:
            print(f"  {'pair':40s} {'PSNR dB':>8s} {'SSIM':>6s} {'contrast':>8s} {'grad r 2x2':>10s} {'input':>6s} "
                  f"{'in dB':>6s}")
            for r in results:
                for row in r["per_image"]:
                    print(f"  {row['pair'][-40:]:40s} {row['psnr']:8.2f} {row['ssim']:6.3f} {row['contrast']:8.3f} "
                          f"{_fmt(row['grad_r2'], '10.3f')} {_fmt(row.get('input_grad_r2'), '6.3f')} "
                          f"{_fmt(row.get('input_db_grad_r2'), '6.3f')}")
        if args.output:
            print(f"  written to {args.output}")
    return 0
