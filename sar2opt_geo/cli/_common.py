"""Options shared by several sub-commands, defined once, and progress reporting.

``--progress json`` makes a command print one JSON object per line on stdout, for
programs that drive the CLI (the QGIS provider):

* ``{"event": "progress", "fraction": 0.42, "message": "tiles 12/40"}``
* ``{"event": "log", "level": "warning", "message": "..."}``
* ``{"event": "done", "outputs": {"OUTPUT": "/path/out.tif", ...}}``
* ``{"event": "error", "message": "..."}`` (also printed on stderr; exit status 1)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "JsonLogHandler",
    "add_device",
    "add_model",
    "add_progress",
    "add_tiling",
    "add_verbosity",
    "emit_json",
    "emit_raster_done",
    "make_progress",
]


def add_verbosity(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less log output (repeatable)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=("bar", "json", "none"),
        default="bar",
        help="progress display: a tqdm bar on stderr (default), JSON lines on stdout for programs, or nothing",
    )


def add_tiling(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--tile``, ``--overlap`` (pixels of the model grid) and ``--max-memory-mb``, generated from the
    translate options (defaults: chosen for the model within the memory budget)."""
    from ._options import add_translate_options

    add_translate_options(p, only=("tile_size", "overlap", "max_memory_mb"), groups=False)


def add_device(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device`` (torch device), generated from the translate options."""
    from ._options import add_translate_options

    add_translate_options(p, only=("device",), groups=False)


MODEL_HELP = ("generator checkpoint (.safetensors with a model card) or a bundled model: 'sar' (Sentinel-1 VH -> "
              "RGB) or 'gray' (gray -> RGB)")


def add_model(p: argparse.ArgumentParser | argparse._ArgumentGroup, default_help: str = "", *,
              positional: bool = False) -> None:
    """The model argument of every command that runs a generator: a path or a bundled short name,
    resolved by :func:`sar2opt_geo.models.loading.load`."""
    if positional:
        p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    else:
        p.add_argument("--model", metavar="PATH|sar|gray", help=MODEL_HELP + (f"; {default_help}" if default_help else ""))


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def emit_raster_done(result: Any) -> None:
    """The ``done`` event for a command that wrote one raster (``result.path``, optional
    ``result.quicklook``, ``result.warnings``): ``OUTPUT`` and ``QUICKLOOK`` as absolute paths, and
    ``model`` (the card's name) where the result has one."""
    outputs = {"OUTPUT": str(result.path.resolve())}
    if result.quicklook is not None:
        outputs["QUICKLOOK"] = str(result.quicklook.resolve())
    if getattr(result, "spread", None) is not None:  # translate --samples N
        outputs["SPREAD"] = str(result.spread.resolve())
    done = {"event": "done", "outputs": outputs, "warnings": list(result.warnings)}
    if getattr(result, "model_name", None):  # QGIS names the layer after it
        done["model"] = result.model_name
    emit_json(done)


class JsonLogHandler(logging.Handler):
    """Forward log records as ``{"event": "log"}`` JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        emit_json({"event": "log", "level": record.levelname.lower(), "message": record.getMessage()})


def make_progress(mode: str, desc: str = "") -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """Return ``(callback(fraction, message), close())`` for ``--progress`` mode."""
    if mode == "json":
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(JsonLogHandler())

        def cb(fraction: float, message: str = "") -> None:
            emit_json({"event": "progress", "fraction": round(float(fraction), 4), "message": message})

        return cb, lambda: None
    if mode == "bar":
        from tqdm import tqdm

        # tqdm throttles redraws (update() honours mininterval); slower when stderr is a log file
        bar = tqdm(total=1000, desc=desc, unit="‰", file=sys.stderr, mininterval=0.2 if sys.stderr.isatty() else 5.0,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

        def cb(fraction: float, message: str = "") -> None:
            if message:
                bar.set_postfix_str(message, refresh=False)
            bar.update(round(1000 * min(max(fraction, 0.0), 1.0)) - bar.n)

        return cb, bar.close
    return (lambda fraction, message="": None), (lambda: None)
