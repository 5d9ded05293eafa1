"""Options shared by the sub-commands (sar2opt_geo/cli/_common.py)."""

from __future__ import annotations

import argparse

from sar2opt_geo.api import TranslateOptions
from sar2opt_geo.cli._common import DEFAULT_OVERLAP, DEFAULT_TILE, add_tiling
from sar2opt_geo.cli.main import build_parser


def test_cli_tiling_defaults_are_the_api_defaults():
    opts = TranslateOptions()
    assert (DEFAULT_TILE, DEFAULT_OVERLAP) == (opts.tile_size, opts.overlap)
    p = argparse.ArgumentParser()
    add_tiling(p)
    args = p.parse_args([])
    assert (args.tile, args.overlap) == (opts.tile_size, opts.overlap)


def test_every_translating_command_has_the_same_tiling_options():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("translate", "batch", "composite", "experiment"):
        args = sub.choices[name]
        tile = next(a for a in args._actions if a.dest == "tile")
        overlap = next(a for a in args._actions if a.dest == "overlap")
        assert (tile.default, overlap.default) == (DEFAULT_TILE, DEFAULT_OVERLAP), name
        assert "multiple of 16" in tile.help and ">= 96" in overlap.help, name
