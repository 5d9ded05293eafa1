"""fp32 against bf16 (``--precision``): speed, achieved GFLOP/s against the machine's matmul peak,
and the change of the validation metrics. Prints a table and writes ``results/precision.json``.

    .venv/bin/python benchmarks/bench_precision.py            # 2048^2 px, 3 rounds
    .venv/bin/python benchmarks/bench_precision.py --quick    # 512^2 px, 1 round, no metrics

Speed: the engine (``run_tiled`` at its defaults: planned tiling, exact inference rewrite) on a
synthetic sample scene in the model domain, for the bundled SAR model and for the article's
full-width U-Net (random weights, seed 0), fp32 and bf16 alternated, 2 torch threads, model loaded
before timing. GFLOP/s: the FLOPs ``torch.utils.flop_counter`` counts for one forward pass of the
tiles the run computes, divided by the run's seconds, beside ``torch.mm`` of 2048^2 matrices on
the same threads (fp32, and bf16 under autocast): the machine's own matmul rate. Metrics: the
bundled SAR model evaluated on the held-out Los Angeles pairs (the trainer's split) and on the 49
more LA/Texas pairs (all), fp32 and bf16 autocast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import cpu_model

from sar2opt_geo.engine import run_tiled
from sar2opt_geo.engine.backends import cpu_has_fast_bf16, prepare_module
from sar2opt_geo.models import UNetGenerator
from sar2opt_geo.models.loading import load

DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data"))


def matmul_gflops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if dtype_name == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        torch.mm(a, b)
        t = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        s = (time.perf_counter() - t) / repeats
    return 2 * n**3 / s / 1e9


def forward_flops(module: torch.nn.Module, shape: tuple[int, int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 1, *shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return float(counter.get_total_flops())


def engine_run(model: torch.nn.Module, image: np.ndarray, precision: str) -> tuple[float, object]:
    _, h, w = image.shape
    out = np.empty((3, h, w), np.float32)

    def read(win):
        return image[:, int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)]

    def write(win, arr):
        out[:, int(win.row_off):int(win.row_off + win.height), int(win.col_off):int(win.col_off + win.width)] = arr

    t = time.perf_counter()
    stats = run_tiled(model, read, h, w, write, None, precision=precision)
    return time.perf_counter() - t, stats


def speed(name: str, model: torch.nn.Module, size: int, rounds: int) -> list[dict]:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(0, 0.4, (1, size, size)), -1, 1).astype(np.float32)
    engine_run(model, image[:, :256, :256], "fp32")  # warm-up (threads, allocator)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    stats = None
    for r in range(rounds):
        for precision in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            s, stats = engine_run(model, image, precision)
            times[precision].append(s)
    flops = forward_flops(prepare_module(model, stochastic=False), stats.tile_shape) * (stats.tiles - stats.tiles_skipped)
    rows = []
    for precision, ts in times.items():
        best = min(ts)
        rows.append({"model": name, "precision": precision, "scene_px": size * size, "tile": int(stats.tile_shape[0]),
                     "tiles": stats.tiles, "seconds": ts, "mpx_per_s": size * size / best / 1e6,
                     "gflops_per_s": flops / best / 1e9})
    return rows


def train_steps(widths: tuple[float, ...] = (0.25, 1.0), batch: int = 8, size: int = 256) -> list[dict]:
    """Seconds per training step (forward, L1 loss, backward, Adam) of the U-Net, fp32 and bf16
    autocast (``sar2opt train --amp bf16``), best of 3 after a warm-up step."""
    rows = []
    for width in widths:
        torch.manual_seed(0)
        g = UNetGenerator(1, 3, width=width).train()
        opt = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
        x, y = torch.randn(batch, 1, size, size), torch.randn(batch, 3, size, size)
        for precision in ("fp32", "bf16"):
            times = []
            for _ in range(4):
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = (g(x) - y).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.perf_counter() - t)
            rows.append({"width": width, "batch": batch, "size": size, "precision": precision,
                         "seconds_per_step": min(times[1:])})
    return rows


def metrics(quick: bool) -> list[dict]:
    if quick:
        return []
    from sar2opt_geo.cli.main import build_parser
    from sar2opt_geo.cli.train import build_datasets
    from sar2opt_geo.data import PairDataset
    from sar2opt_geo.training import evaluate_generator

    loaded = load("sar", "cpu")
    model = prepare_module(loaded.module, stochastic=False)
    rows = []
    for folder, split in (("s1vh_s2rgb_epsg3395", "auto"), ("s1vh_s2rgb_epsg3395_more", "none")):
        root = DATA / "pairs" / folder
        if not root.is_dir():
            continue
        args = build_parser().parse_args(["evaluate", "sar", str(root), "--split", split])
        args.mode, args.sar_bands = "sar", list(loaded.card.input.bands)
        if split == "none":
            args.val_fraction = 0.0
        train, val, _, _ = build_datasets(args, crop_size=None)
        data = val if split != "none" else PairDataset(train.pairs, None, random_crops=False)
        scores = {}
        for precision in ("fp32", "bf16"):
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
            with ctx:
                scores[precision] = evaluate_generator(model, data, torch.device("cpu"))
        rows.append({"data": folder, "split": split, "images": scores["fp32"]["images"],
                     **{f"{k}_{p}": float(scores[p][k]) for k in ("psnr", "ssim", "l1", "grad_r") for p in scores}})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size, rounds = (512, 1) if args.quick else (2048, 3)
    peak = {"fp32": matmul_gflops("fp32"), "bf16": matmul_gflops("bf16")}
    torch.manual_seed(0)
    full = UNetGenerator(1, 3).eval()
    rows = speed("bundled s1vh_to_rgb (width 0.25)", load("sar", "cpu").module, size, rounds)
    rows += speed("article U-Net (full width, random)", full, size, rounds)
    quality = metrics(args.quick)
    training = [] if args.quick else train_steps()
    print(f"{cpu_model()}; hardware bf16: {cpu_has_fast_bf16()}; torch {torch.__version__}, {args.threads} threads")
    print(f"torch.mm 2048^2: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print(f"{'model':38s} {'prec':5s} {'Mpx':>5s} {'tile':>5s} {'seconds (runs)':>22s} {'Mpx/s':>7s} {'GFLOP/s':>8s} {'% of mm':>8s}")
    for r in rows:
        ts = "/".join(f"{s:.2f}" for s in r["seconds"])
        print(f"{r['model']:38s} {r['precision']:5s} {r['scene_px'] / 1e6:5.1f} {r['tile']:5d} {ts:>22s} "
              f"{r['mpx_per_s']:7.2f} {r['gflops_per_s']:8.1f} {100 * r['gflops_per_s'] / peak[r['precision']]:7.1f}%")
    for t in training:
        print(f"train step, U-Net width {t['width']}, {t['batch']} x {t['size']}^2: {t['precision']} "
              f"{t['seconds_per_step']:.2f} s")
    for q in quality:
        print(f"{q['data']} (split {q['split']}, {q['images']} images): " + ", ".join(
            f"{k} fp32 {q[k + '_fp32']:.4f} bf16 {q[k + '_bf16']:.4f} ({q[k + '_bf16'] - q[k + '_fp32']:+.4f})"
            for k in ("psnr", "ssim", "l1", "grad_r")))
    out = ROOT / "benchmarks" / "results" / "precision.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": cpu_model(), "hardware_bf16": cpu_has_fast_bf16(), "threads": args.threads,
                               "torch": torch.__version__, "matmul_gflops": peak, "speed": rows, "metrics": quality, "training": training,
                               "when": time.strftime("%Y-%m-%d %H:%M")}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
