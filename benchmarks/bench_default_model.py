"""Benchmark (not a test): end-to-end ``sar2opt_geo.translate`` throughput of the bundled SAR model.

What is timed: the whole public call — reading the scene, the streaming percentile pass the
card's normalisation needs, tiled inference (default tiles 512 px, overlap 128), writing the
Cloud Optimized GeoTIFF with overviews — on a generated **synthetic** Sentinel-1 VH-like
scene (:func:`sar2opt_geo.samples.synthetic.write_sample_scene`, float32 dB, 10 m; default 2048 x 2048 =
4.2 Mpx). Throughput is scene Mpx per wall-clock second (``time.perf_counter``), best of
``--repeats`` after one warm-up run on a small scene. Other checkpoints (``--model PATH``,
repeatable) are timed the same way for comparison, e.g. the article's U-Net at full width.

The issue's target: the default model translates at >= 0.5 Mpx/s end to end on 2 cores. Only
quote numbers measured on a quiet machine.

Usage::

    python benchmarks/bench_default_model.py                       # bundled model, 2 threads, 4.2 Mpx
    python benchmarks/bench_default_model.py --quick               # 512 px scene, 1 repeat (smoke run)
    python benchmarks/bench_default_model.py --model unet_w1.safetensors --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _machine import cpu_model

import sar2opt_geo
from sar2opt_geo.models.checkpoint import card_hash, default_model_path, load_model
from sar2opt_geo.samples.synthetic import write_sample_scene

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "default_model.json"




def bench(model_path: Path, scene: Path, work: Path, repeats: int) -> dict:
    module, card = load_model(model_path)
    n_params = sum(p.numel() for p in module.parameters())
    seconds = []
    for i in range(repeats):
        t0 = time.perf_counter()
        res = sar2opt_geo.translate(scene, work / f"out_{i}.tif", (module, card), device="cpu")
        seconds.append(time.perf_counter() - t0)
        (work / f"out_{i}.tif").unlink()
    mpx = res.width * res.height / 1e6
    return {"model": str(model_path), "card_hash": card_hash(model_path), "name": card.name,
            "architecture": card.architecture, "architecture_args": card.architecture_args, "parameters": n_params,
            "scene_mpx": round(mpx, 3), "seconds": [round(s, 2) for s in seconds],
            "mpx_per_s": round(mpx / min(seconds), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048, help="scene side in pixels (default 2048 = 4.2 Mpx)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per model; the best counts (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--model", action="append", type=Path, default=[], help="extra checkpoint to time (repeatable)")
    ap.add_argument("--quick", action="store_true", help="512 px scene, 1 repeat: a smoke run, not a measurement")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    args = ap.parse_args()
    if args.quick:
        args.size, args.repeats = 512, 1
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sar2opt-bench-") as tmp:
        work = Path(tmp)
        scene = write_sample_scene(work / "scene_synthetic_vh_db.tif", size=args.size, seed=0)
        warm = write_sample_scene(work / "warm_synthetic_vh_db.tif", size=256, seed=1)
        for path in [default_model_path("sar"), *args.model]:
            sar2opt_geo.translate(warm, work / "warm.tif", str(path), device="cpu")  # warm-up: imports, caches
            rows.append(bench(Path(path), scene, work, args.repeats))
    result = {"benchmark": "translate end to end, synthetic Sentinel-1 VH dB scene", "size_px": args.size,
              "threads": args.threads, "repeats": args.repeats, "quick": args.quick, "cpu": cpu_model(),
              "torch": torch.__version__, "sar2opt_geo": sar2opt_geo.__version__, "results": rows}
    print(f"translate, {args.size} x {args.size} px synthetic VH scene, {args.threads} threads, best of {args.repeats}:")
    print(f"  {'model':40s} {'arch':14s} {'params':>9s} {'Mpx/s':>7s}")
    for r in rows:
        print(f"  {Path(r['model']).name:40s} {r['architecture']:14s} {r['parameters']:9d} {r['mpx_per_s']:7.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"  written to {args.json}")


if __name__ == "__main__":
    main()
