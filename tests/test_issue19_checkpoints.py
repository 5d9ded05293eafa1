"""Issue 19: a bad checkpoint is one CheckpointError line naming the file, found before any harm.

* a card whose ``architecture_args`` imply other tensors than the file holds (``width`` 64 over
  width-1/8 weights) is refused from the header, before a module is built (no 19 GB allocation);
* NaN/Inf weights are found at load time and blamed on the checkpoint, not on the input.

Checkpoints here are synthetic: tiny random generators saved by ``save_generator`` in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import CheckpointError
from sar2opt_geo.models import InputDomain, ModelCard, UNetGenerator
from sar2opt_geo.models.checkpoint import load_model, save_generator
from sar2opt_geo.models.loading import load

ARGS = {"in_channels": 1, "out_channels": 3, "width": 0.125}


def _card(**args) -> ModelCard:
    return ModelCard("tiny-vv", "unet_article", {**ARGS, **args},
                     InputDomain("Sentinel-1", ("VV",), "sigma0", "percentile", percentile=99.0, quantize_levels=255,
                                 frequency_band="C"))


def _rewrite(path: Path, state=None, card: dict | None = None) -> Path:
    """Write ``path`` again with other tensors and/or another card (what an edited file holds)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta, old = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is no dict
    if card is not None:
        meta["card"] = json.dumps(card)
    save_file(state if state is not None else old, str(path), metadata=meta)
    return path


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_generator(UNetGenerator(**ARGS).eval(), _card(), tmp_path / "tiny_vv.safetensors")


@pytest.fixture
def builds(monkeypatch):
    """Record the default torch device of every generator built while loading."""
    from sar2opt_geo.models import checkpoint

    devices: list[str] = []
    real = checkpoint.build_generator

    def spy(architecture, **kwargs):
        devices.append(str(torch.get_default_device()))
        return real(architecture, **kwargs)

    monkeypatch.setattr(checkpoint, "build_generator", spy)  # where load_model looks it up
    return devices


def test_card_width_larger_than_its_tensors_is_refused_before_building_bug(saved: Path, builds: list[str]):
    """Regression: a card saying width 64 over width-1/8 tensors built the width-64 module (14 G parameters,
    tens of GB) before load_state_dict noticed. Now the header's shapes are checked against a meta-device
    build first: one CheckpointError naming the file, and no real module is built."""
    card = json.loads(_card().to_json())
    card["architecture_args"]["width"] = 64
    _rewrite(saved, card=card)
    with pytest.raises(CheckpointError, match="weights do not match the card's architecture") as err:
        load_model(saved)
    message = str(err.value)
    assert str(saved) in message and "\n" not in message
    assert "tensor(s) of another shape" in message and '"width": 64' in message
    assert builds == ["meta"]  # only the shape check's meta module; nothing allocated


def test_checkpoint_with_renamed_or_missing_tensors_is_refused_before_building(saved: Path, builds: list[str]):
    """Names as well as shapes: a renamed tensor is one line naming the file and the tensor."""
    state = load_model(saved)[0].state_dict()
    builds.clear()
    first = next(iter(state))
    state = {("renamed." + k if k == first else k): v.contiguous() for k, v in state.items()}
    _rewrite(saved, state=state)
    with pytest.raises(CheckpointError, match=rf"1 missing, e\.g\. {first}; 1 not in the architecture") as err:
        load(saved)
    assert str(saved) in str(err.value)
    assert builds == ["meta"]


def test_card_whose_architecture_cannot_be_built_names_the_file(saved: Path):
    card = json.loads(_card().to_json())
    card["architecture_args"]["no_such_arg"] = 1
    _rewrite(saved, card=card)
    with pytest.raises(CheckpointError, match="cannot be built") as err:
        load_model(saved)
    assert str(saved) in str(err.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_checkpoint_with_nan_or_inf_weights_is_a_checkpoint_error_bug(saved: Path, bad: float):
    """Regression: NaN/Inf weights loaded silently and the failure was later blamed on the input.
    Now loading raises one CheckpointError naming the checkpoint file and the tensor."""
    state = {k: v.clone().contiguous() for k, v in load_model(saved)[0].state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name].view(-1)[[0, 5]] = bad
    _rewrite(saved, state=state)
    for loader in (load_model, load):
        with pytest.raises(CheckpointError, match=rf"tensor {name} holds 2 NaN/Inf value") as err:
            loader(saved)
        assert str(saved) in str(err.value) and "not the input" in str(err.value)


def test_in_memory_model_with_nan_weights_is_a_checkpoint_error(tiny_generator):
    g = tiny_generator(width=0.125)
    with torch.no_grad():
        next(g.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="in-memory model 'tiny-vv': tensor .* NaN/Inf"):
        load((g, _card()))


def test_nan_checkpoint_is_one_line_cli_error_naming_the_model(saved: Path, make_geotiff, tmp_path: Path, capsys):
    """``sar2opt translate --model <NaN checkpoint>``: one line naming the checkpoint, no output written."""
    state = {k: v.clone().contiguous() for k, v in load_model(saved)[0].state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name].view(-1)[0] = float("nan")
    _rewrite(saved, state=state)
    db = np.random.default_rng(0).uniform(-22, -6, size=(48, 64)).astype(np.float32)
    scene = make_geotiff(db, name="scene_VV_db.tif", descriptions=("VV",))
    out = tmp_path / "rgb.tif"
    code = main(["translate", str(scene), str(out), "--model", str(saved), "--tile", "512", "--overlap", "96",
                 "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists()
    assert err[-1].startswith("sar2opt: error: ") and str(saved) in err[-1] and "NaN/Inf" in err[-1]
    assert str(scene) not in err[-1]  # blamed on the checkpoint, not the input
