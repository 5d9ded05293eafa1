"""bf16 on CPUs that have it (issue 22): what ``precision='auto'`` resolves to, tiling under bf16,
and the pipeline's tag. The suite pins ``auto`` to fp32 (conftest); these tests ask explicitly.

Tolerances: bfloat16 keeps 8 bits of mantissa (relative step 2**-8 = 0.4 %). Measured here, a
tiled bf16 run equals the bf16 whole-image pass exactly (AMX, and AVX2 with
ONEDNN_MAX_CPU_ISA=AVX2: the convolutions accumulate each output pixel in float32 the same way
whatever the tile), and differs from fp32 by 3.4e-4 on average ([-1, 1] scale). The test allows
bf16 rounding of a few intermediate values (0.02 at most, 1e-3 on average: 2.5 and 0.13 uint8
levels) for CPUs or oneDNN versions that block the sums otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from test_inference import run

from sar2opt_geo.engine import TilingConfig, backends
from sar2opt_geo.engine.backends import PRECISIONS, resolve_precision
from sar2opt_geo.errors import ConfigError


def test_precision_choices_are_the_engines():
    from sar2opt_geo.options import PRECISIONS as OPTION_PRECISIONS

    assert OPTION_PRECISIONS == PRECISIONS


def test_auto_is_bf16_only_on_a_cpu_with_hardware_bf16(monkeypatch):
    monkeypatch.delenv("SAR2OPT_PRECISION", raising=False)
    monkeypatch.setattr(backends, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu", backend="onnxruntime") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(backends, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: emulated where the CPU lacks it
    monkeypatch.setenv("SAR2OPT_PRECISION", "bf16")  # pinned for a cluster of mixed CPUs
    assert resolve_precision("auto", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ConfigError, match="needs backend='torch'"):
        resolve_precision("bf16", "cpu", backend="openvino")
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision("fp16", "cpu")


def test_cpu_flags_decide(tmp_path):
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    avx512 = tmp_path / "avx512"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw\n")
    cooper = tmp_path / "cooper"
    cooper.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert backends.cpu_has_fast_bf16(str(amx)) and backends.cpu_has_fast_bf16(str(cooper))
    assert not backends.cpu_has_fast_bf16(str(avx512))  # AVX-512 without BF16: bf16 would be emulated
    assert not backends.cpu_has_fast_bf16(str(tmp_path / "missing"))  # not Linux


def _image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(5)
    return (0.6 * np.sin(x / 9.0) * np.cos(y / 13.0) + 0.3 * rng.standard_normal((h, w))).clip(-1, 1)[None].astype(np.float32)


def _run(model, image, config, precision):
    return run(model, image, config, precision=precision)[0]  # test_inference's harness: checks the streaming contract


def test_bf16_tiles_equal_a_bf16_whole_image_pass_within_bf16_rounding(tiny_generator, one_thread):
    model = tiny_generator()
    image = _image(192, 256)
    tiled = _run(model, image, TilingConfig(tile_size=128, overlap=96, margin=48, batch_size=2), "bf16")
    whole = _run(model, image, TilingConfig(tile_size=512, overlap=96, margin=48), "bf16")
    fp32 = _run(model, image, TilingConfig(tile_size=512, overlap=96, margin=48), "fp32")
    interior = (slice(None), slice(48, -48), slice(48, -48))
    diff = np.abs(tiled - whole)[interior]
    assert diff.max() <= 0.02 and diff.mean() <= 1e-3, (diff.max(), diff.mean())
    against_fp32 = np.abs(whole - fp32)[interior]
    assert 0 < against_fp32.mean() <= 5e-3, against_fp32.mean()  # bf16 ran, and stayed close to fp32


def test_translate_records_the_precision_it_ran(tmp_path):
    from sar2opt_geo import translate
    from sar2opt_geo.samples.synthetic import write_sample_scene

    scene = write_sample_scene(tmp_path / "s.tif", size=64)
    a = translate(scene, tmp_path / "fp32.tif")  # auto, pinned to fp32 by the suite
    b = translate(scene, tmp_path / "bf16.tif", precision="bf16")
    with rasterio.open(a.path) as fa, rasterio.open(b.path) as fb:
        assert fa.tags()["SAR2OPT_PRECISION"] == "fp32" and fb.tags()["SAR2OPT_PRECISION"] == "bf16"
        da, db = fa.read().astype(int), fb.read().astype(int)
    assert np.abs(da - db).mean() < 2.0 and (da != db).any()
