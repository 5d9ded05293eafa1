"""Benchmark the tiling engine (not a test): throughput against one whole-image pass, and peak memory.

Part 1, throughput: the article's full-width generator (3.48 M parameters, random weights)
on a ~1.5 Mpx input (a luminance window of the real Landsat-8 scene when ../shared/data is
there, else a synthetic field), run once as a single whole-image forward pass and once per
tile configuration through :func:`sar2opt_geo.engine.run_tiled`. Reports Mpx/s of scene
pixels and the ratio tiled / whole. Each measurement is preceded by one warm-up pass of the
same shape; times are ``time.perf_counter``.

Part 2, memory: the same synthetic scene at two sizes with the same width (default 4 Mpx =
1024 x 4096 and 64 Mpx = 16384 x 4096), narrow generator (width 1/8), each in a fresh
subprocess that reads its own peak RSS. The scene is generated window by window and the
output is discarded block by block, so the process holds only what the engine holds.

Peak RSS is ``VmHWM`` from ``/proc/self/status``, not ``getrusage().ru_maxrss``: on Linux
``ru_maxrss`` survives ``fork`` + ``exec``, so a child started by a parent that has just
run the full-width whole-image pass reports the *parent's* peak (we measured 5059 MB for
both scene sizes that way). The memory runs also go first, while the parent is small.

Usage::

    python benchmarks/bench_tiling.py                  # full run (several minutes on 2 cores)
    python benchmarks/bench_tiling.py --quick          # smaller input and scenes
    python benchmarks/bench_tiling.py --threads 1 --json /tmp/tiling.json --configs 256/96,512/128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sar2opt_geo.engine import TilingConfig, run_tiled, tile_grid
from sar2opt_geo.models import UNetGenerator

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data"))
LANDSAT = DATA / "optical" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "tiling.json"


def generator(width: float, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    g = UNetGenerator(1, 3, width=width)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return g.eval()


def synthetic(row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
    """A smooth field in [-1, 1] defined everywhere: the 'same scene' at any size."""
    r = np.arange(row_off, row_off + height, dtype=np.float32)[:, None]
    c = np.arange(col_off, col_off + width, dtype=np.float32)[None, :]
    return (0.6 * np.sin(r / 37.0) * np.cos(c / 53.0) + 0.3 * np.sin((r + c) / 11.0))[None].astype(np.float32)


def load_input(height: int, width: int) -> tuple[np.ndarray, str]:
    if LANDSAT.exists():
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(LANDSAT) as src:
            h, w = min(height, src.height), min(width, src.width)
            blue, green, red = src.read(window=Window(col_off=0, row_off=0, width=w, height=h)).astype(np.float32)
        lum = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        lo, hi = np.percentile(lum, [1, 99])
        return np.clip(2 * (lum - lo) / (hi - lo) - 1, -1, 1)[None].astype(np.float32), f"Landsat-8 luminance {h}x{w}"
    return synthetic(0, 0, height, width), f"synthetic {height}x{width}"


def whole_pass_seconds(model: torch.nn.Module, image: np.ndarray) -> float:
    _, h, w = image.shape
    x = torch.from_numpy(np.pad(image, ((0, 0), (0, -h % 16), (0, -w % 16)), mode="reflect"))[None]
    with torch.inference_mode():
        model(x)  # warm-up
        t = time.perf_counter()
        model(x)
        return time.perf_counter() - t


def tiled_seconds(model: torch.nn.Module, image: np.ndarray, config: TilingConfig) -> tuple[float, dict]:
    _, h, w = image.shape
    grid = tile_grid(h, w, config)
    with torch.inference_mode():  # warm-up: one batch of the tile shape
        model(torch.zeros((min(config.batch_size, len(grid)), 1, *grid.tile_shape)))
    sink = np.zeros(3, dtype=np.float64)

    def read(win):
        return image[:, win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]

    def write(win, a):
        sink[:] += np.nansum(a, axis=(1, 2))

    t = time.perf_counter()
    stats = run_tiled(model, read, h, w, write, config)
    seconds = time.perf_counter() - t
    tile_px = len(grid) * grid.tile_shape[0] * grid.tile_shape[1]
    return seconds, {"tiles": stats.tiles, "grid": list(stats.grid), "compute_factor": tile_px / (h * w)}


def memory_child(height: int, width: int, tile: int, overlap: int, batch: int, threads: int) -> None:
    """Run in a subprocess: one tiled pass over a synthetic scene; print a JSON line."""
    torch.set_num_threads(threads)
    model = generator(0.125)
    setup_rss_kb = _status_kb("VmRSS")
    checksum = [0.0]

    def read(win):
        return synthetic(win.row_off, win.col_off, win.height, win.width)

    def write(win, a):
        checksum[0] += float(np.nansum(a[:, :: 97, :: 89]))

    t = time.perf_counter()
    stats = run_tiled(model, read, height, width, write, TilingConfig(tile_size=tile, overlap=overlap, batch_size=batch))
    seconds = time.perf_counter() - t
    peak_kb = _status_kb("VmHWM")  # this process's peak RSS, kB
    print(json.dumps({
        "height": height, "width": width, "mpx": height * width / 1e6, "tiles": stats.tiles,
        "seconds": seconds, "setup_rss_mb": setup_rss_kb / 1024, "peak_rss_mb": peak_kb / 1024,
        "engine_mb": (peak_kb - setup_rss_kb) / 1024, "checksum": checksum[0],
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in kB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status: this benchmark's memory part needs Linux")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="768x1024 throughput input, 1 and 16 Mpx memory scenes")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write results (default {DEFAULT_JSON})")
    p.add_argument("--configs", default="256/96,512/128,1024/128", help="tile/overlap pairs in pixels")
    p.add_argument("--size", default=None, help="throughput input HxW (default 1024x1536, quick 768x1024)")
    p.add_argument("--memory-width", type=int, default=4096, help="scene width for the memory runs, pixels")
    p.add_argument("--memory-mpx", default=None, help="two scene sizes in Mpx (default 4,64; quick 1,16)")
    p.add_argument("--memory-tile", default="512/128", help="tile/overlap for the memory runs")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-child", nargs=6, type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_child:
        memory_child(*a.memory_child)
        return 0

    torch.set_num_threads(a.threads)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": a.threads,
            "python": platform.python_version(), "load_average_start": os.getloadavg(),
        },
        "throughput": [], "memory": [],
    }
    if not a.skip_memory:
        sizes = [float(s) for s in (a.memory_mpx or ("1,16" if a.quick else "4,64")).split(",")]
        t, o = map(int, a.memory_tile.split("/"))
        print(f"peak memory, generator width 1/8, tiles {t}/{o}, batch {a.batch}, scene width {a.memory_width} px")
        print(f"{'scene':>14} {'Mpx':>6} {'tiles':>6} {'seconds':>8} {'setup MB':>9} {'peak MB':>8} {'engine MB':>10}")
        for mpx in sizes:
            height = max(1, round(mpx * 1e6 / a.memory_width))
            cmd = [sys.executable, __file__, "--memory-child", str(height), str(a.memory_width), str(t), str(o), str(a.batch), str(a.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = json.loads(out)
            results["memory"].append(row)
            print(f"{str(height) + 'x' + str(a.memory_width):>14} {row['mpx']:>6.1f} {row['tiles']:>6} {row['seconds']:>8.1f} "
                  f"{row['setup_rss_mb']:>9.0f} {row['peak_rss_mb']:>8.0f} {row['engine_mb']:>10.0f}")
    if not a.skip_throughput:
        h, w = map(int, (a.size or ("768x1024" if a.quick else "1024x1536")).split("x"))
        image, source = load_input(h, w)
        h, w = image.shape[1:]
        model = generator(1.0)
        whole = whole_pass_seconds(model, image)
        whole_mpxs = h * w / whole / 1e6
        results["throughput"].append({"input": source, "mode": "whole image", "seconds": whole, "mpx_s": whole_mpxs, "ratio": 1.0})
        print(f"\nthroughput, article generator (width 1), {source}, {a.threads} torch threads")
        print(f"{'mode':>14} {'tiles':>6} {'compute':>8} {'seconds':>8} {'Mpx/s':>7} {'ratio':>6}")
        print(f"{'whole image':>14} {1:>6} {1.0:>8.2f} {whole:>8.2f} {whole_mpxs:>7.3f} {1.0:>6.2f}")
        for spec in a.configs.split(","):
            t, o = map(int, spec.split("/"))
            config = TilingConfig(tile_size=t, overlap=o, batch_size=a.batch)
            seconds, info = tiled_seconds(model, image, config)
            mpxs = h * w / seconds / 1e6
            row = {"input": source, "mode": f"tiled {t}/{o}", "seconds": seconds, "mpx_s": mpxs, "ratio": mpxs / whole_mpxs, **info}
            results["throughput"].append(row)
            print(f"{row['mode']:>14} {info['tiles']:>6} {info['compute_factor']:>8.2f} {seconds:>8.2f} {mpxs:>7.3f} {row['ratio']:>6.2f}")
        del model, image
    previous = json.loads(a.json.read_text()) if a.json.exists() else {}
    for section, skipped in (("throughput", a.skip_throughput), ("memory", a.skip_memory)):
        if skipped and previous.get(section):  # keep the last measured section
            results[section] = previous[section]
            results["machine"][f"{section}_from_previous_run"] = previous.get("machine", {})
    results["machine"]["load_average_end"] = os.getloadavg()
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
