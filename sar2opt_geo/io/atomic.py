"""Atomic outputs: write to a hidden temporary name beside the destination, rename at the end.

A reader (QGIS, a batch runner, another process) never sees a half-written file at the
destination path: work goes to ``.<stem>.tmp-<host>-<pid><suffix>`` in the same directory (so
the final :func:`os.replace` is atomic on one file system) and is renamed only when everything
succeeded. On any exception, including ``KeyboardInterrupt`` (the CLI maps SIGTERM and SIGHUP to
it) and :class:`~sar2opt_geo.errors.CancelledError`, the temporaries are removed and nothing is
left at the destination.

The output folder is checked for writing before any work (a probe file is created and removed:
permission bits alone say nothing when running as root, a read-only mount does). A full disk or
a read-only file system met while writing becomes one :class:`~sar2opt_geo.errors.InputError`
line naming the folder; cleaning up after it never raises a second error.

A process killed with ``kill -9`` cannot clean up: its ``.<stem>.tmp-<host>-<pid>*`` files and
``.<stem>.work-<host>-<pid>-*`` folders stay. They carry the host name and process id, so the
next writer in that folder removes those of dead processes on the same host
(:func:`sweep_stale`); entries of live processes, or of other hosts sharing the folder over a
network file system, are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, OutputExistsError

__all__ = ["atomic_file", "atomic_outputs", "check_writable", "sweep_stale", "temp_path_for", "work_dir"]

log = logging.getLogger(__name__)

# errno values (and GDAL's wording of them) that mean "this folder cannot take the output"
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}
_NOT_WRITABLE = _FULL_OR_READ_ONLY | {errno.EACCES, errno.EPERM}
_STORAGE_WORDS = re.compile(r"no space left|free disk space|read-only file system|disk quota|not enough space", re.IGNORECASE)
_LOW_SPACE = 4 * 2**20  # bytes: a GDAL write failure with less than this free in the folder is a full disk
_LEGACY_AGE_S = 24 * 3600  # scratch folders of older versions (no pid in the name) older than this are swept


def _host() -> str:
    """This machine's name, reduced to ``[A-Za-z0-9_]`` so that it can sit between dashes in a file name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "host")[:40] or "host"


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def temp_path_for(dst: str | os.PathLike) -> Path:
    """The hidden temporary name used for ``dst``: ``.<name>.tmp-<host>-<pid><suffix>`` beside it.

    The destination's suffix is kept at the end so that GDAL picks the right driver from it.
    """
    dst = Path(dst)
    return dst.with_name(f".{dst.stem}.tmp-{_owner_tag()}{dst.suffix}")


@contextlib.contextmanager
def atomic_file(dst: str | os.PathLike) -> Iterator[Path]:
    """Write one small file atomically: yields its hidden temporary path (:func:`temp_path_for`, so
    :func:`sweep_stale` recognises a leftover), renamed onto ``dst`` when the block ends without an
    exception and removed otherwise. ``dst``'s folder is created if needed.

    For rasters with GDAL side files and whole products use :func:`atomic_outputs`.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dst)
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _storage_error(folder: Path, exc: BaseException, doing: str, errnos: set[int] = _FULL_OR_READ_ONLY) -> InputError | None:
    """One line for a full disk or read-only folder (``errnos``), or None if ``exc`` is something else.

    rasterio raises GDAL's write failures without an errno; their text ("No space left on device",
    "Free disk space available is ...") is recognised instead.
    """
    code = getattr(exc, "errno", None)
    text = " ".join(str(exc).split())
    if code in errnos:
        why = os.strerror(code)
    elif isinstance(exc, OSError) and (m := _STORAGE_WORDS.search(text)):
        why = "no space left on device" if "space" in m.group(0).lower() else m.group(0)
    else:
        return None
    full = code in (errno.ENOSPC, errno.EDQUOT) or "space" in why.lower() or "quota" in why.lower()
    fix = "free some space there" if full else "make it writable"
    return InputError(f"{folder}: {why} while {doing}; {fix} or choose another output folder (nothing was written)")


def _explain(folder: Path, exc: BaseException, doing: str) -> InputError | None:
    """:func:`_storage_error`, or a full disk behind an errno-less GDAL write failure.

    libtiff reports ENOSPC on stderr only; rasterio then raises "Write failed" (a
    ``RasterioIOError``, an ``OSError`` without errno). Call this before the temporaries are
    removed, while the folder is still full.
    """
    if not isinstance(exc, OSError) or isinstance(exc, (InputError, OutputExistsError)):
        return None
    found = _storage_error(folder, exc, doing)
    if found is not None:
        return found
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= _LOW_SPACE:
        return None
    return InputError(f"{folder}: no space left on device while {doing} ({free // 1024} KiB free); "
                      "free some space there or choose another output folder (nothing was written)")


def check_writable(dst: str | os.PathLike, overwrite: bool) -> Path:
    """Raise before any work if ``dst`` cannot be written: it exists and ``overwrite`` is false
    (:class:`OutputExistsError`), or its folder cannot be created or written in (:class:`InputError`)."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst}: already exists and won't be overwritten; pass --overwrite (overwrite=True)")
    if dst.is_dir():
        raise OutputExistsError(f"{dst}: is a directory; give a file name such as {dst / 'result.tif'}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{dst.parent}: cannot create the output folder: {exc.strerror or exc}") from None
    try:  # a real write: permission bits mean nothing to root, a read-only mount or a full disk do
        fd, probe = tempfile.mkstemp(prefix=f".{dst.stem}.probe-", dir=dst.parent)
        os.close(fd)
        _discard(Path(probe))
    except OSError as exc:
        raise (_storage_error(dst.parent, exc, f"creating a file for {dst.name}", _NOT_WRITABLE)
               or InputError(f"{dst.parent}: cannot write in the output folder: {exc.strerror or exc}")) from None
    return dst


def _discard(path: Path) -> None:
    """Remove ``path`` if it is there; never raise (cleanup must not hide the error being cleaned up after)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("could not remove %s: %s", path, exc)


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".aux.xml")):
        _discard(p)


_STALE = re.compile(r"^\..+?\.(?:tmp|work)-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)(?:[-.].*)?$")
_LEGACY_WORK = re.compile(r"^\..+\.work-[A-Za-z0-9_]{8}$")  # tempfile.mkdtemp suffix, before pids were in the name


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def sweep_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove temporaries and scratch folders that killed writers left in ``folder``; returns what was removed.

    Only entries named by :func:`temp_path_for` / :func:`work_dir` on this host whose process is
    gone are removed (and scratch folders of older versions, without a pid, after a day).
    Never raises: a folder that cannot be listed or an entry that cannot be removed is skipped.
    """
    folder = Path(folder)
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _STALE.match(entry.name)
        stale = m is not None and m["host"] == host and not _alive(int(m["pid"]))
        if not stale and _LEGACY_WORK.match(entry.name):
            with contextlib.suppress(OSError):
                stale = entry.is_dir(follow_symlinks=False) and time.time() - entry.stat().st_mtime > _LEGACY_AGE_S
        if not stale:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _discard(path)
        if not os.path.lexists(path):
            removed.append(path)
            log.info("removed %s, left by a killed process %s", path, m["pid"] if m else "(old version)")
    return removed


@contextlib.contextmanager
def atomic_outputs(*dsts: str | os.PathLike | None, overwrite: bool = True) -> Iterator[list[Path | None]]:
    """Yield temporary paths for ``dsts`` (None passes through); rename them all on success.

    Every destination is checked first (:func:`check_writable`), so an existing file with
    ``overwrite=False`` or a read-only folder fails before any work. The renames happen only
    after the ``with`` body returned; temporaries that the body did not create are ignored. A full
    disk or read-only file system met in the body or the renames is re-raised as one
    :class:`InputError` line naming the folder; the temporaries are removed either way.
    """
    finals = [check_writable(d, overwrite) if d is not None else None for d in dsts]
    for folder in {f.parent for f in finals if f is not None}:
        sweep_stale(folder)
    temps = [temp_path_for(d) if d is not None else None for d in finals]
    first = next((f for f in finals if f is not None), None)
    try:
        yield temps
        for tmp, final in zip(temps, finals):
            if tmp is not None and final is not None and tmp.exists():
                os.replace(tmp, final)
                aux = tmp.with_name(tmp.name + ".aux.xml")
                if aux.exists():  # GDAL side-car (statistics, PAM): keep it with its file
                    os.replace(aux, final.with_name(final.name + ".aux.xml"))
    except BaseException as exc:
        one_line = _explain(first.parent, exc, f"writing {first.name}") if first is not None else None
        for tmp in temps:
            if tmp is not None:
                _remove(tmp)
        if one_line is not None:
            raise one_line from None
        raise


@contextlib.contextmanager
def work_dir(near: str | os.PathLike) -> Iterator[Path]:
    """A hidden scratch folder ``.<stem>.work-<host>-<pid>-*`` beside ``near`` (same file system),
    removed afterwards, whatever happens; those of killed processes are swept first."""
    parent = Path(near).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(parent)
        path = Path(tempfile.mkdtemp(prefix=f".{Path(near).stem}.work-{_owner_tag()}-", dir=parent))
    except OSError as exc:
        raise (_storage_error(parent, exc, "creating a scratch folder", _NOT_WRITABLE)
               or InputError(f"{parent}: cannot create a scratch folder there: {exc.strerror or exc}")) from None
    try:
        yield path
    except BaseException as exc:
        one_line = _explain(parent, exc, f"writing scratch rasters for {Path(near).name}")
        shutil.rmtree(path, ignore_errors=True)
        if one_line is not None:
            raise one_line from None
        raise
    shutil.rmtree(path, ignore_errors=True)
