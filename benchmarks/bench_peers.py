"""Benchmark sar2opt against geoai-py's ``predict_geotiff`` (not a test): seconds, peak RSS, exactness.

Same scene, same model, same threads, each run in a fresh subprocess, tools alternated:

* **scene**: a 1024 x 1024 window of the real Landsat-8 scene in ``../shared/data``, its
  luminance scaled to the model domain [-1, 1], written as a float32 GeoTIFF (its CRS and
  transform kept); both tools read it window by window (synthetic field if the data is absent).
* **model**: the article's full-width U-Net (3.48 M parameters), random weights with seed 0 and
  random BatchNorm statistics, saved as a state dict; geoai's process builds the same class from
  ``sar2opt_geo/models/generator.py`` (torch only; the package's ``__init__`` is not run) and loads it.
* **sar2opt**: :func:`sar2opt_geo.engine.run_tiled` at its defaults (tiling planned from the
  memory budget, torch backend with the exact inference rewrite), reading the GeoTIFF and writing
  a float32 LZW GeoTIFF block by block; optional extra configurations (old fixed 512/128/4,
  other backends).
* **geoai**: ``geoai.inference.predict_geotiff(model, scene, out, tile_size, overlap, batch_size,
  num_classes=3, blend_mode, device="cpu")`` at its defaults (256/64, batch 4, spline) and at
  512/128. geoai-py lives in its own virtual environment (``benchmarks/.peers-venv``, gitignored,
  not a project dependency), made with::

      python3 -m venv benchmarks/.peers-venv
      benchmarks/.peers-venv/bin/pip install torch==2.13.0     # the local CPU wheel
      benchmarks/.peers-venv/bin/pip install --no-deps geoai-py
      benchmarks/.peers-venv/bin/pip install rasterio tqdm     # all predict_geotiff imports

  ``geoai/__init__.py`` imports most of the package (torchvision, timm, leafmap ...): the child
  process shims it with an empty ``geoai`` package whose ``__path__`` is the real one, and a
  ``geoai.utils`` stub with the one function ``predict_geotiff`` imports (``get_device``), so only
  ``geoai/inference.py`` itself runs.

Measured per run: ``seconds`` (the tool's call, from the child: the model is loaded and the
process warm; reading, inference and writing included), ``process_s`` (the whole subprocess,
imports included), ``peak_rss_mb`` (the child's own ``VmHWM`` at the end, which includes the
interpreter, torch and the model), and max |difference| against one whole-image forward pass of
the original module over the unpadded scene (computed once, in its own subprocess), split into
the **interior** (pixels at least ``--ring`` = 64 px from the scene border: beyond the U-Net's
60 px one-sided receptive field, so no tool's padding choice can reach them) and the **border
ring** (the rest; there the whole-image pass sees zero padding, sar2opt reflected context, geoai
zero padding or zero-filled tiles).

Memory runs: sar2opt at its defaults on synthetic scenes of 4 and 64 Mpx (width 4096), generated
window by window, output discarded; the same full-width model; peak RSS against the budget.

Usage::

    python benchmarks/bench_peers.py                      # full run (several minutes, needs a quiet machine)
    python benchmarks/bench_peers.py --quick              # 256 x 256 scene, width-1/4 model, small memory runs
    python benchmarks/bench_peers.py --repeats 3 --extra 512/128/4,backend=onnxruntime
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data"))
LANDSAT = DATA / "optical" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
PEERS_PY = ROOT / "benchmarks" / ".peers-venv" / "bin" / "python"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "peers.json"


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _load_generator_class():
    """``UNetGenerator`` without running ``sar2opt_geo/__init__.py`` (the geoai venv lacks the package's deps).

    Empty ``sar2opt_geo`` and ``sar2opt_geo.models`` packages whose ``__path__`` are the real
    folders, so ``models/generator.py`` and what it imports relatively (``errors.py``, stdlib
    only) load from their files.
    """
    import importlib
    import types

    if "sar2opt_geo.models.generator" not in sys.modules:
        for name, folder in (("sar2opt_geo", ROOT / "sar2opt_geo"), ("sar2opt_geo.models", ROOT / "sar2opt_geo" / "models")):
            if name not in sys.modules:
                pkg = types.ModuleType(name)
                pkg.__path__ = [str(folder)]
                sys.modules[name] = pkg
    return importlib.import_module("sar2opt_geo.models.generator").UNetGenerator


def _model(state: Path, width: float, cls=None):
    import torch

    g = (cls or _load_generator_class())(1, 3, width=width)
    g.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
    return g.eval()


# ----------------------------------------------------------------------------- children


def child_prepare(work: Path, size: int, width: float) -> dict:
    """Scene GeoTIFF, model state dict, whole-image reference (in this subprocess)."""
    import rasterio
    import torch
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    torch.set_num_threads(2)
    work.mkdir(parents=True, exist_ok=True)
    if LANDSAT.exists():
        with rasterio.open(LANDSAT) as src:
            win = Window(col_off=0, row_off=0, width=min(size, src.width), height=min(size, src.height))
            blue, green, red = src.read(window=win).astype(np.float32)
            crs, transform = src.crs, src.window_transform(win)
        lum = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        lo, hi = np.percentile(lum, [1, 99])
        image = np.clip(2 * (lum - lo) / (hi - lo) - 1, -1, 1).astype(np.float32)
        source = f"Landsat-8 luminance {image.shape[0]}x{image.shape[1]} (window at 0, 0)"
    else:
        r, c = np.mgrid[0:size, 0:size].astype(np.float32)
        image = (0.6 * np.sin(r / 37) * np.cos(c / 53) + 0.3 * np.sin((r + c) / 11)).astype(np.float32)
        crs, transform = "EPSG:32631", from_origin(500000, 4800000, 10, 10)
        source = f"synthetic {size}x{size}"
    profile = {"driver": "GTiff", "height": image.shape[0], "width": image.shape[1], "count": 1, "dtype": "float32",
               "crs": crs, "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(work / "scene.tif", "w", **profile) as dst:
        dst.write(image, 1)
    torch.manual_seed(0)
    g = _load_generator_class()(1, 3, width=width)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(g.state_dict(), work / "model.pt")
    h, w = image.shape
    x = torch.from_numpy(np.pad(image, ((0, -h % 16), (0, -w % 16)), mode="edge"))[None, None]
    t = time.perf_counter()
    with torch.inference_mode():
        ref = g.eval()(x)[0, :, :h, :w].numpy()
    np.save(work / "whole.npy", ref)
    return {"source": source, "height": h, "width": w, "whole_seconds": time.perf_counter() - t,
            "parameters": sum(p.numel() for p in g.parameters())}


def child_sar2opt(work: Path, out: Path, width: float, spec: dict) -> dict:
    import rasterio
    import torch
    from rasterio.windows import Window

    from sar2opt_geo.engine import TilingConfig, run_tiled
    from sar2opt_geo.models import UNetGenerator

    torch.set_num_threads(2)
    # the package's own class: the engine rewrites only sar2opt_geo.models.UNetGenerator itself
    model = _model(work / "model.pt", width, UNetGenerator)
    config = None
    if spec.get("tile"):
        config = TilingConfig(tile_size=spec["tile"], overlap=spec["overlap"], batch_size=spec["batch"])
    t = time.perf_counter()
    with rasterio.open(work / "scene.tif") as src:
        profile = src.profile | {"count": 3, "dtype": "float32", "compress": "lzw", "tiled": True,
                                 "blockxsize": 512, "blockysize": 512}
        with rasterio.open(out, "w", **profile) as dst:

            def read(win: Window) -> np.ndarray:
                return src.read(window=win)

            def write(win: Window, a: np.ndarray) -> None:
                dst.write(a, window=win)

            stats = run_tiled(model, read, src.height, src.width, write, config,
                              backend=spec.get("backend", "torch"), quantize=spec.get("quantize", "none"),
                              max_memory_mb=spec.get("max_memory_mb", 1500))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "tiles": stats.tiles, "tile_shape": list(stats.tile_shape), "grid": list(stats.grid),
            "batches": stats.batches, "backend": stats.backend, "peak_rss_mb": _vmhwm_mb()}


def child_geoai(work: Path, out: Path, width: float, spec: dict) -> dict:
    import importlib.util
    import types

    import torch

    torch.set_num_threads(2)
    # shim: an empty geoai package (the real __init__ imports torchvision, timm, leafmap ...)
    real = Path(importlib.util.find_spec("geoai").submodule_search_locations[0])
    pkg = types.ModuleType("geoai")
    pkg.__path__ = [str(real)]
    utils = types.ModuleType("geoai.utils")
    utils.get_device = lambda: torch.device("cpu")
    sys.modules["geoai"], sys.modules["geoai.utils"] = pkg, utils
    from importlib.metadata import version

    from geoai.inference import predict_geotiff

    model = _model(work / "model.pt", width)
    t = time.perf_counter()
    predict_geotiff(model, str(work / "scene.tif"), str(out), tile_size=spec["tile"], overlap=spec["overlap"],
                    batch_size=spec["batch"], num_classes=3, blend_mode=spec.get("blend", "spline"),
                    preprocess_fn=lambda a: a, device="cpu", verbose=False)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_rss_mb": _vmhwm_mb(), "geoai_version": version("geoai-py")}


def child_memory(height: int, width: int, model_width: float, budget: float) -> dict:
    import torch

    from sar2opt_geo.engine import run_tiled

    torch.set_num_threads(2)
    torch.manual_seed(0)
    from sar2opt_geo.models import UNetGenerator

    model = UNetGenerator(1, 3, width=model_width).eval()

    def read(win):
        r = np.arange(win.row_off, win.row_off + win.height, dtype=np.float32)[:, None]
        c = np.arange(win.col_off, win.col_off + win.width, dtype=np.float32)[None, :]
        return (0.6 * np.sin(r / 37.0) * np.cos(c / 53.0) + 0.3 * np.sin((r + c) / 11.0))[None].astype(np.float32)

    total = [0.0]

    def write(win, a):
        total[0] += float(np.nansum(a[:, ::97, ::89]))

    t = time.perf_counter()
    stats = run_tiled(model, read, height, width, write, max_memory_mb=budget)
    return {"height": height, "width": width, "mpx": height * width / 1e6, "seconds": time.perf_counter() - t,
            "tiles": stats.tiles, "tile_shape": list(stats.tile_shape), "peak_rss_mb": _vmhwm_mb(),
            "budget_mb": budget, "backend": stats.backend}


# ----------------------------------------------------------------------------- parent


def run_child(python: str, args: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen([python, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed ({proc.returncode}):\n{err[-3000:]}")
    row = json.loads(out.strip().splitlines()[-1])
    row["process_s"] = time.perf_counter() - t
    return row


def exactness(out: Path, whole: np.ndarray, ring: int) -> dict:
    import rasterio

    with rasterio.open(out) as src:
        y = src.read().astype(np.float32)
    d = np.abs(y - whole)
    h, w = whole.shape[1:]
    r = np.minimum(np.arange(h), h - 1 - np.arange(h))
    c = np.minimum(np.arange(w), w - 1 - np.arange(w))
    interior = np.minimum.outer(r, c) >= ring
    return {"max_diff_interior": float(d[:, interior].max()), "max_diff_ring": float(d[:, ~interior].max()),
            "mean_diff_interior": float(d[:, interior].mean())}


def parse_spec(text: str) -> dict:
    """``512/128/4`` or ``auto``, then ``,key=value`` (backend, quantize, blend, max_memory_mb)."""
    parts = text.split(",")
    spec: dict = {}
    if parts[0] != "auto":
        t, o, b = (int(v) for v in parts[0].split("/"))
        spec.update(tile=t, overlap=o, batch=b)
    for kv in parts[1:]:
        k, v = kv.split("=")
        spec[k] = float(v) if k == "max_memory_mb" else v
    return spec


def label(tool: str, spec: dict) -> str:
    tiling = f"{spec['tile']}/{spec['overlap']}/b{spec['batch']}" if spec.get("tile") else "auto"
    extra = "".join(f" {k}={v}" for k, v in spec.items() if k not in ("tile", "overlap", "batch"))
    return f"{tool} {tiling}{extra}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="256x256 scene, width-1/4 model, 0.25 and 1 Mpx memory runs")
    p.add_argument("--size", type=int, default=None, help="scene side in pixels (default 1024; quick 256)")
    p.add_argument("--width", type=float, default=None, help="generator width (default 1.0; quick 0.25)")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds (default 2)")
    p.add_argument("--ring", type=int, default=64, help="border ring width in pixels for the exactness split (default 64)")
    p.add_argument("--sar2opt", default="auto", help="sar2opt configurations, ';'-separated (default auto = planned)")
    p.add_argument("--extra", default="512/128/4", help="more sar2opt configurations, ';'-separated ('' for none)")
    p.add_argument("--geoai", default="256/64/4;512/128/4", help="geoai configurations, ';'-separated")
    p.add_argument("--memory-mpx", default=None, help="memory-run scene sizes in Mpx at width 4096 (default 4,64; quick 0.25,1)")
    p.add_argument("--memory-budget", type=float, default=1500, help="max_memory_mb for the memory runs (default 1500)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-peers", action="store_true", help="only the memory runs")
    p.add_argument("--work", type=Path, default=Path("/tmp/sar2opt-bench-peers"), help="scratch folder")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    size = a.size or (256 if a.quick else 1024)
    width = a.width or (0.25 if a.quick else 1.0)

    if a.child:
        kind, *rest = a.child
        if kind == "prepare":
            row = child_prepare(Path(rest[0]), int(rest[1]), float(rest[2]))
        elif kind in ("sar2opt", "geoai"):
            fn = child_sar2opt if kind == "sar2opt" else child_geoai
            row = fn(Path(rest[0]), Path(rest[1]), float(rest[2]), json.loads(rest[3]))
        else:
            row = child_memory(int(rest[0]), int(rest[1]), float(rest[2]), float(rest[3]))
        print(json.dumps(row))
        return 0

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_start": os.getloadavg(),
                    "cpu": cpu_model(), "threads": 2},
        "scene": {}, "runs": [], "memory": [],
    }
    a.work.mkdir(parents=True, exist_ok=True)
    if not a.skip_peers:
        if not PEERS_PY.exists():
            print(f"no {PEERS_PY}: make the geoai venv first (see the module docstring)", file=sys.stderr)
            return 2
        prep = run_child(sys.executable, ["--child", "prepare", str(a.work), str(size), str(width)], env)
        results["scene"] = prep
        whole = np.load(a.work / "whole.npy")
        print(f"scene: {prep['source']}, model width {width} ({prep['parameters']:,} parameters), "
              f"whole-image pass {prep['whole_seconds']:.2f} s; interior = >= {a.ring} px from the border")
        jobs = [("sar2opt", parse_spec(s)) for s in a.sar2opt.split(";") if s]
        jobs += [("sar2opt", parse_spec(s)) for s in a.extra.split(";") if s]
        jobs += [("geoai", parse_spec(s)) for s in a.geoai.split(";") if s]
        print(f"{'run':<44} {'rep':>3} {'seconds':>8} {'process s':>9} {'peak MB':>8} {'interior':>9} {'ring':>9}")
        for rep in range(a.repeats):
            order = jobs if rep % 2 == 0 else list(reversed(jobs))  # alternate, and reverse every other round
            for tool, spec in order:
                out = a.work / f"out-{tool}.tif"
                out.unlink(missing_ok=True)
                python = sys.executable if tool == "sar2opt" else str(PEERS_PY)
                row = run_child(python, ["--child", tool, str(a.work), str(out), str(width), json.dumps(spec)], env)
                row.update(exactness(out, whole, a.ring), tool=tool, spec=spec, label=label(tool, spec), repeat=rep,
                           mpx_s=prep["height"] * prep["width"] / row["seconds"] / 1e6)
                results["runs"].append(row)
                print(f"{row['label']:<44} {rep:>3} {row['seconds']:>8.2f} {row['process_s']:>9.1f} {row['peak_rss_mb']:>8.0f}"
                      f" {row['max_diff_interior']:>9.1e} {row['max_diff_ring']:>9.1e}", flush=True)
        summary = {}
        for row in results["runs"]:
            summary.setdefault(row["label"], []).append(row)
        results["summary"] = []
        print(f"\n{'run':<44} {'seconds (min-max)':>18} {'Mpx/s':>7} {'peak MB':>8} {'interior':>9} {'ring':>9}")
        for name, rows in summary.items():
            s = [r["seconds"] for r in rows]
            best = {"label": name, "seconds_min": min(s), "seconds_max": max(s), "mpx_s": max(r["mpx_s"] for r in rows),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
                    "max_diff_interior": max(r["max_diff_interior"] for r in rows),
                    "max_diff_ring": max(r["max_diff_ring"] for r in rows)}
            results["summary"].append(best)
            print(f"{name:<44} {min(s):>8.2f}-{max(s):<9.2f} {best['mpx_s']:>7.3f} {best['peak_rss_mb']:>8.0f}"
                  f" {best['max_diff_interior']:>9.1e} {best['max_diff_ring']:>9.1e}")
    if not a.skip_memory:
        sizes = [float(s) for s in (a.memory_mpx or ("0.25,1" if a.quick else "4,64")).split(",")]
        print(f"\nmemory: sar2opt defaults, max_memory_mb={a.memory_budget:.0f}, model width {width}, scene width 4096 px")
        print(f"{'scene':>14} {'Mpx':>6} {'tile':>6} {'tiles':>6} {'seconds':>8} {'peak MB':>8} {'budget':>7}")
        for mpx in sizes:
            h = max(1, round(mpx * 1e6 / 4096))
            row = run_child(sys.executable, ["--child", "memory", str(h), "4096", str(width), str(a.memory_budget)], env)
            results["memory"].append(row)
            print(f"{str(h) + 'x4096':>14} {row['mpx']:>6.1f} {row['tile_shape'][0]:>6} {row['tiles']:>6} {row['seconds']:>8.1f}"
                  f" {row['peak_rss_mb']:>8.0f} {row['budget_mb']:>7.0f}", flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {a.json}")
    return 0




if __name__ == "__main__":
    sys.exit(main())
