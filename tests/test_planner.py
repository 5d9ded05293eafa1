"""engine.planner: tiling from a memory budget, exact margins, explicit values, wide scenes, reference nets."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from sar2opt_geo.engine import (
    TilingConfig,
    activation_bytes_per_pixel,
    choose_tiling,
    exact_margin,
    plan_tiling,
    prepare_module,
    run_tiled,
    tile_grid,
)
from sar2opt_geo.engine.planner import available_memory_mb, live_tensor_peak_bytes
from sar2opt_geo.errors import ConfigError
from sar2opt_geo.models import UNetGenerator
from sar2opt_geo.models.reference import (
    ReferenceResnetGenerator,
    ReferenceUnetGenerator,
)


class Net(nn.Module):
    """A stand-in with a chosen downsampling and receptive margin (per-pixel, no weights)."""

    def __init__(self, downsampling: int = 16, receptive_margin: int | None = 47) -> None:
        super().__init__()
        self.downsampling = downsampling
        if receptive_margin is not None:
            self.receptive_margin = receptive_margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, -x, x], 1)


def plan(model, h, w, **kw):
    kw.setdefault("activation", 300.0)
    kw.setdefault("baseline_mb", 400.0)
    kw.setdefault("available_mb", 1e6)  # plans must not depend on this machine's free memory
    return plan_tiling(model, h, w, **kw)


def test_exact_margin_rounds_the_receptive_margin_up_to_the_downsampling() -> None:
    assert exact_margin(Net(16, 47)) == 48
    assert exact_margin(ReferenceUnetGenerator(1, 3, num_downs=8)) == 512  # receptive margin 511, downsampling 256
    assert exact_margin(Net(4, 82)) == 84
    assert exact_margin(Net(16, None)) == 48


def test_plan_is_exact_and_fits_the_budget() -> None:
    p = plan(Net(), 1024, 1024, max_memory_mb=1500)
    c = p.config
    assert c.margin == 48 and c.overlap == 96 and c.batch_size == 1 and p.exact
    assert c.tile_size % 16 == 0 and p.estimated_peak_mb <= 1500
    # fewer computed pixels than the old fixed 512/128 (3 x 3 tiles of 512 = 2.25x)
    assert p.compute_factor < 1.5
    g = tile_grid(1024, 1024, c)
    assert p.grid == g.shape


@pytest.mark.parametrize("budget", [700, 1000, 1500, 3000])
@pytest.mark.parametrize("shape", [(977, 4096), (15625, 4096), (300, 300), (5000, 12000)])
def test_estimated_peak_stays_under_any_budget_and_bigger_budgets_give_no_smaller_tiles(budget, shape) -> None:
    p = plan(Net(), *shape, max_memory_mb=budget)
    assert p.estimated_peak_mb <= budget
    more = plan(Net(), *shape, max_memory_mb=budget * 2)
    assert more.compute_factor <= p.compute_factor + 1e-9


def test_memory_grows_with_width_not_height() -> None:
    short, tall = plan(Net(), 1000, 4096), plan(Net(), 16000, 4096)
    assert tall.estimated_peak_mb <= short.estimated_peak_mb * 1.3 + 100
    wide = plan(Net(), 1000, 40000, max_memory_mb=1500)
    assert wide.config.tile_size <= short.config.tile_size  # wide rows leave less for the tiles
    assert wide.estimated_peak_mb <= 1500


def test_too_wide_for_the_budget_is_an_error_that_names_the_budget_needed() -> None:
    with pytest.raises(ConfigError, match=r"does not fit max_memory_mb=500 .*raise max_memory_mb to at least \d+"):
        plan(Net(), 1000, 400000, max_memory_mb=500)


def test_explicit_values_win_and_a_tile_that_cannot_hold_the_margin_is_an_error() -> None:
    p = plan(Net(), 2000, 2000, tile_size=256, batch_size=3)
    assert (p.config.tile_size, p.config.overlap, p.config.margin, p.config.batch_size) == (256, 96, 48, 3)
    p = plan(Net(), 2000, 2000, tile_size=512, overlap=128)
    assert (p.config.tile_size, p.config.overlap, p.config.margin) == (512, 128, 48)
    with pytest.raises(ConfigError, match=r"tile_size=96 px cannot hold the model's 48 px margin.*use tile_size >= 112"):
        plan(Net(), 2000, 2000, tile_size=96)
    with pytest.raises(ConfigError, match="tile_size=100 is not a positive multiple"):
        plan(Net(), 2000, 2000, tile_size=100)
    with pytest.raises(ConfigError, match="max_memory_mb=0"):
        plan(Net(), 10, 10, max_memory_mb=0)


def test_reference_unet_256_works_with_defaults(caplog) -> None:
    """Issue 12: imported unet_256 models failed with the default tiling (overlap 128 is not a multiple of 256)."""
    net = ReferenceUnetGenerator(1, 3, num_downs=8, ngf=8).eval()
    with caplog.at_level(logging.WARNING, logger="sar2opt_geo.engine.planner"):
        p = plan_tiling(net, 700, 900, max_memory_mb=1500, baseline_mb=400)  # a fresh CLI process
    c = p.config
    assert c.tile_size % 256 == 0 and c.overlap % 256 == 0 and c.overlap >= 2 * c.margin
    if not p.exact:
        assert "tiles will differ slightly" in caplog.text
    # and the engine runs with it (the planned default), same output size
    image = np.random.default_rng(0).uniform(-1, 1, (1, 300, 280)).astype(np.float32)
    out = []
    # the budget is what the engine allocates, whatever this (long) pytest process already holds
    stats = run_tiled(net, lambda w: image[:, w.row_off : w.row_off + w.height], 300, 280, lambda w, a: out.append(a),
                      max_memory_mb=1500)
    assert stats.tile_shape[0] % 256 == 0 and sum(a.shape[1] for a in out) == 300


def test_resnet_downsampling_4_rounds_to_16() -> None:
    net = ReferenceResnetGenerator(1, 3, n_blocks=2, ngf=8).eval()
    c = choose_tiling(net, 500, 500)
    assert c.overlap % 16 == 0 and c.tile_size % 16 == 0 and c.margin >= net.receptive_margin


def test_activation_probe_sees_the_rewrite_is_smaller() -> None:
    torch.manual_seed(0)
    model = UNetGenerator(1, 3, width=0.25).eval()
    fast = prepare_module(model)
    a_orig, a_fast = activation_bytes_per_pixel(model), activation_bytes_per_pixel(fast)
    assert a_fast == fast.activation_bytes_per_pixel  # the rewrite knows its own, no probe
    with torch.inference_mode():  # tensors counted, not RSS pages: the same on every allocator and ISA
        measured = live_tensor_peak_bytes(fast, torch.zeros(1, 1, 512, 512)) / 512**2
    assert 16 * 4 < measured <= a_fast  # above the 16-channel full-resolution enc1 map, below the formula
    assert a_orig > 2 * a_fast  # the original holds the 4x upsampled 64-channel input of dec3 and more
    assert activation_bytes_per_pixel(model) == a_orig  # cached


def test_run_tiled_without_config_plans_an_exact_tiling(tiny_generator) -> None:
    model = tiny_generator()
    image = np.random.default_rng(1).uniform(-1, 1, (1, 200, 300)).astype(np.float32)
    out = np.zeros((3, 200, 300), np.float32)

    def write(w, a):
        out[:, w.row_off : w.row_off + w.height] = a

    stats = run_tiled(model, lambda w: image[:, w.row_off : w.row_off + w.height], 200, 300, write, max_memory_mb=1500)
    ref = np.zeros_like(out)

    def write_ref(w, a):
        ref[:, w.row_off : w.row_off + w.height] = a

    run_tiled(model, lambda w: image[:, w.row_off : w.row_off + w.height], 200, 300, write_ref,
              TilingConfig(tile_size=128, overlap=96), optimise=False)
    assert stats.tiles >= 1
    assert np.abs(out - ref).max() <= 1e-4  # different tilings, both exact: the same image


def test_budget_is_the_engines_memory_not_the_callers_rss() -> None:
    """Issue 19: the planner subtracted the caller's RSS, so a tiny scene was refused inside a long pytest run."""
    calm = plan(Net(), 256, 256, max_memory_mb=1500, baseline_mb=100.0)
    busy = plan(Net(), 256, 256, max_memory_mb=1500, baseline_mb=50_000.0)  # the caller holds 50 GB
    assert busy.config == calm.config and busy.estimated_peak_mb <= 1500


def test_explicit_tile_over_the_budget_is_refused_not_warned() -> None:
    """Issue 19: ``--tile 16384`` warned '798030 MB' and went on to a MemoryError."""
    with pytest.raises(ConfigError, match=r"tile_size=16384 needs about \d+ MB .* over max_memory_mb=1500"):
        plan(Net(), 200_000, 200_000, tile_size=16384, max_memory_mb=1500)
    with pytest.raises(ConfigError, match=r"batch_size=8 needs about \d+ MB"):
        plan(Net(), 4000, 4000, tile_size=2048, batch_size=8, max_memory_mb=700)


def test_a_budget_above_the_available_memory_is_capped_and_a_plan_that_cannot_fit_is_refused() -> None:
    """Issue 19: ``--max-memory-mb 1e9`` on a 200000 px wide raster ran into a MemoryError at 5 GB."""
    p = plan(Net(), 4000, 4000, max_memory_mb=1e9, available_mb=900)
    assert p.estimated_peak_mb <= 900
    with pytest.raises(ConfigError, match=r"does not fit the 900 MB this machine has available now.*free memory"):
        plan(Net(), 200_000, 200_000, max_memory_mb=1e9, available_mb=900)
    with pytest.raises(ConfigError, match=r"tile_size=1024 needs about \d+ MB .* over the 500 MB this machine has"):
        plan(Net(), 2000, 60_000, tile_size=1024, max_memory_mb=1e9, available_mb=500)


def test_available_memory_is_known_on_linux() -> None:
    avail = available_memory_mb()
    assert avail is None or avail > 0
