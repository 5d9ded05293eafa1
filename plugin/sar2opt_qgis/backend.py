"""Run the ``sar2opt`` command line of a configured Python environment in a subprocess.

QGIS's own Python has no torch, and pip's rasterio wheel bundles a GDAL of its own that can
clash with the one QGIS has loaded. So, like QGIS's GRASS, SAGA and OTB providers, the
algorithms drive an external engine: they start ``sar2opt <command> ... --progress json``,
read its JSON lines while polling the feedback for cancellation, and turn them into progress,
log lines and outputs.

This module uses the standard library only (no ``qgis`` import), so it can be exercised from
any Python. ``feedback`` is duck-typed on :class:`qgis.core.QgsProcessingFeedback`.

Protocol (``sar2opt_geo/cli/_common.py``), one JSON object per stdout line:
``{"event": "progress", "fraction": 0.42, "message": "..."}``,
``{"event": "log", "level": "warning", "message": "..."}``,
``{"event": "done", "outputs": {"OUTPUT": "/path"}}``,
``{"event": "error", "message": "..."}``; failures also print ``sar2opt: error: ...`` on
stderr and exit non-zero. SIGTERM makes the CLI remove its temporary files and exit.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_EXECUTABLE",
    "SETTING_EXECUTABLE",
    "BackendCancelled",
    "BackendError",
    "OutputGuard",
    "RunResult",
    "child_environment",
    "resolve_command",
    "run_cli",
]

ENV_EXECUTABLE = "SAR2OPT_EXECUTABLE"
"""Environment variable that overrides the provider setting (path to ``sar2opt`` or a Python)."""

SETTING_EXECUTABLE = "SAR2OPT_EXECUTABLE"
"""Name of the Processing setting (Options > Processing > Providers > sar2opt)."""

CLI_MODULE = "sar2opt_geo.cli.main"
TERMINATE_GRACE_S = 10.0  # seconds between SIGTERM and SIGKILL on cancel
POLL_S = 0.1  # how often the feedback is polled for cancellation while the CLI is quiet

# Variables that QGIS (notably OSGeo4W and the macOS bundle) sets for *its* Python, GDAL and
# PROJ. Passed on, they would point the configured environment's interpreter and its
# rasterio wheel at QGIS's libraries and databases (e.g. a proj.db of another PROJ version).
_SCRUBBED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
)

_STDERR_ERROR = re.compile(r"^sar2opt(?: [\w-]+)?: error: (.*)$")  # "sar2opt: error:" / "sar2opt translate: error:"


class BackendError(RuntimeError):
    """The ``sar2opt`` CLI could not be started or reported an error (one-line message)."""


class BackendCancelled(BackendError):
    """The run was cancelled through the feedback; partial outputs were removed."""


@dataclass
class RunResult:
    """What a finished run reported: the ``done`` event's outputs, the JSON document a
    ``--json`` command printed (``info``), and the warnings it logged."""

    outputs: dict[str, Any] = field(default_factory=dict)
    document: Any = None
    warnings: list[str] = field(default_factory=list)
    returncode: int = 0


def resolve_command(configured: str | None = None) -> list[str]:
    """Return the argv prefix that starts the CLI.

    Order: the ``SAR2OPT_EXECUTABLE`` environment variable, then ``configured`` (the
    provider setting), then ``sar2opt`` on ``PATH``. The value may be the ``sar2opt``
    executable, a Python interpreter of an environment where ``sar2opt_geo`` is installed
    (run as ``python -m sar2opt_geo.cli.main``), or a virtual environment folder.
    """
    value = (os.environ.get(ENV_EXECUTABLE) or configured or "").strip()
    if not value:
        found = shutil.which("sar2opt")
        if not found:
            raise BackendError(
                "the sar2opt executable was not found on PATH; set Settings > Options > Processing > "
                f"Providers > sar2opt > 'sar2opt executable or Python interpreter' (or {ENV_EXECUTABLE}) "
                "to e.g. /path/to/venv/bin/sar2opt"
            )
        return [found]
    path = Path(os.path.expanduser(value))
    if path.is_dir():  # a virtual environment folder
        for candidate in ("bin/sar2opt", "Scripts/sar2opt.exe", "bin/python", "Scripts/python.exe"):
            if (path / candidate).is_file():
                path = path / candidate
                break
        else:
            raise BackendError(
                f"{path} is a folder without bin/sar2opt or bin/python; point the sar2opt provider "
                "setting to the sar2opt executable or to the Python of the environment that has sar2opt-geo"
            )
    if not path.is_file():
        found = shutil.which(value)
        if not found:
            raise BackendError(
                f"sar2opt executable {value} does not exist; fix the sar2opt provider setting "
                f"(or {ENV_EXECUTABLE}) to point to the sar2opt executable or its environment's Python"
            )
        path = Path(found)
    if path.name.lower().startswith("python"):
        return [str(path), "-m", CLI_MODULE]
    return [str(path)]


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the CLI: QGIS's Python/GDAL/PROJ variables removed, unbuffered UTF-8 output."""
    env = dict(os.environ if base is None else base)
    for name in _SCRUBBED_ENV:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class OutputGuard:
    """Remember what existed at the output locations before a run, so that a cancelled or
    killed run can remove what it left: new or rewritten files, the atomic writers'
    temporaries beside file outputs, and new entries in output folders."""

    def __init__(self, files: Iterable[str | os.PathLike] = (), folders: Iterable[str | os.PathLike] = ()):
        self._start = time.time()
        self._files = {Path(f): self._stamp(Path(f)) for f in files if f}
        self._folders: dict[Path, set[str] | None] = {}
        for d in folders:
            if d:
                d = Path(d)
                self._folders[d] = set(os.listdir(d)) if d.is_dir() else None

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def cleanup(self, temporaries_only: bool = False) -> list[Path]:
        """Remove partial outputs and return what was removed. ``temporaries_only`` keeps
        finished outputs (after a failure: complete AOI crops stay) and removes only the
        ``.<name>.tmp-*`` files a killed writer may have left."""
        removed: list[Path] = []
        for path, before in self._files.items():
            for tmp in _temporaries_of(path):
                removed += _remove(tmp)
            if not temporaries_only and path.exists() and self._stamp(path) != before:
                removed += _remove(path)
        for folder, before in self._folders.items():
            if not folder.exists():
                continue
            if before is None and not temporaries_only:
                removed += _remove(folder)
                continue
            for name in set(os.listdir(folder)) - (before or set()):
                if not temporaries_only or _is_temporary(name):
                    removed += _remove(folder / name)
        return removed


def _temporaries_of(path: Path) -> list[Path]:
    """What an atomic writer of ``path`` may leave when killed: ``.<name>.tmp-<pid>``
    (DESIGN.md), ``.<stem>.tmp-<pid><suffix>`` (+ ``.aux.xml``) and the scratch folder
    ``.<stem>.work-*`` (sar2opt_geo/io/atomic.py)."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefixes = (f".{path.name}.tmp-", f".{path.stem}.tmp-", f".{path.stem}.work-")
    return sorted(path.parent / n for n in names if n.startswith(prefixes))


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and (".tmp-" in name or ".work-" in name)


def _remove(path: Path) -> list[Path]:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return [path]
    except FileNotFoundError:
        return []
    except OSError:
        return []


class _NullFeedback:
    def isCanceled(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def _pump(stream, tag: str, q: queue.Queue) -> None:
    try:
        for line in iter(stream.readline, ""):
            q.put((tag, line.rstrip("\r\n")))
    finally:
        q.put((tag, None))


def _terminate(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the CLI (and anything it started), then SIGKILL after ``grace_s`` seconds."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def _log(feedback, level: str, message: str, warnings: list[str]) -> None:
    level = (level or "info").lower()
    if level in ("warning", "warn"):
        warnings.append(message)
        if hasattr(feedback, "pushWarning"):
            feedback.pushWarning(message)
        else:
            feedback.reportError(message, False)
    elif level in ("error", "critical"):
        feedback.reportError(message, False)
    elif level == "debug":
        feedback.pushDebugInfo(message)
    else:
        feedback.pushInfo(message)


def run_cli(
    args: Sequence[str],
    feedback=None,
    *,
    command: Sequence[str] | None = None,
    configured: str | None = None,
    guard: OutputGuard | None = None,
    json_document: bool = False,
    check: bool = True,
    grace_s: float = TERMINATE_GRACE_S,
) -> RunResult:
    """Run ``sar2opt ARGS...`` and relay its JSON progress to ``feedback``.

    ``args`` are the sub-command and its arguments (include ``--progress json`` where the
    sub-command supports it). ``command`` overrides the resolved argv prefix
    (:func:`resolve_command` of ``configured`` otherwise). With ``json_document=True`` the
    non-event stdout is parsed as one JSON document (``sar2opt info --json``). With
    ``check=False`` a non-zero exit that still reported ``done`` (a batch where some crops
    failed) returns the result with its ``returncode`` instead of raising.

    Raises :class:`BackendCancelled` when ``feedback.isCanceled()`` turned true (the CLI is
    terminated and ``guard`` removes partial outputs) and :class:`BackendError` with the CLI's
    one-line message when it fails.
    """
    feedback = feedback if feedback is not None else _NullFeedback()
    argv = list(command or resolve_command(configured)) + [str(a) for a in args]
    feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in argv))
    popen_kw: dict[str, Any] = {}
    if os.name == "posix":
        popen_kw["start_new_session"] = True  # own process group: cancel reaches its workers too
    else:
        popen_kw["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
            subprocess, "CREATE_NO_WINDOW", 0
        )
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=child_environment(),
            **popen_kw,
        )
    except OSError as exc:
        raise BackendError(f"cannot start {argv[0]}: {exc.strerror or exc}; check the sar2opt provider setting") from exc

    q: queue.Queue = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, "out", q), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "err", q), daemon=True),
    ]
    for t in pumps:
        t.start()

    result = RunResult()
    error_message: str | None = None
    stderr_error: str | None = None
    stderr_tail: list[str] = []
    document_lines: list[str] = []
    open_streams = 2
    cancelled = False
    try:
        while open_streams:
            if feedback.isCanceled():
                cancelled = True
                feedback.pushInfo("Cancelling: stopping the sar2opt process ...")
                _terminate(proc, grace_s)
                break
            try:
                tag, line = q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            if tag == "err":
                stderr_tail = (stderr_tail + [line])[-20:]
                match = _STDERR_ERROR.match(line)
                if match:
                    stderr_error = match.group(1).strip()
                elif line.strip():
                    feedback.pushConsoleInfo(line)
                continue
            event = _parse_event(line)
            if event is None:
                document_lines.append(line)
                if not json_document and line.strip():
                    feedback.pushConsoleInfo(line)
                continue
            kind = event.get("event")
            if kind == "progress":
                try:
                    feedback.setProgress(100.0 * min(max(float(event.get("fraction", 0.0)), 0.0), 1.0))
                except (TypeError, ValueError):
                    pass
                if event.get("message"):
                    feedback.setProgressText(str(event["message"]))
            elif kind == "log":
                _log(feedback, str(event.get("level", "info")), str(event.get("message", "")), result.warnings)
            elif kind == "done":
                outputs = event.get("outputs") or {}
                if isinstance(outputs, dict):
                    result.outputs.update(outputs)
            elif kind == "error":
                error_message = str(event.get("message", "")).strip() or error_message
    except BaseException:
        _terminate(proc, grace_s)  # e.g. KeyboardInterrupt in qgis_process: never leave it running
        if guard is not None:
            guard.cleanup(temporaries_only=True)
        raise
    finally:
        for t in pumps:
            t.join(timeout=1.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None and not any(t.is_alive() for t in pumps):
                stream.close()

    if cancelled:
        removed = guard.cleanup() if guard is not None else []
        if removed:
            feedback.pushInfo("Removed partial outputs: " + ", ".join(str(p) for p in removed))
        raise BackendCancelled("sar2opt was cancelled by the user; no output was written")

    result.returncode = proc.wait()
    if guard is not None and result.returncode != 0:
        guard.cleanup(temporaries_only=True)
    if result.returncode != 0 and not (not check and result.outputs and error_message is None):
        message = error_message or stderr_error
        if not message:
            tail = [s for s in stderr_tail if s.strip()]
            message = tail[-1].strip() if tail else f"sar2opt exited with status {result.returncode}"
        raise BackendError(message)
    if json_document:
        text = "\n".join(document_lines).strip()
        try:
            result.document = json.loads(text) if text else None
        except json.JSONDecodeError as exc:
            raise BackendError(f"sar2opt {args[0] if args else ''} printed output that is not JSON: {exc}") from exc
    return result


def _parse_event(line: str) -> dict | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and "event" in obj:
        return obj
    return None
