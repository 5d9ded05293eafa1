"""Blend weights: cosine ramps, cropped margins, partition of unity."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sar2opt_geo.engine import (
    TilingConfig,
    axis_tiles,
    axis_weights,
    cosine_ramp,
    tile_grid,
    tile_weights,
    weight_sum,
)


@st.composite
def configs(draw, d: int = 16) -> TilingConfig:
    margin = draw(st.integers(0, 64))
    overlap = d * draw(st.integers(-(-2 * margin // d), 10))
    tile = d * draw(st.integers(overlap // d + 1, 32))
    return TilingConfig(tile_size=tile, overlap=overlap, margin=margin)


def test_cosine_ramp_is_smooth_monotone_and_complementary() -> None:
    r = cosine_ramp(32)
    assert r.shape == (32,) and (r > 0).all() and (r < 1).all()
    assert (np.diff(r) > 0).all()
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-12)  # symmetric about the centre
    # raised cosine: flat at both ends, steepest in the middle
    steps = np.diff(r)
    assert steps[0] < steps[15] and steps[-1] < steps[15]
    assert cosine_ramp(0).size == 0


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 700), width=st.integers(1, 700), config=configs())
def test_weights_sum_to_one_at_every_scene_pixel(height: int, width: int, config: TilingConfig) -> None:
    total = weight_sum(tile_grid(height, width, config))
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 2000), config=configs())
def test_axis_weights_are_zero_in_inner_margins_and_within_unit_range(length: int, config: TilingConfig) -> None:
    ax = axis_tiles(length, config)
    for k in range(ax.count):
        w = axis_weights(ax, k)
        assert w.shape == (ax.tile,) and (w >= 0).all() and (w <= 1).all()
        if k > 0:
            assert (w[: config.margin] == 0).all()
        if k < ax.count - 1:
            assert (w[ax.tile - config.margin :] == 0).all()
        # at most two tiles carry weight at any canvas pixel (ramps do not overlap)
    if ax.count > 2:
        counts = np.zeros(ax.canvas[1] - ax.canvas[0])
        for k in range(ax.count):
            o = ax.origin(k) - ax.canvas[0]
            counts[o : o + ax.tile] += axis_weights(ax, k) > 0
        assert counts.max() <= 2


def test_two_dimensional_weights_are_outer_products_with_corners_shared_by_four_tiles() -> None:
    grid = tile_grid(400, 400, TilingConfig(tile_size=256, overlap=128, margin=48))
    assert grid.shape == (3, 3)
    w = tile_weights(grid, 1, 1)
    assert w.dtype == np.float32 and w.shape == (256, 256)
    np.testing.assert_array_equal(w, np.multiply.outer(axis_weights(grid.rows, 1), axis_weights(grid.cols, 1)).astype(np.float32))
    # interior of the middle tile has weight 1, its cropped margins 0
    assert w[128, 128] == 1.0 and (w[:48] == 0).all() and (w[:, -48:] == 0).all()
    # in a blend corner, four tiles share a pixel with weights that still sum to 1
    r, c = 138, 138  # tile 1 starts at 80; its rising ramp covers scene pixels [128, 160)
    parts = []
    for i, j, r0, c0 in grid:
        if r0 <= r < r0 + 256 and c0 <= c < c0 + 256:
            parts.append(float(tile_weights(grid, i, j, np.float64)[r - r0, c - c0]))
    assert sum(p > 0 for p in parts) == 4
    assert abs(sum(parts) - 1.0) < 1e-12
