"""Every path a command will write, checked once before any work: :func:`check_outputs`.

A command names all of its outputs up front (main GeoTIFF, quicklook PNG, spread layer, kept
translations, summary ...) with a label each. Before anything is read or computed, each is
refused if it

* is one of the command's inputs, the same file under another name (a symbolic link, a
  hard link, ``./a.tif`` vs ``a.tif``), or an existing file inside an input folder (a SAFE);
* is another output of the same command (``translate vh.tif q.png --quicklook`` would write
  the GeoTIFF and its PNG quicklook to one file);
* exists without ``overwrite``, or cannot be written (:func:`~sar2opt_geo.io.atomic.check_writable`).

So no command can destroy its own input, whatever ``overwrite`` says.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputExistsError
from .atomic import check_writable

__all__ = ["check_outputs", "input_paths"]

_REMOTE = ("http://", "https://", "s3://", "gs://", "/vsi")


def input_paths(*inputs: Any) -> list[Path]:
    """Local file-system paths among ``inputs`` (paths, strings, objects with a ``path``; URLs and None skipped)."""
    out: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        if isinstance(item, (list, tuple, set)):
            out += input_paths(*item)
            continue
        if not isinstance(item, (str, os.PathLike)):
            item = getattr(item, "path", None)
            if item is None:
                continue
        text = os.fspath(item)
        if text.startswith(_REMOTE):
            continue
        out.append(Path(text))
    return out


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it as written
        return Path(os.path.abspath(path))


def _same(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        _resolved(path).relative_to(_resolved(folder))
    except ValueError:
        return False
    return True


def check_outputs(inputs: Iterable[Any], outputs: Mapping[str, str | os.PathLike | None], *,
                  overwrite: bool) -> dict[str, Path]:
    """Refuse, before any work, an output that is an input, an output written twice, or one that cannot be written.

    Args:
        inputs: the command's inputs (paths, or objects with a ``path`` such as an open scene;
            URLs are skipped).
        outputs: label -> path of every file the command will write (None: not written). Labels
            appear in messages ("output", "quicklook", "spread layer").
        overwrite: whether existing outputs may be replaced (never an input).

    Returns:
        label -> :class:`Path` of the outputs that are written.

    Raises:
        OutputExistsError: an output is an input (or inside an input folder), or exists without ``overwrite``.
        ConfigError: two outputs are the same file.
        InputError: an output folder cannot be created or written in.
    """
    ins = input_paths(*inputs)
    outs = {label: Path(p) for label, p in outputs.items() if p is not None}
    seen: dict[Path, str] = {}
    for label, path in outs.items():
        for src in ins:
            if _same(path, src):
                via = "" if _resolved(path) == _resolved(src) and str(path) == str(src) else f" ({src} under another name)"
                raise OutputExistsError(
                    f"{path}: the {label} would overwrite the input{via}; choose another output path")
            if src.is_dir() and path.exists() and _inside(path, src):
                raise OutputExistsError(
                    f"{path}: the {label} would overwrite a file of the input folder {src}; choose a path outside it")
        key = _resolved(path)
        if key in seen:
            raise ConfigError(
                f"{path}: would be written twice, as the {seen[key]} and as the {label}; choose another output name"
                + (" (the quicklook is <output stem>.png: give the output a .tif name)" if "quicklook" in (label, seen[key])
                   else ""))
        seen[key] = label
    for path in outs.values():
        check_writable(path, overwrite)
    return outs
