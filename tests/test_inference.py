"""run_tiled: exactness against one whole-image pass, streaming, nodata, modes, hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window
from torch import nn

from sar2opt_geo.engine import TilingConfig, run_tiled, tile_grid
from sar2opt_geo.errors import CancelledError

#: One-sided receptive field of the article's U-Net, in pixels (45..60 by position mod 16).
RECEPTIVE_FIELD = 60


class Events:
    """Records read/write calls and checks the streaming contract as they happen."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.bands, self.height, self.width = image.shape
        self.out: np.ndarray | None = None
        self.written = np.zeros((self.height, self.width), dtype=np.int32)
        self.next_row = 0
        self.log: list[tuple[str, int, int]] = []  # ("read"|"write", row_off, row_end)

    def read(self, w: Window) -> np.ndarray:
        assert 0 <= w.row_off and w.row_off + w.height <= self.height, w
        assert 0 <= w.col_off and w.col_off + w.width <= self.width, w
        self.log.append(("read", w.row_off, w.row_off + w.height))
        return self.image[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width].copy()

    def write(self, w: Window, a: np.ndarray) -> None:
        assert w.row_off == self.next_row, "row blocks must come in order"
        assert w.col_off == 0 and w.width == self.width and a.shape[1:] == (w.height, self.width)
        assert a.dtype == np.float32
        if self.out is None:
            self.out = np.full((a.shape[0], self.height, self.width), -9.0, dtype=np.float32)
        self.out[:, w.row_off : w.row_off + w.height] = a
        self.written[w.row_off : w.row_off + w.height] += 1
        self.next_row = w.row_off + w.height
        self.log.append(("write", w.row_off, self.next_row))


def run(model: nn.Module, image: np.ndarray, config: TilingConfig, **kwargs):
    ev = Events(image)
    stats = run_tiled(model, ev.read, ev.height, ev.width, ev.write, config, **kwargs)
    assert (ev.written == 1).all(), "every pixel written exactly once"
    return ev.out, stats, ev


def canvas_reference(model: nn.Module, image: np.ndarray, config: TilingConfig) -> np.ndarray:
    """One forward pass over the whole scene, reflection-padded exactly like the tile grid."""
    _, h, w = image.shape
    grid = tile_grid(h, w, config)
    (r0, r1), (c0, c1) = grid.rows.canvas, grid.cols.canvas
    x = np.pad(image, ((0, 0), (-r0, r1 - h), (-c0, c1 - w)), mode="reflect")
    with torch.inference_mode():
        y = model.eval()(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()
    return y[:, -r0 : -r0 + h, -c0 : -c0 + w]


def plain_reference(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """One forward pass over the unpadded scene (edge-extended at the end to a multiple of 16)."""
    _, h, w = image.shape
    x = np.pad(image, ((0, 0), (0, -h % 16), (0, -w % 16)), mode="edge")
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(x)[None])[0].numpy()[:, :h, :w]


def border_distance(h: int, w: int) -> np.ndarray:
    r = np.minimum(np.arange(h), h - 1 - np.arange(h))
    c = np.minimum(np.arange(w), w - 1 - np.arange(w))
    return np.minimum.outer(r, c)


@pytest.fixture(scope="module")
def landsat_gray(request) -> np.ndarray:
    """600 x 700 window of the real Landsat-8 scene: luminance scaled to [-1, 1], (1, 600, 700) float32."""
    import rasterio

    path: Path = request.getfixturevalue("landsat8_tif")
    with rasterio.open(path) as src:
        blue, green, red = src.read(window=Window(col_off=600, row_off=500, width=700, height=600)).astype(np.float32)
    lum = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    lo, hi = np.percentile(lum, [1, 99])
    return np.clip(2 * (lum - lo) / (hi - lo) - 1, -1, 1)[None].astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on small tiles: thread start-up and sync cost more than they save (and far more
    on a busy 2-core machine, measured 3-20x), so these tests run torch on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PixelModel(nn.Module):
    """A per-pixel stand-in for a generator: output bands ``(x, -x)``. No receptive field."""

    downsampling = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, -x], dim=1)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    ("tile_size", "overlap", "crop"),
    [(128, 96, (192, 256)), (192, 128, (256, 320)), (256, 112, (448, 600))],
)
def test_tiled_equals_whole_image_pass_on_landsat(landsat_gray, tiny_generator, tile_size, overlap, crop) -> None:
    image = landsat_gray[:, : crop[0], : crop[1]]
    model = tiny_generator()
    config = TilingConfig(tile_size=tile_size, overlap=overlap, margin=48, batch_size=4)
    out, stats, _ = run(model, image, config)
    assert stats.tiles > 4 and stats.tiles_skipped == 0
    # padded the same way: equal everywhere, border included
    assert np.abs(out - canvas_reference(model, image, config)).max() <= 1e-4
    # padded differently (no padding at the start, edge at the end): equal one receptive field
    # (60 px) away from the border, where the padding cannot reach
    far = border_distance(*image.shape[1:]) >= RECEPTIVE_FIELD
    assert np.abs(out - plain_reference(model, image))[:, far].max() <= 1e-4


def test_margin_smaller_than_receptive_field_gives_larger_error(landsat_gray, tiny_generator) -> None:
    """Margin 16 leaves tile-edge zero padding in the output (measured ~6e-4 here), margin 48 does not."""
    model = tiny_generator()
    image = landsat_gray[:, :256, :320]
    errors = {}
    for margin, overlap in ((48, 112), (16, 32)):
        config = TilingConfig(tile_size=256, overlap=overlap, margin=margin, batch_size=4)
        out, _, _ = run(model, image, config)
        errors[margin] = float(np.abs(out - canvas_reference(model, image, config)).max())
    assert errors[48] <= 1e-4 < errors[16]
    assert errors[16] > 10 * errors[48]


def test_receptive_field_margin_is_47_px(tiny_generator) -> None:
    """In float64, a tile aligned to 16 reproduces the whole-image pass from 47 px inside its edges on.

    This is the number behind the default margin of 48 (47 rounded up to a multiple of 16).
    """
    model = tiny_generator().double()
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (1, 1, 256, 256)))
    with torch.inference_mode():
        whole = model(x)
        tile = model(x[:, :, 64:192, 48:208])  # origin (64, 48), aligned; 128 x 160 px
    ref = whole[:, :, 64:192, 48:208]

    def diff(m: int) -> float:
        return float((tile - ref)[:, :, m:-m, m:-m].abs().max())

    assert diff(47) < 1e-12
    assert diff(46) > 1e-9


def test_batch_size_does_not_change_the_result(landsat_gray, tiny_generator) -> None:
    model = tiny_generator()
    image = landsat_gray[:, :300, :400]
    a, sa, _ = run(model, image, TilingConfig(tile_size=256, overlap=96, batch_size=1))
    b, sb, _ = run(model, image, TilingConfig(tile_size=256, overlap=96, batch_size=4))
    assert sa.grid == (2, 3) and sa.batches == 6 and sb.batches == 2  # the first batch spans two tile rows
    assert np.abs(a - b).max() <= 1e-5


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (20, 300), (130, 3)])
def test_scenes_smaller_than_a_tile(tiny_generator, shape) -> None:
    model = tiny_generator(in_channels=3, out_channels=1)
    image = np.random.default_rng(2).uniform(-1, 1, (3, *shape)).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96)
    out, stats, _ = run(model, image, config)
    assert out.shape == (1, *shape) and np.isfinite(out).all()
    assert all(t % 16 == 0 for t in stats.tile_shape)
    assert np.abs(out - canvas_reference(model, image, config)).max() <= 1e-4


# --------------------------------------------------------------------------- streaming


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    tile=st.sampled_from([64, 96, 128, 256]),
    overlap_16=st.integers(0, 5),
    margin=st.integers(0, 40),
    batch=st.integers(1, 5),
)
def test_every_pixel_written_once_in_row_order_and_weights_normalised(height, width, tile, overlap_16, margin, batch) -> None:
    """No model: a per-pixel stand-in must come back unchanged, so weights sum to 1 everywhere."""
    overlap = max(16 * overlap_16, -(-2 * margin // 16) * 16)
    if overlap >= tile:
        overlap = tile - 16
        margin = min(margin, overlap // 2)
    config = TilingConfig(tile_size=tile, overlap=overlap, margin=margin, batch_size=batch)
    image = np.random.default_rng(height * 1000 + width).uniform(-1, 1, (1, height, width)).astype(np.float32)
    out, stats, _ = run(PixelModel(), image, config)  # run() checks order and once-only writes
    np.testing.assert_allclose(out, np.concatenate([image, -image]), rtol=0, atol=2e-7)
    assert stats.tiles == stats.grid[0] * stats.grid[1]
    # overlap rows are carried over, not read again (except a bounded re-read for the bottom reflection)
    assert height * width <= stats.pixels_read <= (height + tile) * width


def test_streaming_writes_while_reading_with_bounded_lag() -> None:
    """A tall scene: output rows leave while input is still being read; the lag is about two tile rows."""
    h, w, tile, overlap = 2000, 64, 128, 96
    image = np.linspace(-1, 1, h * w, dtype=np.float32).reshape(1, h, w)
    out, stats, ev = run(PixelModel(), image, TilingConfig(tile_size=tile, overlap=overlap, batch_size=2))
    writes = [e for e in ev.log if e[0] == "write"]
    assert len(writes) >= stats.grid[0] - 1  # one block per tile row (or batch)
    max_read = 0
    for kind, start, end in ev.log:
        if kind == "read":
            assert end - start <= tile  # a window never exceeds one tile row
            max_read = max(max_read, end)
        else:
            assert max_read - end <= 2 * tile  # rows in flight: bounded, independent of the height
    assert writes[0][2] < 2 * tile  # the first rows are written early
    np.testing.assert_allclose(out[0], image[0], atol=2e-7)


# --------------------------------------------------------------------------- nodata


def test_nodata_in_gives_nodata_out_and_all_nodata_tiles_are_skipped(landsat_gray, tiny_generator) -> None:
    model = tiny_generator()
    image = landsat_gray[:, :320, :480].copy()
    image[:, :, 300:] = np.nan  # a hole covering the whole weighted part of the last tile column
    image[:, 5, 7] = np.nan
    image[:, 250, 50] = np.inf
    image[0, 100:140, 150:170] = np.nan
    config = TilingConfig(tile_size=256, overlap=96, batch_size=4)
    out, stats, _ = run(model, image, config)
    bad = ~np.isfinite(image[0])
    assert np.isnan(out[:, bad]).all() and np.isfinite(out[:, ~bad]).all()
    assert stats.grid == (2, 3) and stats.tiles_skipped == 2
    # nodata is filled with 0 before the model; skipping tiles changes nothing elsewhere
    filled = np.where(np.isfinite(image), image, 0).astype(np.float32)
    ref, ref_stats, _ = run(model, filled, config)
    assert ref_stats.tiles_skipped == 0
    assert np.abs(out[:, ~bad] - ref[:, ~bad]).max() <= 1e-5


def test_all_nodata_scene_runs_no_batch_and_writes_nan() -> None:
    image = np.full((1, 150, 90), np.nan, dtype=np.float32)
    progress: list[float] = []
    out, stats, _ = run(PixelModel(), image, TilingConfig(tile_size=64, overlap=32, margin=16), progress=lambda f, m: progress.append(f))
    assert stats.tiles_skipped == stats.tiles and stats.batches == 0
    assert out.shape == (2, 150, 90) and np.isnan(out).all()
    assert progress == [1.0]


# --------------------------------------------------------------------------- modes


def test_stochastic_mode_is_seeded_and_keeps_batchnorm_in_eval(tiny_generator) -> None:
    model = tiny_generator()
    image = np.random.default_rng(3).uniform(-1, 1, (1, 64, 64)).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96, batch_size=3)  # 2 x 2 overlapping tiles
    rng_before = torch.get_rng_state()
    a, _, _ = run(model, image, config, stochastic=True, seed=7)
    b, _, _ = run(model, image, config, stochastic=True, seed=7)
    c, _, _ = run(model, image, config, stochastic=True, seed=8)
    d, _, _ = run(model, image, config)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random state is untouched
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2 and np.abs(a - d).max() > 1e-2
    assert not any(m.training for m in model.modules())  # modes restored
    # with dropout probability 0, stochastic mode equals eval mode: BatchNorm stayed in eval
    for m in model.modules():
        if isinstance(m, nn.Dropout2d):
            m.p = 0.0
    e, _, _ = run(model, image, config, stochastic=True, seed=7)
    assert np.abs(e - d).max() <= 1e-6


def test_stochastic_output_does_not_depend_on_the_tiling(landsat_gray, tiny_generator) -> None:
    """Issue 24: with SAMPLES=4 the spread had a hard break at a tile boundary, because every tile drew
    its own channel-dropout masks. One run is one realisation of the network now: a 12-tile run equals
    a one-tile run of the same seed, one receptive field from the border (float32 tiling tolerance,
    as in eval mode)."""
    image = landsat_gray[:, :192, :256]
    model = tiny_generator()
    tiled, stats, _ = run(model, image, TilingConfig(tile_size=128, overlap=96, margin=48, batch_size=3),
                          stochastic=True, seed=11)
    whole, one, _ = run(model, image, TilingConfig(tile_size=512, overlap=96, margin=48), stochastic=True, seed=11)
    assert stats.tiles >= 12 and one.tiles == 1
    far = border_distance(*image.shape[1:]) >= RECEPTIVE_FIELD
    assert np.abs(tiled - whole)[:, far].max() <= 1e-4
    other, _, _ = run(model, image, TilingConfig(tile_size=512, overlap=96, margin=48), stochastic=True, seed=12)
    assert np.abs(other - whole)[:, far].max() > 1e-2  # and the seed still matters


def test_module_modes_are_restored_even_after_an_error(tiny_generator) -> None:
    model = tiny_generator().train()
    image = np.zeros((1, 200, 200), dtype=np.float32)
    with pytest.raises(CancelledError, match="cancelled"):
        run(model, image, TilingConfig(tile_size=128, overlap=96), cancel=lambda: True)
    assert all(m.training for m in model.modules())


# --------------------------------------------------------------------------- hooks and errors


def test_progress_per_batch_and_cancel_between_batches() -> None:
    model = PixelModel()
    image = np.random.default_rng(4).uniform(-1, 1, (1, 200, 240)).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96, batch_size=4)
    calls: list[tuple[float, str]] = []
    _, stats, _ = run(model, image, config, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert len(calls) == stats.batches and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[-1][1] == f"tiles {stats.tiles}/{stats.tiles}"

    checks = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) == 3

    ev = Events(image)
    with pytest.raises(CancelledError, match=f"after 8 of {stats.tiles} tiles"):
        run_tiled(model, ev.read, 200, 240, ev.write, config, cancel=cancel)
    assert len(checks) == 3  # checked before each batch, stopped before the third


def test_errors_name_the_value_and_the_fix(tiny_generator) -> None:
    model = tiny_generator()
    image = np.zeros((1, 64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="autocast is only supported on CUDA"):
        run(model, image, TilingConfig(tile_size=128, overlap=96), autocast=True)
    with pytest.raises(ValueError, match=r"read\(.*\) returned an array of shape \(1, 3, 3\)"):
        run_tiled(model, lambda w: np.zeros((1, 3, 3), np.float32), 64, 64, lambda w, a: None, TilingConfig(128, 96))
    model.downsampling = 32
    with pytest.raises(ValueError, match="tile_size=144 .* downsampling factor 32"):
        run(model, image, TilingConfig(tile_size=144, overlap=96))

    class Shrinks(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, ::2, ::2]

    with pytest.raises(ValueError, match="keeps height and width"):
        run(Shrinks(), image, TilingConfig(tile_size=128, overlap=96))
    with pytest.raises(ValueError, match="height=0"):
        run_tiled(PixelModel(), lambda w: None, 0, 5, lambda w, a: None)


def test_margin_below_the_models_receptive_margin_is_warned(caplog) -> None:
    model = PixelModel()
    model.receptive_margin = 47
    image = np.zeros((1, 40, 40), dtype=np.float32)
    with caplog.at_level("WARNING", logger="sar2opt_geo.engine.inference"):
        run(model, image, TilingConfig(tile_size=64, overlap=32, margin=16))
    assert "margin=16 px is below the model's receptive-field margin of 47 px" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="sar2opt_geo.engine.inference"):
        run(model, image, TilingConfig(tile_size=128, overlap=96, margin=48))
    assert "receptive-field margin" not in caplog.text


def test_stochastic_masks_come_from_the_generator_passed_in(tiny_generator) -> None:
    """Randomness is passed in: a torch.Generator seeded 7 gives the seed=7 result; the global stream is untouched."""
    model = tiny_generator()
    image = np.random.default_rng(4).uniform(-1, 1, (1, 64, 64)).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96, batch_size=2)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, _, _ = run(model, image, config, stochastic=True, seed=7)
    b, _, _ = run(model, image, config, stochastic=True, generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(a, b)
    assert torch.equal(torch.rand(3), expected_next)  # no draw from the global generator
