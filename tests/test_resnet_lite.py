"""The cheap full-resolution generator (sar2opt_geo.models.resnet_lite): size, shape, exact tiling, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar2opt_geo.engine import TilingConfig, run_tiled
from sar2opt_geo.models import (
    GENERATORS,
    InputDomain,
    ModelCard,
    ResNetLiteGenerator,
    UNetGenerator,
)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _random_bn(g: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics, so that eval-mode BatchNorm is not the identity."""
    torch.manual_seed(seed)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return g.eval()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered_and_small():
    assert GENERATORS["resnet_lite"] is ResNetLiteGenerator
    g = ResNetLiteGenerator(1, 3)
    assert _params(g) == 639_075
    assert _params(g) < _params(UNetGenerator(1, 3)) / 5
    # a second input band (dual-pol) adds one 3x3 kernel per first-layer filter
    assert _params(ResNetLiteGenerator(2, 3)) == 639_075 + 16 * 9
    assert _params(ResNetLiteGenerator(1, 3, width=0.5)) < _params(g) / 3


def test_flops_are_a_seventh_of_the_article_unet():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(m: torch.nn.Module) -> int:  # on the meta device: counted, not computed
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m.to("meta").eval()(torch.zeros(1, 1, 256, 256, device="meta"))
        return fc.get_total_flops()

    lite, unet = flops(ResNetLiteGenerator(1, 3)), flops(UNetGenerator(1, 3))
    assert unet == pytest.approx(29.9e9, rel=0.01)
    assert lite == pytest.approx(4.15e9, rel=0.01)


@pytest.mark.parametrize("size", [(64, 64), (72, 120)])
def test_keeps_size_and_range(size):
    g = _random_bn(ResNetLiteGenerator(1, 3, width=0.5))
    x = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, *size)
    assert y.abs().max() <= 1.0


def test_instance_norm_is_refused():
    with pytest.raises(ValueError, match="instance norm"):
        ResNetLiteGenerator(norm="instance")


def test_receptive_margin_is_48_px():
    """In float64 a tile aligned to 8 reproduces the whole-image pass from 48 px inside its edges on
    (at every tested origin), and not from 47 px at some origin: the declared margin is exact."""
    g = _random_bn(ResNetLiteGenerator(1, 3, width=0.25)).double()
    assert g.downsampling == 8 and g.receptive_margin == 48
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (1, 1, 288, 288)))
    worst = {47: 0.0, 48: 0.0}
    with torch.no_grad():
        whole = g(x)
        for r0, c0 in ((64, 48), (72, 56), (80, 104), (88, 96)):  # all residues of 8-aligned origins mod 32
            tile = g(x[:, :, r0 : r0 + 160, c0 : c0 + 168])
            d = (tile - whole[:, :, r0 : r0 + 160, c0 : c0 + 168]).abs()
            for m, so_far in list(worst.items()):
                worst[m] = max(so_far, float(d[:, :, m:-m, m:-m].max()))
    assert worst[48] < 1e-12
    assert worst[47] > 1e-9


def test_tiled_inference_equals_one_whole_image_pass():
    """The engine's tiles with the default margin (48) give the whole-image output, border included
    when the whole image is reflection-padded like the tile grid."""
    from sar2opt_geo.engine import tile_grid

    g = _random_bn(ResNetLiteGenerator(1, 3, width=0.25))
    rng = np.random.default_rng(2)
    image = np.tanh(rng.normal(0, 1, (1, 200, 280))).astype(np.float32)
    config = TilingConfig(tile_size=128, overlap=96, margin=48, batch_size=4)
    out = np.full((3, 200, 280), np.nan, np.float32)

    def write(w, a):
        out[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = a

    def read(w):
        return image[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]

    stats = run_tiled(g, read, 200, 280, write, config)
    assert stats.tiles > 4
    grid = tile_grid(200, 280, config, g.downsampling)
    (r0, r1), (c0, c1) = grid.rows.canvas, grid.cols.canvas
    x = np.pad(image, ((0, 0), (-r0, r1 - 200), (-c0, c1 - 280)), mode="reflect")
    with torch.inference_mode():
        ref = g(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()[:, -r0 : -r0 + 200, -c0 : -c0 + 280]
    assert np.abs(out - ref).max() <= 1e-5


def test_onnx_export_matches_torch(tmp_path):
    from sar2opt_geo.models.checkpoint import load_model, save_generator
    from sar2opt_geo.models.onnx_export import compare_onnx, export_onnx

    g = _random_bn(ResNetLiteGenerator(1, 3, width=0.25))
    card = ModelCard(name="lite-test", architecture="resnet_lite",
                     architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.25},
                     input=InputDomain(sensor="Sentinel-1", bands=("VH",), quantity="sigma0", normalisation="percentile",
                                       percentile=99.0, quantize_levels=255))
    ckpt = save_generator(g, card, tmp_path / "lite.safetensors")
    loaded, _ = load_model(ckpt)
    x = np.tanh(np.random.default_rng(3).normal(0, 1, (1, 1, 96, 136))).astype(np.float32)
    onnx_path = export_onnx(ckpt, tmp_path / "lite.onnx")
    assert compare_onnx(onnx_path, loaded, x) <= 1e-4
    assert compare_onnx(onnx_path, loaded, np.concatenate([x[..., :64, :80]] * 2)) <= 1e-4  # dynamic size and batch
