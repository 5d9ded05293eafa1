"""ONNX export: same numbers as torch on a real tile, dynamic H/W, card in metadata_props."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sar2opt_geo.models import InputDomain, ModelCard
from sar2opt_geo.models.checkpoint import save_generator
from sar2opt_geo.models.onnx_export import compare_onnx, export_onnx, read_onnx_card
from sar2opt_geo.models.reference import ReferenceResnetGenerator
from sar2opt_geo.normalize import uint8_to_unit, unit_to_model

LA_DOMAIN = InputDomain(
    sensor="Sentinel-1", bands=("VH",), quantity="sigma0", normalisation="percentile",
    percentile=99.0, quantize_levels=255, pixel_spacing_m=10.0, frequency_band="C",
)


def _card(arch: str = "unet_article", **args) -> ModelCard:
    return ModelCard(name="tiny-test", architecture=arch, architecture_args=args, input=LA_DOMAIN)


@pytest.fixture(scope="module")
def real_tile(request) -> np.ndarray:
    """A 256 x 256 crop of a real Sentinel-1 VH tile, normalised per LA_DOMAIN (8-bit /255 -> [-1, 1])."""
    la_pairs = request.getfixturevalue("la_pairs")
    path = min((la_pairs / "sar").glob("*.tif"))
    with rasterio.open(path) as src:
        dn = src.read(1, window=Window(col_off=384, row_off=384, width=256, height=256))
    x = unit_to_model(uint8_to_unit(dn))
    assert x.shape == (256, 256) and x.std() > 0.05  # real signal, not a flat crop
    return x[None, None].astype(np.float32)


def test_onnx_matches_torch_on_real_tile(tmp_path, tiny_generator, real_tile):
    gen = tiny_generator(1, 3)
    ckpt = save_generator(gen, _card(in_channels=1, out_channels=3, width=0.125), tmp_path / "g.safetensors")
    onnx_path = export_onnx(ckpt, tmp_path / "g.onnx")
    diff = compare_onnx(onnx_path, gen, real_tile)
    print(f"max |onnxruntime - torch| on a real 256x256 VH tile: {diff:.3g}")
    assert diff <= 1e-4
    # dynamic H/W (and batch): a non-square size the trace never saw
    x2 = np.concatenate([real_tile[..., :160, :224]] * 2)
    assert compare_onnx(onnx_path, gen, x2) <= 1e-4


def test_onnx_metadata_holds_card_and_deepness_keys(tmp_path, tiny_generator):
    import onnx

    gen = tiny_generator(1, 3)
    card = _card(in_channels=1, out_channels=3, width=0.125)
    path = export_onnx((gen, card), tmp_path / "m.onnx", io_range="unit")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["model_type"]) == "Superresolution"
    assert json.loads(props["class_names"]) == {"0": "red", "1": "green", "2": "blue"}
    assert json.loads(props["resolution"]) == pytest.approx(1000.0)  # 10 m = 1000 cm per pixel
    assert json.loads(props["sar2opt_io_range"]) == "unit"
    assert read_onnx_card(path) == card
    inputs = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in inputs] == ["batch", 1, "height", "width"]
    assert not path.with_name(f".{path.name}.tmp").exists()


def test_unit_io_range_and_reference_net(tmp_path, real_tile):
    import torch

    torch.manual_seed(1)
    net = ReferenceResnetGenerator(in_channels=1, out_channels=3, n_blocks=2, ngf=4, input_nc=3).eval()
    card = _card("pix2pix_resnet", in_channels=1, out_channels=3, n_blocks=2, ngf=4, input_nc=3)
    path = export_onnx((net, card), tmp_path / "r.onnx", io_range="unit")
    unit = (real_tile[..., :128, :96] + 1) / 2
    assert compare_onnx(path, net, unit, io_range="unit") <= 1e-4
    import onnxruntime as ort

    out = ort.InferenceSession(str(path)).run(None, {"input": unit})[0]
    assert out.shape == (1, 3, 128, 96) and out.min() >= 0.0 and out.max() <= 1.0


def test_cli_export_onnx(tmp_path, tiny_generator):
    from sar2opt_geo.cli.main import main

    ckpt = save_generator(tiny_generator(1, 3), _card(in_channels=1, out_channels=3, width=0.125), tmp_path / "g.safetensors")
    assert main(["export-onnx", str(ckpt), str(tmp_path / "g.onnx"), "--io-range", "unit"]) == 0
    card = read_onnx_card(tmp_path / "g.onnx")
    assert card.name == "tiny-test"
