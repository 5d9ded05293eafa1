"""engine.fast_unet: the inference rewrite equals the original U-Net (eval mode), or is not applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sar2opt_geo.engine.fast_unet import (
    FastUNet,
    UpsampleConv,
    _axis_patterns,
    optimise_for_inference,
)
from sar2opt_geo.models import UNetGenerator


def random_unet(in_channels: int, width: float, seed: int = 0, norm: str = "batch") -> UNetGenerator:
    """Random weights and random BatchNorm statistics and affine parameters, eval mode."""
    torch.manual_seed(seed)
    g = UNetGenerator(in_channels, 3, width=width, norm=norm)
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.4, 1.6)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return g.eval()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_axis_patterns_of_nearest_upsampling() -> None:
    """x4: phases 0..3 read low-res offsets {-1, 0}, {0}, {0}, {0, +1}; phases 1 and 2 share a kernel."""
    four = {ph: (first, taps) for ph, first, taps in _axis_patterns(4)}
    assert four == {(0,): (-1, [[0], [1, 2]]), (1, 2): (0, [[0, 1, 2]]), (3,): (0, [[0, 1], [2]])}
    two = {ph: (first, taps) for ph, first, taps in _axis_patterns(2)}
    assert two == {(0,): (-1, [[0], [1, 2]]), (1,): (0, [[0, 1], [2]])}


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_conv_equals_upsample_then_conv(scale: int, channels_last: bool) -> None:
    torch.manual_seed(scale)
    w, b = torch.randn(5, 7, 3, 3), torch.randn(5)
    x = torch.randn(2, 7, 6, 9)
    ref = torch.relu(nn.functional.conv2d(nn.functional.interpolate(x, scale_factor=scale, mode="nearest"), w, b, padding=1))
    mod = UpsampleConv(w, b, scale)
    if channels_last:
        mod = mod.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    got = mod(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-6 * (1 + ref.abs().max())  # float rounding (values reach ~10 here)


@pytest.mark.parametrize("width", [1.0, 0.25])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("channels_last", [True, False])
def test_rewrite_equals_the_original_module(width: float, in_channels: int, channels_last: bool) -> None:
    model = random_unet(in_channels, width, seed=int(width * 8) + in_channels)
    fast = optimise_for_inference(model, channels_last=channels_last)
    assert isinstance(fast, FastUNet) and fast is not model
    assert fast.downsampling == 16 and fast.receptive_margin == 47 and fast.out_channels == 3
    x = torch.rand(2, in_channels, 64, 96) * 2 - 1
    with torch.inference_mode():
        want, got = model(x), fast(x)
    assert got.shape == want.shape and got.is_contiguous()
    assert (got - want).abs().max().item() <= 1e-5
    assert not any(m.training for m in model.modules())  # the original is left as it was


def test_rewrite_with_norm_none_and_without_bias_free_norms() -> None:
    model = random_unet(1, 0.25, norm="none")
    fast = optimise_for_inference(model)
    assert isinstance(fast, FastUNet)
    x = torch.rand(1, 1, 48, 32) * 2 - 1
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max().item() <= 1e-5


def test_unknown_or_unsupported_models_are_returned_unchanged() -> None:
    inst = random_unet(1, 0.25, norm="instance")  # per-tile statistics: nothing to fold
    assert optimise_for_inference(inst) is inst
    conv = nn.Conv2d(1, 3, 3, padding=1)
    assert optimise_for_inference(conv) is conv

    class Sub(UNetGenerator):  # a subclass may change forward: not rewritten
        pass

    sub = Sub(1, 3, width=0.125).eval()
    assert optimise_for_inference(sub) is sub
    changed = random_unet(1, 0.125)
    changed.dec3[0] = nn.Upsample(scale_factor=4, mode="bilinear")
    assert optimise_for_inference(changed) is changed
    no_stats = random_unet(1, 0.125)
    no_stats.enc2[2].track_running_stats = False
    assert optimise_for_inference(no_stats) is no_stats


def test_tiled_rewrite_matches_the_original_whole_image_pass() -> None:
    """run_tiled (which runs the rewrite) against one whole-image pass of the ORIGINAL module."""
    from sar2opt_geo.engine import TilingConfig, run_tiled, tile_grid

    model = random_unet(1, 0.25, seed=5)
    rng = np.random.default_rng(0)
    image = np.cumsum(rng.normal(size=(1, 200, 260)), axis=2).astype(np.float32)
    image = np.tanh(image / 8).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96, batch_size=3)
    out = np.zeros((3, 200, 260), np.float32)

    def write(w, a):
        out[:, w.row_off : w.row_off + w.height] = a

    stats = run_tiled(model, lambda w: image[:, w.row_off : w.row_off + w.height], 200, 260, write, config)
    assert stats.tiles > 4 and stats.backend == "torch cpu FastUNet"  # the rewrite ran
    grid = tile_grid(200, 260, config)
    (r0, r1), (c0, c1) = grid.rows.canvas, grid.cols.canvas
    x = np.pad(image, ((0, 0), (-r0, r1 - 200), (-c0, c1 - 260)), mode="reflect")
    with torch.inference_mode():
        ref = model(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()[:, -r0 : -r0 + 200, -c0 : -c0 + 260]
    assert np.abs(out - ref).max() <= 1e-4


def test_building_the_rewrite_leaves_the_global_random_state_alone() -> None:
    model = random_unet(1, 0.125)
    before = torch.get_rng_state()
    optimise_for_inference(model)
    assert torch.equal(torch.get_rng_state(), before)


def test_stochastic_mode_and_optimise_false_run_the_original_module() -> None:
    from sar2opt_geo.engine import TilingConfig, run_tiled

    model = random_unet(1, 0.125)
    image = np.zeros((1, 40, 40), np.float32)
    for kwargs in ({"stochastic": True}, {"optimise": False}):
        stats = run_tiled(model, lambda w: image[:, w.row_off : w.row_off + w.height], 40, 40, lambda w, a: None,
                          TilingConfig(tile_size=128, overlap=96), **kwargs)
        assert stats.backend == "torch cpu UNetGenerator"
