"""``sar2opt`` entry point: builds the sub-command parsers and turns library errors into
one clear line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from ..errors import Sar2OptError
from ..version import __version__

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
    """Run one ``sar2opt`` command; its exit status (0, 1 for a library error, 130 when interrupted,
    141 when the reader of stdout went away, as for a program killed by SIGPIPE)."""
    try:
        try:
            code = _main(argv)
        except SystemExit:  # argparse: --help, --version, usage errors
            _flush_stdout()
            raise
        _flush_stdout()  # a reader that went away shows here, not as a warning at interpreter exit
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _silence_stdout()
        return 141


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO - 10 * (getattr(args, "verbose", 0) or 0) + 10 * (getattr(args, "quiet", 0) or 0)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _sigterm)
    if hasattr(signal, "SIGHUP"):  # a closed terminal or ssh session cleans up like kill (not on Windows)
        signal.signal(signal.SIGHUP, _sigterm)
    try:
        _check_backend(args)
        return int(args.func(args) or 0)
    except Sar2OptError as exc:
        _report_error(args, str(exc))
        return 1
    except KeyboardInterrupt:
        _report_error(args, "interrupted; no output was written")
        return 130
    except BrokenPipeError as exc:
        if _stdout_closed():
            raise  # main(): silent exit 141
        _report_error(args, f"broken pipe: {exc}")  # another pipe (a worker process): one line, no traceback
        return 1


def _check_backend(args: argparse.Namespace) -> None:
    """``--backend onnxruntime`` / ``openvino`` without its packages: one line before any work is done."""
    backend = getattr(args, "backend", None)
    if backend not in (None, "torch"):
        from ..engine.backends import check_backend_packages

        check_backend_packages(backend)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _stdout_closed() -> bool:
    """Whether the reader of stdout has gone away (``sar2opt info X | head -1``)."""
    try:
        _flush_stdout()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        pass
    try:  # output written past the buffer leaves nothing to flush: ask the pipe itself (POSIX)
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """Point stdout at the null device, as Python's documentation recommends for SIGPIPE: the flush at
    interpreter exit would otherwise raise again and print a warning."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a real file (captured by a test): nothing to silence
        pass


def _report_error(args: argparse.Namespace, message: str) -> None:
    message = " ".join(message.split())  # one line
    if getattr(args, "progress", None) == "json":
        from ._common import emit_json

        try:
            emit_json({"event": "error", "message": message})
        except BrokenPipeError:  # the program reading the JSON lines is gone; stderr still gets the line
            _silence_stdout()
    print(f"sar2opt: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
