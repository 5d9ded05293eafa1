"""``run_tiled(..., rows=(r0, r1))``: a row band of the whole-scene tile grid gives the very
values of the whole-scene run (the basis of splitting one scene over several workers)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sar2opt_geo.engine import TilingConfig, run_tiled, tile_grid
from sar2opt_geo.errors import ConfigError

H, W = 560, 120


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """Synthetic model-domain input with a nodata block (NaN)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, H, W)).astype(np.float32)
    x[:, 100:180, 50:120] = np.nan
    return x


def _run(model, x, config, rows=None):
    out = np.full((3, H, W), np.inf, dtype=np.float32)  # inf = never written
    reads, writes = [], []

    def read(w):
        reads.append((int(w.row_off), int(w.row_off + w.height)))
        return x[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]

    def write(w, y):
        r0, r1 = int(w.row_off), int(w.row_off + w.height)
        assert np.isinf(out[:, r0:r1]).all(), "a row was written twice"
        writes.append((r0, r1))
        out[:, r0:r1] = y

    stats = run_tiled(model, read, H, W, write, config, rows=rows)
    return out, stats, reads, writes


@pytest.mark.parametrize("config", [TilingConfig(256, 128, 48, 4), TilingConfig(160, 96, 48, 3),
                                    TilingConfig(512, 128, 48, 1)], ids=["256-4", "160-3", "512-1"])
def test_row_bands_are_bit_identical_to_the_whole_scene_run(tiny_generator, scene, config):
    model = tiny_generator()
    whole, whole_stats, _, _ = _run(model, scene, config)
    grid = tile_grid(H, W, config)
    for cuts in ([0, H], [0, 17, 300, 301, H], [0, 160, 288, H]):
        tiles = 0
        for r0, r1 in itertools.pairwise(cuts):
            band, stats, reads, writes = _run(model, scene, config, rows=(r0, r1))
            assert np.isinf(band[:, :r0]).all() and np.isinf(band[:, r1:]).all()  # only its own rows
            np.testing.assert_array_equal(band[:, r0:r1], whole[:, r0:r1])  # bit for bit, NaN where nodata
            assert writes[0][0] == r0 and writes[-1][1] == r1
            assert all(a[1] == b[0] for a, b in itertools.pairwise(writes))  # consecutive blocks, in order
            # only the tile rows touching the band were read and run
            touching = [i for i in range(grid.rows.count)
                        if grid.rows.origin(i) < r1 and grid.rows.origin(i) + grid.rows.tile > r0]
            lo = max(0, grid.rows.origin(touching[0]))
            hi = min(H, grid.rows.origin(touching[-1]) + grid.rows.tile)
            assert min(a for a, _ in reads) >= max(0, lo - grid.rows.tile) and max(b for _, b in reads) <= hi
            assert stats.tiles == len(touching) * grid.cols.count
            tiles += stats.tiles
        assert tiles >= whole_stats.tiles  # tile rows at a band edge are run by both bands


def test_rows_out_of_range_is_a_config_error(tiny_generator, scene):
    with pytest.raises(ConfigError, match="rows="):
        run_tiled(tiny_generator(), lambda w: scene, H, W, lambda w, y: None, TilingConfig(256, 128), rows=(300, 300))
    with pytest.raises(ConfigError, match=f"height={H}"):
        run_tiled(tiny_generator(), lambda w: scene, H, W, lambda w, y: None, TilingConfig(256, 128), rows=(0, H + 1))


def test_a_lone_last_tile_gets_the_values_it_has_in_a_full_batch(tiny_generator, scene):
    """Regression: CPU convolutions take another code path for a batch of one tile (last-bit
    differences), so the whole-scene run, whose last batch held one tile, differed from a band
    that ran the same tile in a batch of four. With 256/128 tiles the grid is 5 x 1 tiles: the
    whole run has batches of 4 and 1, the band [208, H) one batch of 4 holding that last tile."""
    config = TilingConfig(256, 128, 48, 4)
    model = tiny_generator()
    whole, whole_stats, _, _ = _run(model, scene, config)
    band, stats, _, _ = _run(model, scene, config, rows=(208, H))
    assert (whole_stats.tiles, whole_stats.batches, stats.tiles, stats.batches) == (5, 2, 4, 1)
    np.testing.assert_array_equal(band[:, 208:], whole[:, 208:])
