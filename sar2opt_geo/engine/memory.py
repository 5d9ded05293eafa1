"""Measured memory: what the machine can give now, and a model's peak activation bytes per pixel.

:func:`available_memory_mb` reads ``MemAvailable`` (``/proc/meminfo``) and the cgroup's limit;
:func:`activation_bytes_per_pixel` measures a model once per architecture and device (one probe
forward pass: live-tensor peak on CPU, ``torch.cuda.max_memory_allocated`` on CUDA), cached per
process. Used by :mod:`sar2opt_geo.engine.planner` to choose the tiling.
"""

from __future__ import annotations

import logging
import threading
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..models.downsampling import model_downsampling

__all__ = [
    "activation_bytes_per_pixel",
    "available_memory_mb",
    "live_tensor_peak_bytes",
    "model_in_channels",
    "process_status_mb",
]

logger = logging.getLogger(__name__)

_PROBES: dict[tuple, float] = {}
_PROBE_LOCK = threading.Lock()


def process_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cgroup_free_mb() -> float | None:
    """``memory.max - memory.current`` of this process's cgroup (v2, or v1's limit/usage), MB; None if unlimited."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            mount, names = "/sys/fs/cgroup", ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            mount, names = "/sys/fs/cgroup/memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        for root in (mount + path.rstrip("/"), mount):  # the process's own group, else the mount's (in a container)
            try:
                with open(f"{root}/{names[0]}") as f:
                    limit = f.read().strip()
                with open(f"{root}/{names[1]}") as f:
                    used = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if limit == "max" or not limit.isdigit() or int(limit) >= 2**60:
                return None
            return max(0.0, (int(limit) - used) / 2**20)
    return None


def available_memory_mb() -> float | None:
    """Memory the machine can give this process now, MB: ``MemAvailable`` (Linux ``/proc/meminfo``),
    or the cgroup's free memory where that is smaller; None where neither is known."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) / 1024
                    break
    except OSError:
        pass
    cg = _cgroup_free_mb()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def _probe_key(model: nn.Module, device: torch.device, extra: tuple) -> tuple:
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return (type(model).__qualname__, shapes, device.type, *extra)


def model_in_channels(model: nn.Module) -> int | None:
    """The model's input channels: its ``in_channels``, else its first convolution's; None if neither."""
    value = getattr(model, "in_channels", None)
    if value:
        return int(value)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def activation_bytes_per_pixel(model: nn.Module, device: torch.device | str = "cpu", *, autocast: bool = False) -> float:
    """Peak activation memory of one forward pass per input pixel (bytes), measured once per architecture.

    ``model`` is the module that will run (e.g. the inference rewrite). CPU: the larger of
    the peak RSS growth (``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs``; Linux)
    and the peak of live tensor bytes (counted with a ``TorchDispatchMode``) over one forward
    pass of a ``P x P`` zero tile, ``P = max(512, 2 * downsampling)``. The RSS figure sees
    what torch's allocator and oneDNN really touch; the tensor count is a floor where the
    allocator reuses pages the process already holds. CUDA:
    ``torch.cuda.max_memory_allocated`` around the same pass. Cached per (class, parameter
    shapes, device type). A model with a numeric ``activation_bytes_per_pixel`` attribute
    (:class:`~sar2opt_geo.engine.FastUNet`) is taken at its word on the CPU, without a probe.
    """
    dev = torch.device(device)
    known = getattr(model, "activation_bytes_per_pixel", None)  # a model that knows its own (FastUNet)
    if isinstance(known, (int, float)) and dev.type == "cpu":
        return float(known)
    key = _probe_key(model, dev, (autocast,))
    with _PROBE_LOCK:
        if key in _PROBES:
            return _PROBES[key]
    d = model_downsampling(model)
    side = max(512, 2 * d)
    x = torch.zeros((1, model_in_channels(model) or 1, side, side))
    saved = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.inference_mode():
            if dev.type == "cuda":
                x = x.to(dev)
                torch.cuda.synchronize(dev)
                before = torch.cuda.memory_allocated(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                with torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
                    model(x)
                torch.cuda.synchronize(dev)
                value = (torch.cuda.max_memory_allocated(dev) - before) / (side * side)
            else:
                value = _cpu_probe(model, x)
    finally:
        for m, training in saved.items():
            m.training = training
    logger.debug("activation memory of %s: %.0f bytes per pixel (probe %d px)", type(model).__name__, value, side)
    with _PROBE_LOCK:
        _PROBES[key] = value
    return value


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages alive during a forward pass; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.seen: dict[int, int] = {}

    def _free(self, key: int) -> None:
        n = self.seen.pop(key, None)
        if n is not None:
            self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.seen:
                    self.seen[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key)
        return out


def live_tensor_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of CPU tensor storages alive during one forward pass of ``x`` (deterministic:
    it counts tensors, not pages, so it does not depend on the allocator or the CPU's ISA)."""
    counter = _LiveBytes()
    with counter:
        model(x)
    return counter.peak


def _rss_growth_probe(model: nn.Module, x: torch.Tensor) -> float:
    """Peak RSS growth of one forward pass of ``x``, bytes (0 where ``/proc`` cannot tell)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        before = process_status_mb("VmRSS")
        model(x)
        peak = process_status_mb("VmHWM")
    except OSError:
        return 0.0
    if before is None or peak is None:
        return 0.0
    return max(0.0, (peak - before) * 2**20)


def _cpu_probe(model: nn.Module, x: torch.Tensor) -> float:
    """max(peak RSS growth, peak live tensor bytes) of one forward pass, per pixel of ``x``."""
    px = x.shape[2] * x.shape[3]
    small = max(64, 2 * model_downsampling(model))
    model(x[:, :, :small, :small])  # warm-up (lazy initialisation, weight reorders) on a small tile
    rss = _rss_growth_probe(model, x) / px
    live = live_tensor_peak_bytes(model, x) / px  # after the RSS probe: it would reuse the pages the first pass freed
    return max(rss, live, 4.0 * (x.shape[1] + 3))
