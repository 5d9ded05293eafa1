"""GPU throughput of the engine (not a test; needs CUDA): Mpx/s for the article U-Net, I/O included.

Prepared for a lent GPU machine, one short run: writes a synthetic float32 GeoTIFF scene
(``--size`` px square, default 8192 = 67 Mpx) to ``--work``, then runs
:func:`sar2opt_geo.engine.run_tiled` on ``cuda`` reading it window by window and writing a
float32 LZW GeoTIFF, with the planned tiling (batch sized from ``torch.cuda.mem_get_info``),
once in float32 and once with float16 autocast; pinned host memory and non-blocking copies are
the engine's (``engine.backends``). Reports seconds and Mpx/s of scene pixels, end to end, and
the model-only rate on one planned batch. Goal in issue 13: >= 50 Mpx/s with I/O.

Usage::

    python benchmarks/bench_gpu.py                     # 8192 x 8192, fp32 and autocast
    python benchmarks/bench_gpu.py --size 4096 --json /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "gpu.json"


def main(argv: list[str] | None = None) -> int:
    import rasterio
    from rasterio.transform import from_origin

    from sar2opt_geo.engine import make_runner, plan_tiling, prepare_module, run_tiled
    from sar2opt_geo.models import UNetGenerator

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--work", type=Path, default=Path("/tmp/sar2opt-bench-gpu"))
    p.add_argument("--max-memory-mb", type=float, default=8000, help="host budget for the plan (default 8000)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    a.work.mkdir(parents=True, exist_ok=True)
    scene = a.work / "scene.tif"
    n = a.size
    profile = {"driver": "GTiff", "height": n, "width": n, "count": 1, "dtype": "float32", "crs": "EPSG:32631",
               "transform": from_origin(500000, 4800000, 10, 10), "tiled": True, "blockxsize": 512, "blockysize": 512}
    with rasterio.open(scene, "w", **profile) as dst:
        for r0 in range(0, n, 1024):
            h = min(1024, n - r0)
            r = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            c = np.arange(n, dtype=np.float32)[None, :]
            block = (0.6 * np.sin(r / 37) * np.cos(c / 53) + 0.3 * np.sin((r + c) / 11)).astype(np.float32)
            dst.write(block, 1, window=rasterio.windows.Window(col_off=0, row_off=r0, width=n, height=h))
    torch.manual_seed(0)
    model = UNetGenerator(1, 3, width=1.0).eval()
    results = {"gpu": torch.cuda.get_device_name(dev), "torch": torch.__version__, "size": n, "runs": []}
    print(f"{results['gpu']}, scene {n} x {n} ({n * n / 1e6:.0f} Mpx)")
    print(f"{'mode':<10} {'tile':>5} {'batch':>5} {'seconds':>8} {'Mpx/s':>7} {'model Mpx/s':>11}")
    for autocast in (False, True):
        plan = plan_tiling(prepare_module(model).to(dev), n, n, max_memory_mb=a.max_memory_mb, device=dev, autocast=autocast)
        cfg = plan.config
        runner = make_runner(model, device=dev, autocast=autocast)
        x = np.zeros((cfg.batch_size, 1, cfg.tile_size, cfg.tile_size), np.float32)
        with torch.inference_mode():
            runner(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(3):
                runner(x)
            torch.cuda.synchronize()
            model_rate = 3 * x.size / (time.perf_counter() - t) / 1e6
        out = a.work / "out.tif"
        with rasterio.open(scene) as src:
            prof = src.profile | {"count": 3, "compress": "lzw"}
            with rasterio.open(out, "w", **prof) as dst:
                t = time.perf_counter()
                run_tiled(model, lambda w: src.read(window=w), n, n, lambda w, y: dst.write(y, window=w), cfg,
                          device=dev, autocast=autocast)
                seconds = time.perf_counter() - t
        mode = "fp16 amp" if autocast else "fp32"
        row = {"mode": mode, "tile": cfg.tile_size, "overlap": cfg.overlap, "batch": cfg.batch_size, "seconds": seconds,
               "mpx_s": n * n / seconds / 1e6, "model_mpx_s": model_rate, "compute_factor": plan.compute_factor}
        results["runs"].append(row)
        print(f"{mode:<10} {cfg.tile_size:>5} {cfg.batch_size:>5} {seconds:>8.1f} {row['mpx_s']:>7.1f} {model_rate:>11.1f}", flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
