"""Translate options defined once (sar2opt_geo.options) and the CLI flags generated from them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sar2opt_geo.cli.batch import BATCH_DECIDES
from sar2opt_geo.cli.main import build_parser
from sar2opt_geo.errors import ConfigError, OptionTypeError
from sar2opt_geo.options import (
    RESAMPLING_METHODS,
    TranslateOptions,
    option_fields,
    parse_bands,
)


def test_resampling_names_are_rasterios():
    from rasterio.enums import Resampling

    assert set(RESAMPLING_METHODS) == set(Resampling.__members__)


def test_options_module_imports_only_the_standard_library():
    """QGIS's Python (no torch, no pip rasterio) reads the defaults from it."""
    code = ("import sys; import sar2opt_geo.options as o; "
            "print(sorted(m for m in ('torch', 'rasterio', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_option_documents_itself():
    for f in option_fields():
        assert f.metadata["help"], f.name
        if f.metadata["cli"]:
            assert f.metadata["flag"][0].startswith("--"), f.name


def test_parse_bands_is_the_one_comma_parser():
    assert parse_bands("HH, HV") == ("HH", "HV") == TranslateOptions(bands="HH,HV").bands
    assert parse_bands(2) == ("2",) and parse_bands(None) is None and parse_bands(" , ") is None


def test_every_translating_command_gets_every_translate_flag_with_the_same_default():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    translate = {a.dest: a for a in sub.choices["translate"]._actions}
    batch = {a.dest: a for a in sub.choices["batch"]._actions}
    for f in option_fields(cli_only=True):
        dest = f.metadata["flag"][0].lstrip("-").replace("-", "_")
        assert dest in translate, f.name
        if f.name not in BATCH_DECIDES:  # batch sets those per crop
            assert dest in batch, f.name
            assert batch[dest].default == translate[dest].default and batch[dest].help == translate[dest].help


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="resampling"):
        TranslateOptions(resampling="fancy")
    with pytest.raises(OptionTypeError, match="unknown translate option"):
        TranslateOptions().replace(tile=256)
