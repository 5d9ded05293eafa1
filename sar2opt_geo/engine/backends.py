"""Inference backends for :func:`~sar2opt_geo.engine.run_tiled`: torch (CPU or CUDA), ONNX Runtime, OpenVINO.

A backend turns a generator into a *runner*: ``runner(batch) -> output`` on float32 numpy
arrays ``(N, C_in, h, w) -> (N, C_out, h, w)``. :func:`make_runner` builds one.

``"torch"`` (default)
    Eval mode; the article's U-Net is rewritten by
    :func:`~sar2opt_geo.engine.fast_unet.optimise_for_inference` (about 6x faster on CPU,
    exact to 1e-6), other architectures run as they are. ``stochastic=True`` keeps the
    original module (dropout). On CUDA: batches go through pinned host memory with
    non-blocking copies, and ``autocast=True`` runs float16 autocast.
``"onnxruntime"``
    The (rewritten) model is exported in memory with ``torch.onnx.export`` (legacy exporter,
    opset 17, dynamic batch/height/width) and run by an ``InferenceSession`` on the CPU
    execution provider with ``threads`` intra-op threads. Sessions are cached in this process
    per model content (a hash of the weights), never written to disk.
    ``quantize="int8"`` quantises it statically (QDQ, per-channel weights, int8 activations
    calibrated on the first batch of tiles the engine runs): faster on CPUs with VNNI, but
    *not* exact (see benchmarks/README.md for the measured PSNR loss).
``"openvino"``
    The same ONNX graph compiled by OpenVINO for its CPU plugin (needs the ``openvino``
    package: ``pip install openvino``, the ``openvino`` extra), float32 precision forced
    (the plugin would pick bfloat16 on CPUs that have it).

Both ONNX backends export with ``torch.onnx.export``, which needs the ``onnx`` package. A
missing package is a :class:`~sar2opt_geo.errors.ConfigError` naming it and the ``pip install``
line (:func:`check_backend_packages`; the CLI checks before any work, a runner on its first batch).

Deterministic backends other than torch need eval mode: ``stochastic=True`` with them is a
:class:`~sar2opt_geo.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..options import BACKENDS  # the choices, defined once with the translate options
from .fast_unet import optimise_for_inference
from .memory import model_in_channels

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "Runner", "check_backend_packages", "cpu_has_fast_bf16", "make_runner",
           "model_digest", "prepare_module", "resolve_precision"]

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnxruntime", "openvino"]
Quantize = Literal["none", "int8"]


class Runner:
    """``runner(batch)``: ``(N, C, h, w)`` float32 numpy -> ``(N, C_out, h, w)`` float32 numpy.

    Attributes:
        name: what runs, for logs and :class:`~sar2opt_geo.engine.TilingStats` (e.g.
            ``"torch cpu FastUNet"``, ``"onnxruntime int8"``).
        module: the torch module that runs (torch backend) or was exported.
    """

    def __init__(self, name: str, fn: Callable[[np.ndarray], np.ndarray], module: nn.Module) -> None:
        self.name, self._fn, self.module = name, fn, module

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._fn(batch)


def prepare_module(model: nn.Module, *, stochastic: bool = False, optimise: bool = True) -> nn.Module:
    """The module to run: the inference rewrite of ``model`` (eval mode), or ``model`` itself.

    ``model`` itself when ``stochastic`` (its dropout is needed) or ``optimise=False``, or
    when :func:`optimise_for_inference` does not know the architecture.
    """
    if stochastic or not optimise:
        return model
    saved = {m: m.training for m in model.modules()}
    try:
        model.eval()  # BatchNorm statistics are folded: only eval mode can be rewritten
        return optimise_for_inference(model)
    finally:
        for m, training in saved.items():
            m.training = training


def model_digest(module: nn.Module) -> str:
    """A content hash of a module (class name, state-dict names, shapes and values)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ torch


def _torch_runner(module: nn.Module, device: torch.device, autocast: bool, precision: str = "fp32") -> Runner:
    cuda = device.type == "cuda"
    dtype = torch.float16 if autocast else torch.bfloat16 if precision == "bf16" else None

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        if cuda:  # page-locked staging buffer: the host-to-device copy runs as DMA
            x = x.pin_memory().to(device, non_blocking=True)
        ctx = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            y = module(x)
        return y.float().cpu().numpy()

    name = f"torch {device.type} {type(module).__name__}" + (
        " autocast-fp16" if autocast else " autocast-bf16" if precision == "bf16" else "")
    return Runner(name, run, module)


# -------------------------------------------------------------------------------- precision

#: What ``precision`` may be: ``auto`` resolves to one of the others (:func:`resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16")
#: Environment variable that pins what ``auto`` means (``fp32`` or ``bf16``): for clusters of mixed
#: CPUs whose outputs must match, and for test suites that must not depend on the CPU.
PRECISION_ENV = "SAR2OPT_PRECISION"


def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX-BF16 in Linux's
    /proc/cpuinfo flags); False elsewhere, including where that cannot be read."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu", backend: str = "torch") -> str:
    """``fp32`` or ``bf16`` for ``precision`` (``auto``, ``fp32``, ``bf16``).

    ``auto`` is ``bf16`` for the torch backend on a CPU with hardware bfloat16
    (:func:`cpu_has_fast_bf16`): 1.7x faster end to end for the bundled model (3.2x for the
    full-width U-Net) on this project's Xeon (AMX, benchmarks/bench_precision.py),
    validation PSNR unchanged to 0.0001 dB (benchmarks/README.md); ``fp32`` on GPUs, other CPUs
    and the ONNX backends. ``bf16`` asked for explicitly works on any CPU (emulated where the CPU
    lacks it: slower) and CUDA device, torch backend only. The environment variable
    ``SAR2OPT_PRECISION=fp32|bf16`` pins what ``auto`` means.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto" and os.environ.get(PRECISION_ENV) in ("fp32", "bf16"):
        precision = os.environ[PRECISION_ENV]  # pinned for this process and its children
    if precision != "auto":
        if precision == "bf16" and backend != "torch":
            raise ConfigError(f"precision='bf16' needs backend='torch'; {backend} runs float32 (or int8 with quantize)")
        return precision
    dev = torch.device(device)
    return "bf16" if backend == "torch" and dev.type == "cpu" and cpu_has_fast_bf16() else "fp32"


# ----------------------------------------------------------------------------- packages

#: The packages each backend imports (``onnx``: ``torch.onnx.export``), and the extra that installs them.
_BACKEND_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnx", "onnxruntime"), "onnx"),
    "openvino": (("onnx", "openvino"), "openvino"),
}
#: What each extra of setup.cfg installs (the ``openvino`` extra has no ``onnx``).
_EXTRAS: dict[str, tuple[str, ...]] = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino",)}


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except (ImportError, OSError):  # not installed, or installed without its shared libraries
        return False
    return True


def install_hint(missing: list[str] | tuple[str, ...], extra: str | None = None) -> str:
    """``pip install "sar2opt-geo[extra]"`` when that extra installs every ``missing`` package, and the
    plain ``pip install <missing>`` line."""
    plain = "pip install " + " ".join(missing)
    if extra and set(missing) <= set(_EXTRAS.get(extra, ())):
        return f'pip install "sar2opt-geo[{extra}]" (or: {plain})'
    return plain


def check_backend_packages(backend: str) -> None:
    """Raise :class:`~sar2opt_geo.errors.ConfigError` naming the missing package(s) and the
    ``pip install`` line when ``backend`` cannot run in this Python; nothing for ``"torch"``."""
    if backend not in _BACKEND_PACKAGES:
        return
    needed, extra = _BACKEND_PACKAGES[backend]
    missing = [name for name in needed if not _importable(name)]
    if not missing:
        return
    what = " and ".join(missing)
    why = " (torch.onnx.export needs it)" if missing == ["onnx"] else ""
    raise ConfigError(
        f"backend {backend!r} needs the {what} package{'s' if len(missing) > 1 else ''}{why}, not installed in this "
        f"Python: {install_hint(missing, extra)}; or use backend 'torch' (the default)"
    )


# ----------------------------------------------------------------------------- ONNX export

_SESSIONS: dict[tuple, object] = {}
_SESSIONS_LOCK = threading.Lock()


def _onnx_bytes(module: nn.Module, in_channels: int) -> bytes:
    """The eval-mode graph of ``module`` as ONNX bytes (dynamic batch, height, width), in memory."""
    down = int(getattr(module, "downsampling", 16) or 16)
    side = max(64, 2 * down)
    example = torch.zeros(1, in_channels, side, side)
    buf = io.BytesIO()
    saved = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            # torch annotates f as a path; the TorchScript exporter (dynamo=False) also writes to a file object
            torch.onnx.export(
                module.cpu(), (example,), buf,  # type: ignore[arg-type]
                dynamo=False, input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}},
                opset_version=17, do_constant_folding=True,
            )
    finally:
        for m, training in saved.items():
            m.training = training
    return buf.getvalue()


def _quantize_int8(model_bytes: bytes, calibration: np.ndarray) -> bytes:
    """Static QDQ int8 quantisation (per-channel weights, symmetric int8 activations), in memory."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    # onnxruntime.quantization works on files: a private temporary folder, removed at once
    with tempfile.TemporaryDirectory(prefix="sar2opt-quant-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model_bytes)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation only
            pre = src
        quantize_static(
            str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": True},
        )
        return dst.read_bytes()


def _ort_session(data: bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = False  # the arena keeps the largest batch's buffers for the session's life
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass
class _OnnxState:
    """What an ONNX runner keeps between batches."""

    fp32: bytes | None = None  # the fp32 ONNX graph, exported once
    session: Any = None  # an onnxruntime InferenceSession or an OpenVINO CompiledModel (no type stubs)


def _onnx_runner(module: nn.Module, backend: str, quantize: str, threads: int) -> Runner:
    """ONNX Runtime / OpenVINO runner; int8 sessions are built on the first batch (calibration)."""
    digest = model_digest(module)
    key_fp32 = (digest, backend, "none", threads)
    state = _OnnxState()

    def fp32_bytes() -> bytes:
        if state.fp32 is None:
            channels = model_in_channels(module)
            if channels is None:
                raise ConfigError(f"cannot tell the input channels of {type(module).__name__} for the ONNX export; "
                                  "use backend='torch'")
            state.fp32 = _onnx_bytes(module, channels)
        return state.fp32

    def build(batch: np.ndarray):
        key = key_fp32 if quantize == "none" else (digest, backend, quantize, threads)
        with _SESSIONS_LOCK:
            sess = _SESSIONS.get(key)
        if sess is not None:
            return sess
        check_backend_packages(backend)  # one clear line, not an ImportError from deep in the export
        if backend == "openvino":
            sess = _openvino_compiled(fp32_bytes(), threads)
        else:
            data = fp32_bytes() if quantize == "none" else _quantize_int8(fp32_bytes(), np.ascontiguousarray(batch))
            sess = _ort_session(data, threads)
        with _SESSIONS_LOCK:
            if len(_SESSIONS) >= 4:  # a few models per process at most
                _SESSIONS.pop(next(iter(_SESSIONS)))
            _SESSIONS[key] = sess
        return sess

    def run(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        sess = state.session or build(batch)
        state.session = sess
        if backend == "openvino":
            return np.asarray(sess(batch)[0], dtype=np.float32)
        return sess.run(["output"], {"input": batch})[0]

    name = f"{backend} {type(module).__name__}" + (f" {quantize}" if quantize != "none" else "")
    return Runner(name, run, module)


def _openvino_compiled(model_bytes: bytes, threads: int):
    try:
        import openvino as ov
    except ImportError:
        check_backend_packages("openvino")  # raises the one-line ConfigError
        raise
    core = ov.Core()
    model = core.read_model(model=model_bytes)  # bytes of an ONNX graph
    # f32: on CPUs with AVX-512 BF16 / AMX the plugin otherwise runs bfloat16 (measured 1.3e-3 off here)
    config = {"INFERENCE_NUM_THREADS": max(1, threads), "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    return core.compile_model(model, "CPU", config)


# -------------------------------------------------------------------------------- factory


def make_runner(
    model: nn.Module,
    *,
    backend: str = "torch",
    device: torch.device | str = "cpu",
    stochastic: bool = False,
    autocast: bool = False,
    quantize: str = "none",
    optimise: bool = True,
    threads: int | None = None,
    precision: str = "fp32",
) -> Runner:
    """A :class:`Runner` for ``model`` on ``backend`` (see the module docstring).

    Args:
        model: the generator (its mode is not changed; the engine sets modes around the run).
        backend: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
        device: torch device (torch backend; the others run on the CPU).
        stochastic: dropout on (torch backend only).
        autocast: float16 autocast (torch on CUDA only).
        quantize: ``"none"`` or ``"int8"`` (onnxruntime only).
        optimise: use :func:`~sar2opt_geo.engine.fast_unet.optimise_for_inference` (default True).
        threads: intra-op threads for ONNX Runtime / OpenVINO (default ``torch.get_num_threads()``).
        precision: ``fp32`` (default), ``bf16`` (bfloat16 autocast, torch backend) or ``auto``
            (:func:`resolve_precision`).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if quantize not in ("none", "int8"):
        raise ConfigError(f"unknown quantize {quantize!r}; choose none or int8")
    dev = torch.device(device)
    if autocast and dev.type != "cuda":
        raise ConfigError(f"autocast is only supported on CUDA, not on device {str(dev)!r}; drop autocast or use a CUDA device")
    precision = resolve_precision(precision, dev, backend)
    if backend == "torch":
        if quantize != "none":
            raise ConfigError("quantize='int8' needs backend='onnxruntime'; the torch backend runs float32 (or fp16 autocast on CUDA)")
        module = prepare_module(model, stochastic=stochastic, optimise=optimise).to(dev)
        return _torch_runner(module, dev, autocast, precision)
    if stochastic:
        raise ConfigError(f"stochastic mode (dropout on) needs backend='torch'; {backend} runs the eval-mode graph")
    if dev.type != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU; use device='cpu' or backend='torch' for {str(dev)!r}")
    if autocast:
        raise ConfigError("autocast is a torch CUDA option; drop it for the ONNX backends")
    if quantize != "none" and backend != "onnxruntime":
        raise ConfigError(f"quantize='int8' needs backend='onnxruntime', not {backend!r}")
    module = prepare_module(model, stochastic=False, optimise=optimise)
    return _onnx_runner(module, backend, quantize, threads or torch.get_num_threads())
