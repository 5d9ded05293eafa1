"""int8 quantisation (ONNX Runtime, static QDQ) against float32: PSNR loss on the validation pairs, and speed.

Not a test. The bundled SAR model (``s1vh_to_rgb``) is scored with
:func:`sar2opt_geo.training.evaluate.evaluate_generator` on the validation tiles of
``../shared/data/pairs/s1vh_s2rgb_epsg3395`` (default: 050, 063, 076, 142, 156, 168, 262, 273),
whole images cut to a multiple of 16 around the centre, through four runners:

* ``torch original``: the module as loaded (eval mode);
* ``torch rewrite``: :func:`~sar2opt_geo.engine.optimise_for_inference` (exact);
* ``onnxruntime fp32``: the rewrite exported in memory;
* ``onnxruntime int8``: the same graph quantised statically (QDQ, per-channel int8 weights,
  symmetric int8 activations), calibrated on training tiles (the first ``--calibration`` pairs
  that are not validation tiles), never on the tiles it is scored on.

Then the time of one ``--tile`` x ``--tile`` forward pass per runner (after a warm-up), for the
bundled model and for the article's full-width generator (random weights).

Usage::

    python benchmarks/bench_quantize.py
    python benchmarks/bench_quantize.py --tile 512 --json /tmp/q.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR2OPT_DATA", ROOT.parent / "shared" / "data"))
PAIRS = DATA / "pairs" / "s1vh_s2rgb_epsg3395"
VAL = ("050", "063", "076", "142", "156", "168", "262", "273")
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "quantize.json"


class RunnerModule(nn.Module):
    """An engine runner (numpy in, numpy out) seen as a module, for evaluate_generator."""

    def __init__(self, runner) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner(x.detach().cpu().numpy()))


def main(argv: list[str] | None = None) -> int:
    from sar2opt_geo.data.datasets import PairDataset
    from sar2opt_geo.data.pairs import find_pairs
    from sar2opt_geo.engine import make_runner
    from sar2opt_geo.engine.backends import (
        _onnx_bytes,
        _ort_session,
        _quantize_int8,
        prepare_module,
    )
    from sar2opt_geo.models import UNetGenerator
    from sar2opt_geo.models.checkpoint import default_model_path, load_model
    from sar2opt_geo.training.evaluate import evaluate_generator

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=512, help="tile side for the timing, pixels")
    p.add_argument("--calibration", type=int, default=8, help="training pairs used for int8 calibration")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not PAIRS.exists():
        print(f"{PAIRS} not found", file=sys.stderr)
        return 2
    pairs = find_pairs(PAIRS)
    val = [q for q in pairs if q.key in VAL]
    calib_pairs = [q for q in pairs if q.key not in VAL][: a.calibration]
    model, card = load_model(default_model_path("sar"), "cpu")
    val_ds = PairDataset(val, None, random_crops=False)
    calib = np.concatenate([PairDataset(calib_pairs, 256, random_crops=False)[i]["condition"][None].numpy()
                            for i in range(len(calib_pairs))])
    rewrite = prepare_module(model)
    fp32 = make_runner(model, backend="onnxruntime")
    int8_session = _ort_session(_quantize_int8(_onnx_bytes(rewrite, 1), calib), a.threads)

    def int8(batch: np.ndarray) -> np.ndarray:
        return int8_session.run(["output"], {"input": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    runners = {"torch original": model, "torch rewrite": rewrite, "onnxruntime fp32": RunnerModule(fp32),
               "onnxruntime int8": RunnerModule(int8)}
    results: dict = {"model": card.name, "validation_tiles": [q.key for q in val],
                     "calibration_tiles": [q.key for q in calib_pairs], "scores": {}, "timing": []}
    print(f"{card.name} on {len(val)} validation tiles ({', '.join(q.key for q in val)}), int8 calibrated on "
          f"{len(calib_pairs)} training tiles")
    print(f"{'runner':<18} {'PSNR dB':>8} {'SSIM':>7} {'L1':>7}")
    for name, m in runners.items():
        s = evaluate_generator(m, val_ds)
        results["scores"][name] = s
        print(f"{name:<18} {s['psnr']:>8.3f} {s['ssim']:>7.4f} {s['l1']:>7.4f}")
    loss = results["scores"]["onnxruntime fp32"]["psnr"] - results["scores"]["onnxruntime int8"]["psnr"]
    results["int8_psnr_loss_db"] = loss
    print(f"int8 PSNR loss vs fp32: {loss:.3f} dB")

    torch.manual_seed(0)
    full = UNetGenerator(1, 3, width=1.0).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, a.tile, a.tile)).astype(np.float32)
    print(f"\none {a.tile}x{a.tile} forward pass, {a.threads} threads")
    print(f"{'model':<22} {'runner':<18} {'seconds':>8} {'Mpx/s':>7}")
    for mname, net in ((f"{card.name} (w 0.25)", model), ("article U-Net (w 1)", full)):
        rw = prepare_module(net)
        cal = np.random.default_rng(1).uniform(-1, 1, (4, 1, 256, 256)).astype(np.float32) if net is full else calib
        sess8 = _ort_session(_quantize_int8(_onnx_bytes(rw, 1), cal), a.threads)
        r32 = make_runner(net, backend="onnxruntime")
        fns = {
            "torch original": lambda b, n=net: n(torch.from_numpy(b)).numpy(),
            "torch rewrite": lambda b, n=rw: n(torch.from_numpy(b)).numpy(),
            "onnxruntime fp32": r32,
            "onnxruntime int8": lambda b, s8=sess8: s8.run(["output"], {"input": b})[0],
        }
        if importlib.util.find_spec("openvino") is not None:
            fns["openvino fp32"] = make_runner(net, backend="openvino")
        for rname, fn in fns.items():
            with torch.inference_mode():
                fn(x)
                t = time.perf_counter()
                fn(x)
                sec = time.perf_counter() - t
            results["timing"].append({"model": mname, "runner": rname, "seconds": sec, "mpx_s": a.tile**2 / sec / 1e6})
            print(f"{mname:<22} {rname:<18} {sec:>8.3f} {a.tile**2 / sec / 1e6:>7.3f}", flush=True)
    results["load_average"] = os.getloadavg()
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
