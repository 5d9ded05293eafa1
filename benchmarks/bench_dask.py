"""Benchmark (not a test): one scene split into row bands on a Dask LocalCluster, by band count.

What it measures, on a **synthetic** Sentinel-1 VH-like dB scene
(:func:`sar2opt_geo.samples.synthetic.write_sample_scene`, ``--size`` px square, 10 m) and the article's
generator (``--width`` 1.0: 3.48 M parameters, random weights and BatchNorm statistics, the card
of the bundled Sentinel-1 model: VH, scene percentile, 10 m):

1. ``translate`` of the whole scene in this process (torch with ``--threads`` threads): the
   reference file and the one-process time.
2. A ``LocalCluster`` of ``--workers`` processes, one thread each (how ``sar2opt batch`` runs):
   start-up, and the first model load in every worker (reported apart: paid once per batch).
3. For each band count in ``--bands``: the batch's own tasks (``plan_scene_task`` ->
   ``band_task`` per band -> ``assemble_task``, submitted as ``sar2opt batch`` does), timed per
   phase: plan (scene statistics), bands (wall, and the sum of the bands' own seconds),
   assembly (VRT -> COG). ``dup`` is the extra tiles the cuts cost (tile rows run by both
   neighbours), ``speed-up`` is the wall time of 1 band on 1 worker over this one,
   ``same`` says whether the file is byte-identical to the one-process translate.
4. Peak RSS of each worker process (``VmHWM``).

Per-Mpx costs (seconds per Mpx of the model grid, one thread) come out of the 1-band run; the
written estimate for large jobs in docs/BATCH.md is made from them.

Usage::

    python benchmarks/bench_dask.py                         # 4096 px scene (16.8 Mpx), bands 1,2,4, 2 workers
    python benchmarks/bench_dask.py --quick                 # 1024 px scene, width 1/4, bands 1,2
    python benchmarks/bench_dask.py --size 2048 --bands 1,2 --workers 2 --json /tmp/dask.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "dask.json"




def _load() -> float:
    return os.getloadavg()[0]


def _vmhwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_model(path: Path, width: float, seed: int = 0) -> Path:
    """The article's generator at ``width``, random weights and BatchNorm statistics, with the
    bundled Sentinel-1 model's card (VH, scene percentile, 10 m)."""
    import dataclasses

    from sar2opt_geo.models import UNetGenerator
    from sar2opt_geo.models.checkpoint import (
        default_model_path,
        read_card,
        save_generator,
    )

    card = read_card(default_model_path("sar"))
    args = {**card.architecture_args, "width": width}
    card = dataclasses.replace(card, name=f"random-article-w{width:g}", architecture_args=args)
    torch.manual_seed(seed)
    g = UNetGenerator(args["in_channels"], args["out_channels"], width=width)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return save_generator(g.eval(), card, path)


def _task(scene: Path, out: Path, model: Path, opts, h: str):
    from sar2opt_geo.batch import CropTask

    return CropTask(1, out.stem, -1, str(scene), str(out), None, "", None, False, str(model), opts, h, None)


def run_split(client, scene: Path, out: Path, model: Path, opts, bands: int) -> dict:
    """Plan -> bands -> assembly on ``client``, as ``sar2opt batch --split`` submits them; timed."""
    from distributed import wait

    from sar2opt_geo.batch import Record, assemble_task, band_task, plan_scene_task

    task = _task(scene, out, model, opts, f"bench{bands}")
    t0 = time.perf_counter()
    plan = client.submit(plan_scene_task, task, bands, pure=False).result()
    if isinstance(plan, Record):
        raise SystemExit(f"planning failed: {plan.reason}")
    t_plan = time.perf_counter()
    futures = [client.submit(band_task, task, plan, k, pure=False) for k in range(len(plan.rows))]
    wait(futures)
    results = [f.result() for f in futures]
    bad = [r for r in results if isinstance(r, Record)]
    if bad:
        raise SystemExit(f"a band failed: {bad[0].reason}")
    t_bands = time.perf_counter()
    rec = client.submit(assemble_task, task, plan, pure=False).result()
    if rec.status != "done":
        raise SystemExit(f"assembly failed: {rec.reason}")
    t_end = time.perf_counter()
    return {
        "bands": len(plan.rows), "rows": [list(r) for r in plan.rows],
        "plan_s": t_plan - t0, "bands_wall_s": t_bands - t_plan, "assemble_s": t_end - t_bands, "wall_s": t_end - t0,
        "band_s": [r.seconds for r in results], "band_tiles": [r.tiles for r in results],
        "tiles": sum(r.tiles for r in results),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=4096, help="scene side in pixels (10 m), default 4096")
    p.add_argument("--width", type=float, default=1.0, help="generator width (1.0 = the article's), default 1.0")
    p.add_argument("--bands", default="1,2,4", help="band counts, default 1,2,4")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each), default 2")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the one-process translate, default 2")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="1024 px scene, width 0.25, bands 1,2")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (scene, outputs)")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.width, args.bands = 1024, 0.25, "1,2"
    band_counts = [int(b) for b in args.bands.split(",")]

    from distributed import Client, LocalCluster

    from sar2opt_geo import TranslateOptions, translate
    from sar2opt_geo.samples.synthetic import write_sample_scene

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_dask-"))
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__,
               "load_before": _load()}
    try:
        scene = write_sample_scene(work / f"synthetic_s1_vh_db_{args.size}.tif", args.size)
        model = make_model(work / "model.safetensors", args.width)
        opts = TranslateOptions(tile_size=args.tile, overlap=args.overlap, batch_size=args.batch, device="cpu")
        mpx = args.size * args.size / 1e6

        t = time.perf_counter()
        ref = translate(scene, work / "one.tif", model, opts)
        one_s = time.perf_counter() - t
        print(f"one process ({args.threads} threads): {one_s:.1f} s, {ref.tiles} tiles, {one_s / mpx:.2f} s/Mpx")

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        client.run(lambda m=str(model): __import__("sar2opt_geo.models.loading").models.loading.load_model_cached(m, "cpu")
                   and None)
        warm_s = time.perf_counter() - t
        runs = []
        try:
            for n in band_counts:
                out = work / f"split{n}" / "scene.tif"
                out.parent.mkdir()
                r = run_split(client, scene, out, model, opts, n)
                r["same"] = out.read_bytes() == ref.path.read_bytes()
                runs.append(r)
                print(f"{n} band(s): {r['wall_s']:.1f} s (plan {r['plan_s']:.1f}, bands {r['bands_wall_s']:.1f}, "
                      f"assemble {r['assemble_s']:.1f}), identical: {r['same']}")
            rss = client.run(_vmhwm_mb)
        finally:
            client.close()
            cluster.close()
        base = next((r for r in runs if r["bands"] == 1), runs[0])
        for r in runs:
            r["speedup"] = base["wall_s"] / r["wall_s"]
            r["dup"] = r["tiles"] / ref.tiles - 1
        costs = {  # seconds per Mpx of the model grid, one thread, from the 1-band run
            "statistics_s_per_mpx": base["plan_s"] / mpx,
            "inference_s_per_mpx": sum(base["band_s"]) / mpx,
            "assembly_s_per_mpx": base["assemble_s"] / mpx,
        }
        machine["load_after"] = _load()
        result = {
            "machine": machine, "scene": {"size_px": args.size, "mpx": mpx, "synthetic": True},
            "model": {"architecture": "unet_article", "width": args.width, "weights": "random"},
            "tiling": {"tile": args.tile, "overlap": args.overlap, "batch": args.batch, "whole_tiles": ref.tiles},
            "one_process": {"threads": args.threads, "seconds": one_s},
            "cluster": {"workers": args.workers, "start_s": start_s, "first_model_load_s": warm_s,
                        "worker_peak_rss_mb": sorted(rss.values())},
            "runs": runs, "costs": costs,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    print()
    print(f"scene {args.size} x {args.size} px ({mpx:.1f} Mpx, synthetic), article U-Net width {args.width:g}, "
          f"tiles {args.tile}/{args.overlap}, batch {args.batch}; {machine['cpu']}, {machine['cores']} cores, "
          f"load {machine['load_before']:.1f} -> {machine['load_after']:.1f}")
    print(f"one process, {args.threads} threads: {one_s:.1f} s; LocalCluster of {args.workers} x 1 thread: start "
          f"{start_s:.1f} s, first model load {warm_s:.1f} s; worker peak RSS "
          f"{', '.join(f'{v:.0f}' for v in sorted(rss.values()))} MB")
    print()
    print("| bands | wall s | plan s | bands s (wall) | bands s (sum) | assemble s | tiles | dup | speed-up | same |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['bands']} | {r['wall_s']:.1f} | {r['plan_s']:.1f} | {r['bands_wall_s']:.1f} | "
              f"{sum(r['band_s']):.1f} | {r['assemble_s']:.1f} | {r['tiles']} | {r['dup']:.0%} | "
              f"{r['speedup']:.2f} | {'yes' if r['same'] else 'NO'} |")
    print()
    print("per Mpx of the model grid, one thread: " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")
    return 0 if all(r["same"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
