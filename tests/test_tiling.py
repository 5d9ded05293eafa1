"""Tile grid: alignment, coverage, reflection padding, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sar2opt_geo.engine import (
    DEFAULT_DOWNSAMPLING,
    TilingConfig,
    axis_tiles,
    check_config,
    model_downsampling,
    reflect_index,
    tile_grid,
)


@st.composite
def configs(draw, d: int = 16) -> TilingConfig:
    """Valid configurations: tile/overlap multiples of ``d``, overlap in [2 * margin, tile)."""
    margin = draw(st.integers(0, 64))
    overlap = d * draw(st.integers(-(-2 * margin // d), 10))
    tile = d * draw(st.integers(overlap // d + 1, 40))
    return TilingConfig(tile_size=tile, overlap=overlap, margin=margin, batch_size=draw(st.integers(1, 8)))


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 3000), config=configs())
def test_axis_layout_is_aligned_and_covers_scene_with_context(length: int, config: TilingConfig) -> None:
    ax = axis_tiles(length, config)
    origins = ax.origins
    assert (origins % DEFAULT_DOWNSAMPLING == 0).all()
    assert ax.tile % DEFAULT_DOWNSAMPLING == 0 and ax.tile <= config.tile_size
    assert (np.diff(origins) == config.stride).all()
    start, stop = ax.canvas
    # at least `margin` pixels of reflected context on both sides of the scene
    assert start <= -config.margin and stop >= length + config.margin
    # every scene pixel is inside some tile's un-cropped part (>= margin from an inner edge)
    covered = np.zeros(length, dtype=bool)
    for k, o in enumerate(origins):
        lo = o + (config.margin if k > 0 else 0)
        hi = o + ax.tile - (config.margin if k < ax.count - 1 else 0)
        covered[max(lo, 0) : max(min(hi, length), 0)] = True
    assert covered.all()
    # minimal: dropping the last tile would leave the end of the canvas uncovered
    if ax.count > 1:
        assert origins[-2] + ax.tile < length + config.margin
    # finishing boundaries advance monotonically to the scene length
    bounds = [ax.final_before(k) for k in range(ax.count)]
    assert bounds == sorted(bounds) and bounds[-1] == length


def test_small_scene_gets_one_small_tile_padded_to_16() -> None:
    ax = axis_tiles(100, TilingConfig(tile_size=512, overlap=128, margin=48))
    assert ax.count == 1 and ax.tile == 208  # 48 + 100 + 48 = 196, rounded up to 16
    assert ax.origin(0) == -48


def test_grid_iterates_row_major_with_aligned_origins() -> None:
    grid = tile_grid(700, 900, TilingConfig(tile_size=256, overlap=112))
    tiles = list(grid)
    assert len(tiles) == len(grid) == grid.shape[0] * grid.shape[1]
    assert [(i, j) for i, j, _, _ in tiles] == sorted((i, j) for i, j, _, _ in tiles)
    assert all(r % 16 == 0 and c % 16 == 0 for _, _, r, c in tiles)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), lo=st.integers(-200, 0), span=st.integers(1, 300))
def test_reflect_index_matches_numpy_reflect_padding(n: int, lo: int, span: int) -> None:
    values = np.arange(n) * 10 + 7
    pad_before, pad_after = -lo, max(0, lo + span - n)
    padded = np.pad(values, (pad_before, pad_after), mode="reflect")
    idx = np.arange(lo, lo + span)
    assert (values[reflect_index(idx, n)] == padded[idx - lo]).all()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"tile_size": 500}, ["tile_size=500", "multiple", "512"]),
        ({"overlap": 100}, ["overlap=100", "multiple", "112"]),
        ({"overlap": 64, "margin": 48}, ["overlap=64", "2 * margin=96", "overlap >= 96"]),
        ({"tile_size": 128, "overlap": 128}, ["overlap=128", "tile_size=128"]),
        ({"margin": -1}, ["margin=-1"]),
        ({"batch_size": 0}, ["batch_size=0"]),
    ],
)
def test_bad_config_raises_value_error_naming_value_and_fix(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as exc:
        TilingConfig(**kwargs)
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_non_integer_sizes_are_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"tile_size=512\.0 is not an integer; give a whole number of pixels"):
        TilingConfig(tile_size=512.0)  # type: ignore[arg-type]


def test_config_checked_against_model_downsampling() -> None:
    config = TilingConfig(tile_size=528, overlap=128)  # fine for 16, not for 32
    check_config(config, 16)
    with pytest.raises(ValueError, match="tile_size=528.*downsampling factor 32"):
        check_config(config, 32)

    class Coarse(nn.Module):
        downsampling = 32

    assert model_downsampling(Coarse()) == 32
    assert model_downsampling(nn.Identity()) == 16


def test_blend_width_is_overlap_beyond_margins_capped_at_stride() -> None:
    assert TilingConfig(tile_size=512, overlap=128, margin=48).blend_width == 32
    assert TilingConfig(tile_size=128, overlap=96, margin=48).blend_width == 0  # hard cut in the middle
    assert TilingConfig(tile_size=256, overlap=192, margin=16).blend_width == 64  # capped at the stride
