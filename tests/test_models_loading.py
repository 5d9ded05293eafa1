"""One model resolver for every command (sar2opt_geo.models.loading)."""

from __future__ import annotations

import pytest

from sar2opt_geo.errors import CheckpointError, InputError
from sar2opt_geo.models.checkpoint import default_model_path
from sar2opt_geo.models.loading import (
    LoadedModel,
    load,
    load_model_cached,
    resolve_model_path,
)


def test_short_names_paths_and_none_resolve_to_the_same_model():
    by_name, by_path, by_default = load("sar"), load(default_model_path("sar")), load(None, kind="sar")
    assert by_name.card_hash == by_path.card_hash == by_default.card_hash
    assert by_name.path == default_model_path("sar") and by_name.name == "s1vh_to_rgb"
    assert load("gray").card.input.quantity == "gray"
    assert resolve_model_path("gray") == default_model_path("gray")
    assert by_name.downsampling == 16 and by_name.receptive_margin == 47


def test_loaded_models_and_tuples_pass_through(tiny_generator):
    m = load("sar")
    assert load(m) is m
    g = tiny_generator()
    t = load((g, m.card))
    assert isinstance(t, LoadedModel) and t.path is None and len(t.card_hash) == 16
    assert load((g, m.card, "abc")).card_hash == "abc"
    with pytest.raises(CheckpointError, match="model tuple"):
        load((g, "not a card"))


def test_missing_file_and_cache(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load(tmp_path / "nope.safetensors")
    load_model_cached.cache_clear()
    a, b = load("sar", cache=True), load(str(default_model_path("sar")), cache=True)
    assert a is b and load_model_cached.cache_info().hits == 1


@pytest.mark.parametrize("command", ["translate", "batch", "composite", "export-onnx"])
def test_every_command_accepts_the_bundled_short_names(command):
    """Regression: export-onnx, translate and batch did not accept 'sar' / 'gray' (evaluate did)."""
    from sar2opt_geo.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    model = next(a for a in sub.choices[command]._actions if a.dest == "model")
    assert "'sar'" in model.help and "'gray'" in model.help
