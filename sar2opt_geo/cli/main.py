"""``sar2opt`` entry point: builds the sub-command parsers and turns library errors into
one clear line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import Sar2OptError

# Each module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` whose
# defaults set ``func`` to a callable ``(args) -> int``.
SUBCOMMANDS = (
    "demo",
    "info",
    "translate",
    "composite",
    "batch",
    "pairs",
    "train",
    "evaluate",
    "experiment",
    "export_onnx",
)

log = logging.getLogger("sar2opt_geo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sar2opt",
        description=(
            "Translate SAR scenes (Sentinel-1, ALOS-2 PALSAR-2) into optical-looking RGB with a "
            "pix2pix generator, keeping the output georeferenced (GeoTIFF that opens in QGIS)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:  # modules import their heavy dependencies (torch, rasterio) inside run()
        importlib.import_module(f".{name}", __package__).add_parser(sub)
    return parser


def _sigterm(signum, frame):  # let atomic writers clean up on kill (QGIS cancel)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO - 10 * (getattr(args, "verbose", 0) or 0) + 10 * (getattr(args, "quiet", 0) or 0)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _sigterm)
    if hasattr(signal, "SIGHUP"):  # a closed terminal or ssh session cleans up like kill (not on Windows)
        signal.signal(signal.SIGHUP, _sigterm)
    try:
        return int(args.func(args) or 0)
    except Sar2OptError as exc:
        _report_error(args, str(exc))
        return 1
    except KeyboardInterrupt:
        _report_error(args, "interrupted; no output was written")
        return 130


def _report_error(args: argparse.Namespace, message: str) -> None:
    message = " ".join(message.split())  # one line
    if getattr(args, "progress", None) == "json":
        from ._common import emit_json

        emit_json({"event": "error", "message": message})
    print(f"sar2opt: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
