"""ONNX export: same numbers as torch on a real tile; generic (dynamic H/W) and Deepness targets; card in metadata_props."""

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


def test_generic_onnx_metadata_holds_card_and_claims_no_deepness_type(tmp_path, tiny_generator):
    import onnx

    gen = tiny_generator(1, 3)
    card = _card(in_channels=1, out_channels=3, width=0.125)
    path = export_onnx((gen, card), tmp_path / "m.onnx", io_range="unit")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert "model_type" not in props and "tiles_size" not in props  # Deepness refuses dynamic H/W: no claim
    assert json.loads(props["sar2opt_target"]) == "generic"
    assert json.loads(props["sar2opt_band_names"]) == ["red", "green", "blue"]
    assert json.loads(props["sar2opt_io_range"]) == "unit"
    assert read_onnx_card(path) == card
    inputs = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in inputs] == ["batch", 1, "height", "width"]
    assert not path.with_name(f".{path.name}.tmp").exists()


def _shape(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_deepness_export_follows_deepness_contract_bug(tmp_path, tiny_generator, la_pairs):
    """Deepness refused the old export (dynamic H/W: "only square outputs masks"; it reads ``tile_size``,
    not ``tiles_size``; "Superresolution" fails at scale 1 with overlap). The Deepness target has a static
    square input, one (N, 1, T, T) output per band for its Regressor type and the metadata its classes read;
    run here in onnxruntime on one real tile prepared the way Deepness prepares it (raster / 255, standardised)."""
    import onnx
    import onnxruntime as ort
    import torch

    from sar2opt_geo.models.onnx_export import _deepness_overlap_px

    gen = tiny_generator(1, 3)
    card = _card(in_channels=1, out_channels=3, width=0.125)
    path = export_onnx((gen, card), tmp_path / "deepness.onnx", target="deepness", tile_size=256)
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"] and _shape(proto.graph.input[0]) == ["batch", 1, 256, 256]
    assert [o.name for o in proto.graph.output] == ["red", "green", "blue"]
    assert all(_shape(o) == ["batch", 1, 256, 256] for o in proto.graph.output)
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["model_type"] == "Regressor"  # == Deepness' ModelType.REGRESSION (its class name)
    assert meta["class_names"] == [{"0": "red"}, {"0": "green"}, {"0": "blue"}]
    assert meta["resolution"] == pytest.approx(1000.0) and meta["tile_size"] == 256 and "tiles_size" not in meta
    overlap_px = _deepness_overlap_px(256, meta["tiles_overlap"])  # Deepness' own rounding of the percentage
    assert overlap_px // 2 >= 48 and (256 - overlap_px) % 16 == 0  # crop covers the receptive field; tiles on the 16 lattice
    assert meta["standardization_mean"] == [0.5] and meta["standardization_std"] == [0.5]
    assert meta["reg_output_scaling"] == 255.0 and meta["sar2opt_target"] == "deepness"
    assert ModelCard.from_dict(meta["sar2opt_card"]) == card

    with rasterio.open(min((la_pairs / "sar").glob("*.tif"))) as src:
        raw = src.read(1, window=Window(col_off=384, row_off=384, width=256, height=256))
    fed = ((raw[None, None].astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)  # what Deepness feeds
    outs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": fed})
    with torch.inference_mode():
        want = (gen.eval()(torch.from_numpy(unit_to_model(uint8_to_unit(raw))[None, None])) + 1.0) / 2.0
    got = np.concatenate(outs, axis=1)
    assert got.shape == (1, 3, 256, 256)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    assert compare_onnx(path, gen, fed) <= 1e-4


def test_deepness_export_refuses_tiles_it_cannot_run(tmp_path, tiny_generator):
    from sar2opt_geo.errors import ConfigError

    gen, card = tiny_generator(1, 3), _card(in_channels=1, out_channels=3, width=0.125)
    with pytest.raises(ConfigError, match="multiple of 16"):
        export_onnx((gen, card), tmp_path / "a.onnx", target="deepness", tile_size=200)
    with pytest.raises(ConfigError, match=r"larger than 2 x 48"):
        export_onnx((gen, card), tmp_path / "b.onnx", target="deepness", tile_size=96)
    with pytest.raises(ConfigError, match="generic target only"):
        export_onnx((gen, card), tmp_path / "c.onnx", target="deepness", io_range="unit")
    assert not list(tmp_path.iterdir())


def test_deepness_overlap_percent():
    from sar2opt_geo.models.onnx_export import (
        _deepness_overlap_px,
        deepness_overlap_percent,
    )

    for tile in (256, 512, 768, 1024):
        p = deepness_overlap_percent(tile, 48)
        px = _deepness_overlap_px(tile, p)
        assert px // 2 >= 48 and (tile - px) % 16 == 0
        assert not any(_deepness_overlap_px(tile, q) // 2 >= 48 and (tile - _deepness_overlap_px(tile, q)) % 16 == 0
                       for q in range(1, p))  # the smallest such percentage
    assert deepness_overlap_percent(512, 48) == 22  # 112 px: 56 px cropped per side, stride 400


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
    assert main(["export-onnx", str(ckpt), str(tmp_path / "d.onnx"), "--target", "deepness", "--tile-size", "256"]) == 0
    import onnx

    assert _shape(onnx.load(str(tmp_path / "d.onnx")).graph.input[0]) == ["batch", 1, 256, 256]
    with pytest.raises(SystemExit):
        main(["export-onnx", str(ckpt), str(tmp_path / "e.onnx"), "--target", "deepness", "--io-range", "unit"])
