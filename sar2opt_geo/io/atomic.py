"""Atomic outputs: write to a hidden temporary name beside the destination, rename at the end.

A reader (QGIS, a batch runner, another process) never sees a half-written file at the
destination path: work goes to ``.<name>.tmp-<pid>`` in the same directory (so the final
:func:`os.replace` is atomic on one file system) and is renamed only when everything
succeeded. On any exception, including ``KeyboardInterrupt`` (the CLI maps SIGTERM to it)
and :class:`~sar2opt_geo.errors.CancelledError`, the temporaries are removed and nothing is
left at the destination.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, OutputExistsError

__all__ = ["atomic_outputs", "check_writable", "temp_path_for", "work_dir"]

log = logging.getLogger(__name__)


def temp_path_for(dst: str | os.PathLike) -> Path:
    """The hidden temporary name used for ``dst``: ``.<name>.tmp-<pid><suffix>`` beside it.

    The destination's suffix is kept at the end so that GDAL picks the right driver from it.
    """
    dst = Path(dst)
    return dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")


def check_writable(dst: str | os.PathLike, overwrite: bool) -> Path:
    """Raise :class:`OutputExistsError` if ``dst`` exists and ``overwrite`` is false; create its folder."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst}: already exists and won't be overwritten; pass --overwrite (overwrite=True)")
    if dst.is_dir():
        raise OutputExistsError(f"{dst}: is a directory; give a file name such as {dst / 'result.tif'}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{dst.parent}: cannot create the output folder: {exc.strerror or exc}") from None
    return dst


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".aux.xml")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def atomic_outputs(*dsts: str | os.PathLike | None, overwrite: bool = True) -> Iterator[list[Path | None]]:
    """Yield temporary paths for ``dsts`` (None passes through); rename them all on success.

    Every destination is checked first (:func:`check_writable`), so an existing file with
    ``overwrite=False`` fails before any work. The renames happen only after the ``with``
    body returned; temporaries that the body did not create are ignored.
    """
    finals = [check_writable(d, overwrite) if d is not None else None for d in dsts]
    temps = [temp_path_for(d) if d is not None else None for d in finals]
    try:
        yield temps
        for tmp, final in zip(temps, finals):
            if tmp is not None and final is not None and tmp.exists():
                os.replace(tmp, final)
                aux = tmp.with_name(tmp.name + ".aux.xml")
                if aux.exists():  # GDAL side-car (statistics, PAM): keep it with its file
                    os.replace(aux, final.with_name(final.name + ".aux.xml"))
    except BaseException:
        for tmp in temps:
            if tmp is not None:
                _remove(tmp)
        raise


@contextlib.contextmanager
def work_dir(near: str | os.PathLike) -> Iterator[Path]:
    """A hidden scratch folder beside ``near`` (same file system, removed afterwards, whatever happens)."""
    parent = Path(near).parent
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{Path(near).stem}.work-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
