"""Choosing the tiling from a memory budget: :func:`choose_tiling`.

Peak memory of :func:`~sar2opt_geo.engine.run_tiled` is, in bytes,

    baseline + batch * tile_h * tile_w * (activation + engine per tile pixel)
             + width * rows_held * per_column

* ``baseline``: what the process holds already (its current RSS: interpreter, torch, the
  model's weights, the open rasters), read from ``/proc/self/status``;
* ``activation``: the model's peak activation memory per tile pixel, **measured once per
  architecture** (:func:`activation_bytes_per_pixel`: one probe forward pass, peak RSS
  reset through ``/proc/self/clear_refs``; on CUDA ``torch.cuda.max_memory_allocated``):
  about 256 B/px for the article's U-Net through its inference rewrite, 2.6 kB/px for the
  module as written;
* ``engine``: the batch as numpy arrays, the tile weights and the products added into the
  accumulator (:data:`ENGINE_BYTES_PER_TILE_PIXEL` per input and output band);
* ``per_column``: the full-scene-width buffers of the engine (source rows, weighted sums,
  weights, the row block handed to ``write`` and the caller's copies of it), about one
  tile height of rows: :data:`ROW_BYTES_PER_BAND` per band and pixel, so memory grows with
  the scene **width** (not its height). Very wide scenes get smaller tiles; a scene too wide
  for the budget at the smallest exact tile is an error that says what budget it needs.

The margin is the model's ``receptive_margin`` rounded up to its ``downsampling`` (48 px for
the article's U-Net; 512 for ``unet_256``), the overlap twice that rounded to the
downsampling (96; 1024), so tiles are exact. Among the tile sizes that fit the budget the
one that computes the fewest pixels for *this* scene wins (larger tiles waste less in
overlap, but a tile that is mostly reflected padding wastes more: a 1024 x 1024 scene needs a
1120 px canvas, which 2 x 2 tiles of 608 cover with 1.41x the scene's pixels where 3 x 3 of 512
compute 2.25x); among the tiles within 10 % (:data:`TOLERANCE`) of the fewest computed pixels
the smallest wins (less memory, better cache locality). On CPU the batch is 1 (batching does not add
throughput there, it only multiplies memory); on CUDA the batch fills the GPU's free memory.

If even the smallest exact tile does not fit (``unet_256`` needs 1280 px tiles for its
512 px margin), the margin is reduced until a tile fits and a warning says the result will
not be exactly the whole-image one (the blend hides the seams).

Explicit ``tile_size``, ``overlap``, ``batch_size`` win over the plan; a ``tile_size`` that
cannot hold the margin is a :class:`~sar2opt_geo.errors.ConfigError` that names a size
that can.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError
from ..options import (
    DEFAULT_MAX_MEMORY_MB,  # the budget, defined once with the translate options
)
from .tiling import TilingConfig, axis_tiles, model_downsampling

__all__ = [
    "DEFAULT_MAX_MEMORY_MB",
    "ENGINE_BYTES_PER_TILE_PIXEL",
    "ROW_BYTES_PER_BAND",
    "TilingPlan",
    "activation_bytes_per_pixel",
    "choose_tiling",
    "exact_margin",
    "plan_tiling",
]

logger = logging.getLogger(__name__)

#: Engine buffers per tile pixel and band (input and output): the batch array, the model's
#: output as numpy, nodata masks, ``weight * output`` temporaries; bytes.
ENGINE_BYTES_PER_TILE_PIXEL = 16
#: Full-width row buffers per scene pixel of the rows in flight and per band (input + output
#: + 1 for the weights): source block and its concatenation, sums, their growth copies, the
#: normalised block handed to ``write`` and the caller's copies (API: clip, mask); bytes.
ROW_BYTES_PER_BAND = 24
#: Tile sizes considered, pixels (upper bound; the budget usually binds first on CPU).
MAX_TILE = 4096
#: A tile computing up to this factor more pixels than the least-computing one that fits is
#: preferred when it is smaller (memory, cache locality).
TOLERANCE = 1.10
#: Head-room kept free under the budget, MB (allocator fragmentation, GDAL block cache churn).
SAFETY_MB = 64

_PROBES: dict[tuple, float] = {}
_PROBE_LOCK = threading.Lock()


@dataclass(frozen=True)
class TilingPlan:
    """What :func:`plan_tiling` chose and why (sizes in pixels, memory in MB)."""

    config: TilingConfig
    grid: tuple[int, int]
    compute_factor: float  # tile pixels computed / scene pixels
    estimated_peak_mb: float
    baseline_mb: float
    activation_bytes_per_pixel: float
    exact: bool  # margin >= the model's receptive margin
    reason: str

    def describe(self) -> str:
        c = self.config
        return (f"tiles {c.tile_size}/{c.overlap} margin {c.margin} batch {c.batch_size}: {self.grid[0]}x{self.grid[1]} tiles, "
                f"computes {self.compute_factor:.2f}x the scene, estimated peak {self.estimated_peak_mb:.0f} MB ({self.reason})")


def exact_margin(model: nn.Module) -> int:
    """The margin that makes tiles exact: ``receptive_margin`` rounded up to ``downsampling`` (48 if unknown)."""
    d = model_downsampling(model)
    rm = getattr(model, "receptive_margin", None)
    if rm is None:
        return 48
    return max(d, math.ceil(int(rm) / d) * d)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _probe_key(model: nn.Module, device: torch.device, extra: tuple) -> tuple:
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return (type(model).__qualname__, shapes, device.type, *extra)


def _in_channels(model: nn.Module) -> int:
    value = getattr(model, "in_channels", None)
    if value:
        return int(value)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 1


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
    x = torch.zeros((1, _in_channels(model), side, side))
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


def _cpu_probe(model: nn.Module, x: torch.Tensor) -> float:
    """max(peak RSS growth, peak live tensor bytes) of one forward pass, per pixel of ``x``."""
    px = x.shape[2] * x.shape[3]
    small = max(64, 2 * model_downsampling(model))
    model(x[:, :, :small, :small])  # warm-up (lazy initialisation, weight reorders) on a small tile
    rss = 0.0
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        before = _status_mb("VmRSS")
        model(x)
        peak = _status_mb("VmHWM")
        if before is not None and peak is not None:
            rss = (peak - before) * 2**20 / px
    except OSError:
        pass
    counter = _LiveBytes()  # after the RSS probe: it would reuse the pages the first pass freed
    with counter:
        model(x)
    return max(rss, counter.peak / px, 4.0 * (x.shape[1] + 3))


def _axis_cost(length: int, config: TilingConfig, d: int) -> tuple[int, int]:
    ax = axis_tiles(length, config, d)
    return ax.count, ax.tile


def plan_tiling(
    model: nn.Module,
    height: int,
    width: int,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    max_memory_mb: float | None = DEFAULT_MAX_MEMORY_MB,
    device: torch.device | str = "cpu",
    in_channels: int | None = None,
    out_channels: int = 3,
    activation: float | None = None,
    baseline_mb: float | None = None,
    autocast: bool = False,
) -> TilingPlan:
    """Choose tile size, overlap, margin and batch for a ``height x width`` scene under ``max_memory_mb``.

    See the module docstring for the memory model and the rules. ``model`` is the module
    that will run (pass the inference rewrite, :func:`~sar2opt_geo.engine.backends.prepare_module`,
    to plan for it). ``activation`` (bytes per tile pixel) and ``baseline_mb`` override the
    measured values; ``max_memory_mb=None`` means no budget (then tiles up to 1024 px).

    Raises:
        ConfigError: an explicit size that cannot work, or a scene too wide for the budget.
    """
    dev = torch.device(device)
    d = math.lcm(model_downsampling(model), 16)  # TilingConfig sizes are multiples of 16 as well
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ConfigError(f"scene {name}={value!r} must be a positive whole number of pixels")
    if max_memory_mb is not None and max_memory_mb <= 0:
        raise ConfigError(f"max_memory_mb={max_memory_mb} must be a positive number of MB (e.g. 1500)")
    cin = in_channels or _in_channels(model)
    act = activation if activation is not None else activation_bytes_per_pixel(model, dev, autocast=autocast)
    base = baseline_mb if baseline_mb is not None else (_status_mb("VmRSS") or 400.0)
    needed = getattr(model, "receptive_margin", None)
    m_exact = exact_margin(model)

    # explicit sizes first: check them, derive the rest
    if overlap is not None:
        margin = min(m_exact, overlap // 2)
    else:
        margin = m_exact
    if tile_size is not None:
        if tile_size < d or tile_size % d:
            raise ConfigError(f"tile_size={tile_size} is not a positive multiple of the model's downsampling factor {d};"
                              f" use e.g. {max(d, math.ceil(tile_size / d) * d)}")
        ov = overlap if overlap is not None else math.ceil(2 * margin / d) * d
        if ov >= tile_size:
            need = ov + d
            raise ConfigError(
                f"tile_size={tile_size} px cannot hold the model's {margin} px margin on both sides (overlap {ov} px):"
                f" use tile_size >= {need} (e.g. {max(need, 4 * d * math.ceil(need / (4 * d)))}), or leave it out to"
                " let the memory budget choose"
            )
    device_budget = None
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        device_budget = 0.8 * free / 2**20  # MB of GPU memory for activations
    host_budget = (max_memory_mb - base - SAFETY_MB) if max_memory_mb is not None else None
    per_tile_px = (act if device_budget is None else 0.0) + ENGINE_BYTES_PER_TILE_PIXEL * (cin + out_channels)
    per_row_px = ROW_BYTES_PER_BAND * (cin + out_channels + 1)

    def estimate(cfg: TilingConfig) -> tuple[float, float, tuple[int, int], tuple[int, int]]:
        (rc, rt), (cc, ct) = _axis_cost(height, cfg, d), _axis_cost(width, cfg, d)
        tile_px = rt * ct
        host = (cfg.batch_size * tile_px * per_tile_px + width * (rt + cfg.stride) * per_row_px) / 2**20
        dev_mb = cfg.batch_size * tile_px * act / 2**20 if device_budget is not None else 0.0
        return host, dev_mb, (rc, cc), (rc * rt * cc * ct, tile_px)

    def fits(host: float, dev_mb: float) -> bool:
        if host_budget is not None and host > host_budget:
            return False
        return device_budget is None or dev_mb <= device_budget

    exact = needed is None or margin >= int(needed)
    reason = "user tiling" if tile_size is not None else "budget"
    while True:
        ov = overlap if overlap is not None else math.ceil(2 * margin / d) * d
        if tile_size is not None:
            sizes = [tile_size]
        else:
            cap = MAX_TILE if max_memory_mb is not None else 1024
            lo = max(ov + d, 2 * ov)  # smaller tiles would compute more than 4x the scene
            sizes = list(range(lo, max(lo, cap) + 1, d))
        best = None
        candidates: list = []
        for t in sizes:
            if t <= ov:
                continue
            b = batch_size or 1
            cfg = TilingConfig(tile_size=t, overlap=ov, margin=margin, batch_size=b)
            host, dev_mb, grid, (computed, _tile_px) = estimate(cfg)
            if tile_size is None and not fits(host, dev_mb):
                if candidates:
                    break  # memory only grows with the tile
                continue
            if batch_size is None and device_budget is not None:  # fill the GPU, up to 32 tiles
                tiles = grid[0] * grid[1]
                while b < min(32, tiles):
                    nxt = TilingConfig(tile_size=t, overlap=ov, margin=margin, batch_size=b + 1)
                    h2, d2, _, _ = estimate(nxt)
                    if not fits(h2, d2):
                        break
                    b, cfg, host, dev_mb = b + 1, nxt, h2, d2
            candidates.append((cfg, computed, host, dev_mb, grid, computed))
        if candidates:
            # fewest computed pixels, but the smallest tile within TOLERANCE of that: a bigger tile
            # costs memory and cache locality for a few per cent less overlap
            least = min(c[1] for c in candidates)
            best = min((c for c in candidates if c[1] <= TOLERANCE * least), key=lambda c: (c[0].tile_size, c[1]))
            break
        if tile_size is not None:
            break
        if margin <= d // 2 or margin <= 8:
            break
        margin = max(8, margin // 2)  # the exact margin does not fit: trade exactness for memory
        exact = needed is None or margin >= int(needed)
        reason = f"margin cut from {m_exact} px to fit the budget"
    if best is None:
        smallest = TilingConfig(tile_size=max(2 * d, math.ceil((2 * margin + 1) / d) * d + d), overlap=math.ceil(2 * margin / d) * d,
                                margin=margin, batch_size=1) if tile_size is None else TilingConfig(
                                    tile_size=tile_size, overlap=ov, margin=margin, batch_size=batch_size or 1)
        host, _, _, _ = estimate(smallest)
        raise ConfigError(
            f"a {height} x {width} px scene does not fit max_memory_mb={max_memory_mb:.0f} (process already at {base:.0f} MB;"
            f" the engine needs about {host + SAFETY_MB:.0f} MB more at tile {smallest.tile_size} px, mostly full-width row"
            f" buffers): raise max_memory_mb to at least {base + host + SAFETY_MB:.0f}, or cut the scene into narrower crops"
        )
    cfg, _, host, _dev_mb, grid, computed = best
    if host_budget is not None and tile_size is not None and host > host_budget:
        logger.warning("tiling %d/%d batch %d needs about %.0f MB, over max_memory_mb=%.0f", cfg.tile_size, cfg.overlap,
                       cfg.batch_size, base + host, max_memory_mb)
    if not exact:
        logger.warning(
            "the model's exact margin of %d px needs tiles that do not fit max_memory_mb=%.0f; using margin %d px: tiles will"
            " differ slightly near their edges (the blend hides seams); raise max_memory_mb for exact output",
            m_exact, max_memory_mb or 0, margin,
        )
    return TilingPlan(
        config=cfg, grid=grid, compute_factor=computed / (height * width), estimated_peak_mb=base + host,
        baseline_mb=base, activation_bytes_per_pixel=act, exact=exact, reason=reason,
    )


def choose_tiling(
    model: nn.Module,
    height: int,
    width: int,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    max_memory_mb: float | None = DEFAULT_MAX_MEMORY_MB,
    device: torch.device | str = "cpu",
    **kwargs,
) -> TilingConfig:
    """The :class:`TilingConfig` of :func:`plan_tiling` (same arguments); logs the plan at INFO."""
    plan = plan_tiling(model, height, width, tile_size=tile_size, overlap=overlap, batch_size=batch_size,
                       max_memory_mb=max_memory_mb, device=device, **kwargs)
    logger.info("tiling for %d x %d px: %s", height, width, plan.describe())
    return plan.config
