"""Reference CycleGAN-and-pix2pix generators: key-for-key compatible state dicts, import to safetensors.

The expected state dicts are built here from the upstream layer order (models/networks.py
of junyanz/pytorch-CycleGAN-and-pix2pix), independently of sar2opt_geo.models.reference,
so a change of module tree on our side that breaks upstream compatibility fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar2opt_geo.errors import CheckpointError
from sar2opt_geo.models import GENERATORS, InputDomain, build_generator
from sar2opt_geo.models.checkpoint import load_model, read_card
from sar2opt_geo.models.reference import (
    ReferenceResnetGenerator,
    ReferenceUnetGenerator,
    detect_reference_architecture,
    load_reference_state_dict,
)
from sar2opt_geo.models.reference_import import import_reference_checkpoint


def _bn(prefix: str, c: int, out: dict[str, tuple[int, ...]]) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"{prefix}.{name}"] = (c,)
    out[f"{prefix}.num_batches_tracked"] = ()


def upstream_unet_shapes(input_nc: int, output_nc: int, num_downs: int, ngf: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of upstream UnetGenerator(norm=batch): block model = [relu, down, norm, sub, relu, up, norm]."""
    # (outer_nc, inner_nc) from the outermost level inwards
    levels = [(output_nc, ngf), (ngf, ngf * 2), (ngf * 2, ngf * 4), (ngf * 4, ngf * 8)]
    levels += [(ngf * 8, ngf * 8)] * (num_downs - 5) + [(ngf * 8, ngf * 8)]
    shapes: dict[str, tuple[int, ...]] = {}
    prefix = "model.model"
    for i, (outer, inner) in enumerate(levels):
        if i == 0:  # outermost: [downconv (no bias), submodule, relu, upconv (bias), tanh]
            shapes[f"{prefix}.0.weight"] = (inner, input_nc, 4, 4)
            shapes[f"{prefix}.3.weight"] = (inner * 2, outer, 4, 4)
            shapes[f"{prefix}.3.bias"] = (outer,)
            prefix = f"{prefix}.1.model"
        elif i == len(levels) - 1:  # innermost: [leaky, downconv, relu, upconv, upnorm]
            shapes[f"{prefix}.1.weight"] = (inner, outer, 4, 4)
            shapes[f"{prefix}.3.weight"] = (inner, outer, 4, 4)
            _bn(f"{prefix}.4", outer, shapes)
        else:
            shapes[f"{prefix}.1.weight"] = (inner, outer, 4, 4)
            _bn(f"{prefix}.2", inner, shapes)
            shapes[f"{prefix}.5.weight"] = (inner * 2, outer, 4, 4)
            _bn(f"{prefix}.6", outer, shapes)
            prefix = f"{prefix}.3.model"
    return shapes


def upstream_resnet_shapes(input_nc: int, output_nc: int, n_blocks: int, ngf: int, dropout: bool) -> dict[str, tuple[int, ...]]:
    """Key -> shape of upstream ResnetGenerator(norm=batch), a flat Sequential ``model``."""
    shapes: dict[str, tuple[int, ...]] = {"model.1.weight": (ngf, input_nc, 7, 7)}
    _bn("model.2", ngf, shapes)
    shapes["model.4.weight"] = (ngf * 2, ngf, 3, 3)
    _bn("model.5", ngf * 2, shapes)
    shapes["model.7.weight"] = (ngf * 4, ngf * 2, 3, 3)
    _bn("model.8", ngf * 4, shapes)
    idx = 10
    second = 6 if dropout else 5
    for _ in range(n_blocks):
        shapes[f"model.{idx}.conv_block.1.weight"] = (ngf * 4, ngf * 4, 3, 3)
        _bn(f"model.{idx}.conv_block.2", ngf * 4, shapes)
        shapes[f"model.{idx}.conv_block.{second}.weight"] = (ngf * 4, ngf * 4, 3, 3)
        _bn(f"model.{idx}.conv_block.{second + 1}", ngf * 4, shapes)
        idx += 1
    shapes[f"model.{idx}.weight"] = (ngf * 4, ngf * 2, 3, 3)  # ConvTranspose2d (in, out, k, k)
    _bn(f"model.{idx + 1}", ngf * 2, shapes)
    shapes[f"model.{idx + 3}.weight"] = (ngf * 2, ngf, 3, 3)
    _bn(f"model.{idx + 4}", ngf, shapes)
    shapes[f"model.{idx + 7}.weight"] = (output_nc, ngf, 7, 7)
    shapes[f"model.{idx + 7}.bias"] = (output_nc,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            state[k] = torch.rand(s, generator=g) + 0.5
        else:
            state[k] = torch.randn(s, generator=g) * 0.1
    return state


def test_unet_256_keys_and_shapes_match_upstream():
    net = ReferenceUnetGenerator(in_channels=3, out_channels=3, num_downs=8, ngf=2)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == upstream_unet_shapes(3, 3, 8, 2)
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in ours  # innermost down
    assert net.downsampling == 256
    assert net.receptive_margin == 511  # the tiling engine warns when its margin is smaller


def test_resnet_keys_and_shapes_match_upstream():
    for dropout in (False, True):
        net = ReferenceResnetGenerator(in_channels=1, out_channels=3, n_blocks=9, ngf=2, use_dropout=dropout)
        ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert ours == upstream_resnet_shapes(1, 3, 9, 2, dropout)


def test_detect_architecture_from_upstream_keys():
    arch, args = detect_reference_architecture(random_state(upstream_unet_shapes(3, 3, 8, 4)))
    assert arch == "pix2pix_unet"
    assert (args["num_downs"], args["ngf"], args["input_nc"], args["out_channels"], args["norm"]) == (8, 4, 3, 3, "batch")
    arch, args = detect_reference_architecture(random_state(upstream_resnet_shapes(1, 3, 6, 4, True)))
    assert arch == "pix2pix_resnet"
    assert (args["n_blocks"], args["ngf"], args["use_dropout"], args["out_channels"]) == (6, 4, True, 3)
    with pytest.raises(CheckpointError):
        detect_reference_architecture({"foo.weight": torch.zeros(3, 3, 3, 3)})


def test_import_unet_256_pth_with_module_prefix(tmp_path):
    state = random_state(upstream_unet_shapes(3, 3, 8, 2))
    pth = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, pth)  # DataParallel-saved
    assert set(load_reference_state_dict(pth)) == set(state)

    domain = InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0", normalisation="db_clip",
                         units="db", db_range=(-25.0, 0.0), frequency_band="C")
    dst = import_reference_checkpoint(pth, tmp_path / "ref.safetensors", domain, net="unet_256")
    card = read_card(dst)
    assert card.architecture == "pix2pix_unet" and card.in_channels == 1
    assert card.architecture_args["input_nc"] == 3 and card.input.bands == ("VV",)

    model, _ = load_model(dst)
    assert model.downsampling == 256
    # same function as the upstream-keyed weights loaded directly, gray band repeated to 3 channels
    direct = ReferenceUnetGenerator(in_channels=3, out_channels=3, num_downs=8, ngf=2).eval()
    direct.load_state_dict(state)
    x = torch.rand(1, 1, 256, 256) * 2 - 1
    with torch.no_grad():
        y = model(x)
        y3 = direct(x.repeat(1, 3, 1, 1))
    assert y.shape == (1, 3, 256, 256)
    assert torch.equal(y, y3)
    assert float(y.abs().max()) <= 1.0


def test_import_resnet_checks_net_name_and_bands(tmp_path):
    state = random_state(upstream_resnet_shapes(2, 3, 9, 2, False))
    pth = tmp_path / "net.pth"
    torch.save(state, pth)
    dual = InputDomain(sensor="Sentinel-1", bands=("VV", "VH"), quantity="sigma0", normalisation="db_clip",
                       units="db", db_range=(-25.0, 0.0))
    with pytest.raises(CheckpointError, match="not unet_256"):
        import_reference_checkpoint(pth, tmp_path / "x.safetensors", dual, net="unet_256")
    triple = InputDomain(sensor="Sentinel-1", bands=("VV", "VH", "X"), quantity="sigma0", normalisation="db_clip",
                         units="db", db_range=(-25.0, 0.0))
    with pytest.raises(CheckpointError, match="input channels"):
        import_reference_checkpoint(pth, tmp_path / "x.safetensors", triple)
    dst = import_reference_checkpoint(pth, tmp_path / "r9.safetensors", dual, net="resnet_9blocks")
    model, card = load_model(dst)
    x = torch.rand(1, 2, 36, 44) * 2 - 1  # any multiple of 4
    with torch.no_grad():
        assert model(x).shape == (1, 3, 36, 44)
    assert card.architecture_args["n_blocks"] == 9


def test_registered_and_buildable_from_card_args():
    assert {"pix2pix_unet", "pix2pix_resnet"} <= set(GENERATORS)
    g = build_generator("pix2pix_unet", in_channels=1, out_channels=3, num_downs=5, ngf=2)
    assert g.downsampling == 32
    with torch.no_grad():
        out = g.eval()(torch.zeros(1, 1, 64, 32))
    assert out.shape == (1, 3, 64, 32) and np.isfinite(out.numpy()).all()


def test_not_a_state_dict_is_a_checkpoint_error(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_reference_state_dict(p)


def test_cli_import_pix2pix(tmp_path, capsys):
    from sar2opt_geo.cli.main import main

    pth = tmp_path / "latest_net_G.pth"
    torch.save(random_state(upstream_unet_shapes(3, 3, 8, 2)), pth)
    dst = tmp_path / "imported.safetensors"
    args = ["import-pix2pix", str(pth), str(dst), "--sensor", "Sentinel-1", "--band", "VV",
            "--normalisation", "db_clip", "--db-range", "-25", "0", "--frequency-band", "C", "--net", "unet_256"]
    assert main(args) == 0
    card = read_card(dst)
    assert card.input.db_range == (-25.0, 0.0) and card.input.frequency_band == "C" and card.name == "latest_net_G"
    assert main(args[:-1] + ["resnet_6blocks"]) == 1  # wrong --net: one-line error, exit 1
    assert "not resnet_6blocks" in capsys.readouterr().err


def test_cli_import_db_clip_without_db_range_is_an_argparse_error_bug(tmp_path, capsys):
    """``--normalisation db_clip`` without ``--db-range`` ended in a ValueError traceback from the card."""
    from sar2opt_geo.cli.main import main

    pth = tmp_path / "latest_net_G.pth"
    torch.save(random_state(upstream_unet_shapes(3, 3, 8, 2)), pth)
    dst = tmp_path / "imported.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["import-pix2pix", str(pth), str(dst), "--sensor", "Sentinel-1", "--band", "VV", "--normalisation", "db_clip"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "import-pix2pix: error: --normalisation db_clip needs --db-range LO HI" in err and "Traceback" not in err
    assert not dst.exists()
