"""Choosing the tiling from a memory budget: :func:`choose_tiling`.

The memory budget (``max_memory_mb``) is what the engine itself allocates, whatever the
calling process already holds (a notebook with a large array, a long test run, a service):

    batch * tile_h * tile_w * (activation + engine per tile pixel)
          + width * rows_held * per_column

(the process's current RSS, ``baseline``, is reported beside it, never subtracted from it).

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

A plan whose engine memory exceeds what the machine can give now (``MemAvailable`` of
``/proc/meminfo``, or the cgroup's ``memory.max`` minus ``memory.current`` if smaller) is
refused before any work, with both numbers: a huge ``max_memory_mb`` does not turn into a
``MemoryError`` half-way. Explicit ``tile_size`` / ``batch_size`` that exceed the budget are
refused too (not warned), naming the budget they need.

If even the smallest exact tile does not fit (``unet_256`` needs 1280 px tiles for its
512 px margin), the margin is reduced until a tile fits and a warning says the result will
not be exactly the whole-image one (the blend hides the seams).

Explicit ``tile_size``, ``overlap``, ``batch_size`` win over the plan when they fit; a ``tile_size`` that
cannot hold the margin is a :class:`~sar2opt_geo.errors.ConfigError` that names a size
that can.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch import nn

from ..errors import ConfigError
from ..options import (
    DEFAULT_MAX_MEMORY_MB,  # the budget, defined once with the translate options
)
from .memory import (
    activation_bytes_per_pixel,
    available_memory_mb,
    live_tensor_peak_bytes,
    model_in_channels,
    process_status_mb,
)
from .tiling import TilingConfig, axis_tiles, model_downsampling

__all__ = [
    "DEFAULT_MAX_MEMORY_MB",
    "ENGINE_BYTES_PER_TILE_PIXEL",
    "ROW_BYTES_PER_BAND",
    "TilingPlan",
    "activation_bytes_per_pixel",
    "available_memory_mb",
    "choose_tiling",
    "exact_margin",
    "live_tensor_peak_bytes",
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

@dataclass(frozen=True)
class TilingPlan:
    """What :func:`plan_tiling` chose and why (sizes in pixels, memory in MB)."""

    config: TilingConfig
    grid: tuple[int, int]
    compute_factor: float  # tile pixels computed / scene pixels
    estimated_peak_mb: float  # what the engine allocates (the budget's measure), not counting the caller's RSS
    baseline_mb: float  # the process's RSS when planning (information only)
    activation_bytes_per_pixel: float
    exact: bool  # margin >= the model's receptive margin
    reason: str

    def describe(self) -> str:
        c = self.config
        return (f"tiles {c.tile_size}/{c.overlap} margin {c.margin} batch {c.batch_size}: {self.grid[0]}x{self.grid[1]} tiles, "
                f"computes {self.compute_factor:.2f}x the scene, engine memory about {self.estimated_peak_mb:.0f} MB ({self.reason})")


def exact_margin(model: nn.Module) -> int:
    """The margin that makes tiles exact: ``receptive_margin`` rounded up to ``downsampling`` (48 if unknown)."""
    d = model_downsampling(model)
    rm = getattr(model, "receptive_margin", None)
    if rm is None:
        return 48
    return max(d, math.ceil(int(rm) / d) * d)


def _axis_cost(length: int, config: TilingConfig, d: int) -> tuple[int, int]:
    ax = axis_tiles(length, config, d)
    return ax.count, ax.tile


#: One tile size that fits: (config, computed pixels, host MB, device MB, grid, computed pixels).
_Candidate = tuple[TilingConfig, int, float, float, tuple[int, int], int]


@dataclass(frozen=True)
class _MemoryModel:
    """The memory estimate of one scene and model, and the budget it must fit (MB)."""

    height: int
    width: int
    d: int  # tile alignment, pixels
    act: float  # activation bytes per tile pixel
    per_tile_px: float  # host bytes per tile pixel
    per_row_px: float  # host bytes per scene pixel of the rows in flight
    device_budget: float | None  # MB of GPU memory for activations (CUDA only)
    host_budget: float | None  # MB of host memory for the engine
    max_memory_mb: float | None  # the caller's budget
    limit_mb: float | None  # the budget that binds: max_memory_mb or the available memory
    limited_by: str  # what ``limit_mb`` is, in words

    def estimate(self, cfg: TilingConfig) -> tuple[float, float, tuple[int, int], tuple[int, int]]:
        """Host MB, device MB, grid and (computed pixels, tile pixels) of ``cfg``."""
        (rc, rt), (cc, ct) = _axis_cost(self.height, cfg, self.d), _axis_cost(self.width, cfg, self.d)
        tile_px = rt * ct
        host = (cfg.batch_size * tile_px * self.per_tile_px + self.width * (rt + cfg.stride) * self.per_row_px) / 2**20
        dev_mb = cfg.batch_size * tile_px * self.act / 2**20 if self.device_budget is not None else 0.0
        return host, dev_mb, (rc, cc), (rc * rt * cc * ct, tile_px)

    def fits(self, host: float, dev_mb: float) -> bool:
        """Whether host and device MB fit their budgets."""
        if self.host_budget is not None and host > self.host_budget:
            return False
        return self.device_budget is None or dev_mb <= self.device_budget


def _check_scene(height: int, width: int, max_memory_mb: float | None) -> None:
    """Refuse a scene size that is not a positive whole number of pixels, or a non-positive budget."""
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ConfigError(f"scene {name}={value!r} must be a positive whole number of pixels")
    if max_memory_mb is not None and max_memory_mb <= 0:
        raise ConfigError(f"max_memory_mb={max_memory_mb} must be a positive number of MB (e.g. 1500)")


def _overlap(overlap: int | None, margin: int, d: int) -> int:
    """The explicit overlap, else twice the margin rounded up to the alignment ``d``."""
    return overlap if overlap is not None else math.ceil(2 * margin / d) * d


def _check_tile_size(tile_size: int, ov: int, margin: int, d: int) -> None:
    """Refuse an explicit tile size that is not aligned or cannot hold the margin on both sides."""
    if tile_size < d or tile_size % d:
        raise ConfigError(f"tile_size={tile_size} is not a positive multiple of the model's downsampling factor {d};"
                          f" use e.g. {max(d, math.ceil(tile_size / d) * d)}")
    if ov >= tile_size:
        need = ov + d
        raise ConfigError(
            f"tile_size={tile_size} px cannot hold the model's {margin} px margin on both sides (overlap {ov} px):"
            f" use tile_size >= {need} (e.g. {max(need, 4 * d * math.ceil(need / (4 * d)))}), or leave it out to"
            " let the memory budget choose"
        )


def _memory_model(dev: torch.device, height: int, width: int, d: int, act: float, bands: int,
                  max_memory_mb: float | None, avail: float | None) -> _MemoryModel:
    """The budgets (host, and GPU on CUDA) and per-pixel costs for ``bands`` input + output bands."""
    device_budget = None
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        device_budget = 0.8 * free / 2**20  # MB of GPU memory for activations
    limit_mb, limited_by = max_memory_mb, f"max_memory_mb={max_memory_mb:.0f}" if max_memory_mb is not None else ""
    if avail is not None and (limit_mb is None or avail < limit_mb):
        limit_mb, limited_by = avail, f"the {avail:.0f} MB this machine has available now"
    host_budget = (limit_mb - SAFETY_MB) if limit_mb is not None else None
    per_tile_px = (act if device_budget is None else 0.0) + ENGINE_BYTES_PER_TILE_PIXEL * bands
    per_row_px = ROW_BYTES_PER_BAND * (bands + 1)
    return _MemoryModel(height=height, width=width, d=d, act=act, per_tile_px=per_tile_px, per_row_px=per_row_px,
                        device_budget=device_budget, host_budget=host_budget, max_memory_mb=max_memory_mb,
                        limit_mb=limit_mb, limited_by=limited_by)


def _candidates(mem: _MemoryModel, margin: int, ov: int, tile_size: int | None,
                batch_size: int | None) -> list[_Candidate]:
    """The tile sizes that fit at this margin and overlap (the explicit one, fitting or not)."""
    d = mem.d
    if tile_size is not None:
        sizes = [tile_size]
    else:
        cap = MAX_TILE if mem.max_memory_mb is not None else 1024
        lo = max(ov + d, 2 * ov)  # smaller tiles would compute more than 4x the scene
        sizes = list(range(lo, max(lo, cap) + 1, d))
    candidates: list[_Candidate] = []
    for t in sizes:
        if t <= ov:
            continue
        b = batch_size or 1
        cfg = TilingConfig(tile_size=t, overlap=ov, margin=margin, batch_size=b)
        host, dev_mb, grid, (computed, _tile_px) = mem.estimate(cfg)
        if tile_size is None and not mem.fits(host, dev_mb):
            if candidates:
                break  # memory only grows with the tile
            continue
        if batch_size is None and mem.device_budget is not None:  # fill the GPU, up to 32 tiles
            tiles = grid[0] * grid[1]
            while b < min(32, tiles):
                nxt = TilingConfig(tile_size=t, overlap=ov, margin=margin, batch_size=b + 1)
                h2, d2, _, _ = mem.estimate(nxt)
                if not mem.fits(h2, d2):
                    break
                b, cfg, host, dev_mb = b + 1, nxt, h2, d2
        candidates.append((cfg, computed, host, dev_mb, grid, computed))
    return candidates


def _search(mem: _MemoryModel, margin: int, m_exact: int, needed: float | None, overlap: int | None,
            tile_size: int | None, batch_size: int | None) -> tuple[_Candidate | None, int, bool, str]:
    """The best candidate (None if none fits), cutting the margin while nothing fits; with the final margin,
    whether it is exact and why it was chosen."""
    d = mem.d
    best = None
    exact = needed is None or margin >= int(needed)
    reason = "user tiling" if tile_size is not None else "budget"
    while True:
        candidates = _candidates(mem, margin, _overlap(overlap, margin, d), tile_size, batch_size)
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
    return best, margin, exact, reason


def _raise_unfit(mem: _MemoryModel, margin: int, ov: int, tile_size: int | None, batch_size: int | None) -> NoReturn:
    """Raise the ConfigError for a scene that fits the budget at no tile size, naming the budget it needs."""
    d = mem.d
    smallest = TilingConfig(tile_size=max(2 * d, math.ceil((2 * margin + 1) / d) * d + d), overlap=math.ceil(2 * margin / d) * d,
                            margin=margin, batch_size=1) if tile_size is None else TilingConfig(
                                tile_size=tile_size, overlap=ov, margin=margin, batch_size=batch_size or 1)
    host, _, _, _ = mem.estimate(smallest)
    way_out = (f"raise max_memory_mb to at least {math.ceil(host + SAFETY_MB)}" if mem.limit_mb == mem.max_memory_mb
               else "free memory")
    raise ConfigError(
        f"a {mem.height} x {mem.width} px scene does not fit {mem.limited_by} (the engine needs about"
        f" {host + SAFETY_MB:.0f} MB at tile {smallest.tile_size} px, mostly full-width row buffers): {way_out},"
        " or cut the scene into narrower crops"
    )


def _check_explicit_fits(mem: _MemoryModel, cfg: TilingConfig, host: float, tile_size: int | None) -> None:
    """Refuse an explicit tile size (and batch) whose engine memory exceeds the budget."""
    if mem.host_budget is not None and tile_size is not None and host > mem.host_budget:
        what = f"tile_size={cfg.tile_size}" + (f" with batch_size={cfg.batch_size}" if cfg.batch_size > 1 else "")
        way_out = (f"raise max_memory_mb to at least {math.ceil(host + SAFETY_MB)}, " if mem.limit_mb == mem.max_memory_mb
                   else "")
        raise ConfigError(
            f"{what} needs about {math.ceil(host + SAFETY_MB)} MB for a {mem.height} x {mem.width} px scene, over"
            f" {mem.limited_by}: use a smaller tile_size/batch_size, {way_out}or leave the tiling out to let the"
            " budget choose"
        )


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
    available_mb: float | None = None,
    autocast: bool = False,
) -> TilingPlan:
    """Choose tile size, overlap, margin and batch for a ``height x width`` scene under ``max_memory_mb``.

    See the module docstring for the memory model and the rules. ``model`` is the module
    that will run (pass the inference rewrite, :func:`~sar2opt_geo.engine.backends.prepare_module`,
    to plan for it). ``activation`` (bytes per tile pixel), ``baseline_mb`` (the caller's
    RSS, reported only) and ``available_mb`` (memory the machine can give, default
    :func:`available_memory_mb`) override the measured values; ``max_memory_mb=None`` means
    no budget (then tiles up to 1024 px), still within the available memory.

    Raises:
        ConfigError: an explicit size that cannot work or exceeds the budget, a scene too wide
            for the budget, or a plan that needs more memory than the machine has available.
    """
    dev = torch.device(device)
    d = math.lcm(model_downsampling(model), 16)  # TilingConfig sizes are multiples of 16 as well
    _check_scene(height, width, max_memory_mb)
    cin = in_channels or model_in_channels(model) or 1
    act = activation if activation is not None else activation_bytes_per_pixel(model, dev, autocast=autocast)
    base = baseline_mb if baseline_mb is not None else (process_status_mb("VmRSS") or 0.0)
    avail = available_mb if available_mb is not None else available_memory_mb()
    needed = getattr(model, "receptive_margin", None)
    m_exact = exact_margin(model)

    # explicit sizes first: check them, derive the rest
    margin = min(m_exact, overlap // 2) if overlap is not None else m_exact
    if tile_size is not None:
        _check_tile_size(tile_size, _overlap(overlap, margin, d), margin, d)
    mem = _memory_model(dev, height, width, d, act, cin + out_channels, max_memory_mb, avail)
    best, margin, exact, reason = _search(mem, margin, m_exact, needed, overlap, tile_size, batch_size)
    if best is None:
        _raise_unfit(mem, margin, _overlap(overlap, margin, d), tile_size, batch_size)
    cfg, _, host, _dev_mb, grid, computed = best
    _check_explicit_fits(mem, cfg, host, tile_size)
    if not exact:
        logger.warning(
            "the model's exact margin of %d px needs tiles that do not fit %s; using margin %d px: tiles will"
            " differ slightly near their edges (the blend hides seams); raise max_memory_mb for exact output",
            m_exact, mem.limited_by, margin,
        )
    return TilingPlan(
        config=cfg, grid=grid, compute_factor=computed / (height * width), estimated_peak_mb=host,
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
