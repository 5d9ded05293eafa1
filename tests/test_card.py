"""Model cards are typed and validated on load (sar2opt_geo.models.card): each bad field is refused by name."""

from __future__ import annotations

import json

import pytest

from sar2opt_geo.errors import CheckpointError, ConfigError
from sar2opt_geo.models.card import ModelCard, Normalisation
from sar2opt_geo.models.checkpoint import read_card, save_generator
from sar2opt_geo.radiometry import Quantity, Scale
from sar2opt_geo.training import card_for_dataset


def _card() -> ModelCard:
    return card_for_dataset("la", "sar", ("VH",), name="card-test").replace(
        architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.125})


def test_fields_are_typed_with_the_radiometry_enums_and_serialise_as_strings():
    card = _card()
    assert card.input.quantity is Quantity.SIGMA0 and card.input.units is Scale.LINEAR
    assert card.input.normalisation is Normalisation.PERCENTILE
    assert card.input.quantity == "sigma0" and f"{card.input.quantity}" == "sigma0"
    d = json.loads(card.to_json())
    assert d["input"]["quantity"] == "sigma0" and d["input"]["normalisation"] == "percentile"
    assert ModelCard.from_json(card.to_json()) == card
    assert card.input.nodata_fill == 0.0  # one nodata fill for training and inference


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pixel_spacing_m", 0, "input.pixel_spacing_m"),
    ("pixel_spacing_m", "ten", "input.pixel_spacing_m must be a finite number"),
    ("pixel_spacing_m", -10, "input.pixel_spacing_m"),
    ("pixel_spacing_m", 0.001, "input.pixel_spacing_m must be between"),
    ("percentile", 150, "input.percentile must be within"),
    ("bands", [], "input.bands"),
    ("normalisation", "foo", "input.normalisation is 'foo'"),
    ("quantity", "brightness", "input.quantity"),
    ("units", "decibel", "input.units"),
    ("nodata_fill", 3.0, "input.nodata_fill"),
])
def test_bad_input_fields_are_refused_on_load_with_the_field_named_bug(tmp_path, tiny_generator, field, value, message):
    """Regression: spacing 0 / 'ten' / -10 / 0.001, percentile 150, empty bands and normalisation 'foo' were accepted."""
    path = save_generator(tiny_generator(), _card(), tmp_path / "g.safetensors")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is no dict
    card = json.loads(meta["card"])
    card["input"][field] = value
    meta["card"] = json.dumps(card)
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=message) as err:
        read_card(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_db_range_and_output_bands_are_checked():
    card = _card()
    with pytest.raises(ConfigError, match=r"input.db_range must have hi > lo"):
        card.input.__class__(**{**card.input.__dict__, "normalisation": "db_clip", "db_range": (0, 0)})
    with pytest.raises(ConfigError, match="out_channels=3 does not match the 2 output.bands"):
        card.replace(output=card.output.__class__(bands=("red", "green")))
    with pytest.raises(ConfigError, match="in_channels=2 does not match"):
        card.replace(architecture_args={"in_channels": 2, "out_channels": 3})


def test_unknown_card_fields_are_named():
    d = json.loads(_card().to_json())
    d["input"]["spacing"] = 10
    with pytest.raises(ConfigError, match=r"unknown field\(s\) input.spacing"):
        ModelCard.from_dict(d)
