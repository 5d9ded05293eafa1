"""Options shared by the sub-commands (sar2opt_geo/cli/_common.py, cli/_options.py)."""

from __future__ import annotations

import argparse

from sar2opt_geo.cli._common import add_tiling
from sar2opt_geo.cli.main import build_parser
from sar2opt_geo.translation.api import TranslateOptions


def test_cli_tiling_defaults_are_the_api_defaults():
    opts = TranslateOptions()
    p = argparse.ArgumentParser()
    add_tiling(p)
    args = p.parse_args([])
    assert (args.tile, args.overlap, args.max_memory_mb) == (opts.tile_size, opts.overlap, opts.max_memory_mb)
    assert opts.tile_size is None and opts.overlap is None  # chosen for the model within the memory budget


def test_every_translating_command_has_the_same_tiling_options():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    reference = {a.dest: a for a in sub.choices["translate"]._actions}
    for name in ("translate", "batch", "composite", "experiment"):
        args = {a.dest: a for a in sub.choices[name]._actions}
        for dest in ("tile", "overlap", "max_memory_mb"):
            assert args[dest].default == reference[dest].default and args[dest].help == reference[dest].help, name
        assert "multiple of the model's downsampling" in args["tile"].help, name
        assert "receptive margin" in args["overlap"].help, name
