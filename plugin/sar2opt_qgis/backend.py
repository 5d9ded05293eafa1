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
import re
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .output_guard import OutputGuard
from .subprocess_stream import POLL_S, TERMINATE_GRACE_S, ProcessStream

__all__ = [
    "ENV_EXECUTABLE",
    "PROFILE_VENV",
    "SETTING_EXECUTABLE",
    "BackendCancelled",
    "BackendError",
    "BackendNotFound",
    "NullFeedback",
    "OutputGuard",
    "RunResult",
    "child_environment",
    "cli_argv",
    "find_backend",
    "profile_venv",
    "resolve_command",
    "run_cli",
    "venv_executable",
]

ENV_EXECUTABLE = "SAR2OPT_EXECUTABLE"
"""Environment variable naming the backend when the provider setting is empty (path to
``sar2opt``, to its environment's Python or to the environment's folder)."""

PROFILE_VENV = ("sar2opt", "venv")
"""Where ``sar2opt:setup`` puts the backend's virtual environment, inside the QGIS profile folder."""

SETTING_PATH = "Settings > Options > Processing > Providers > sar2opt > sar2opt executable"
SETUP_HINT = "run 'Set up the sar2opt backend' (sar2opt:setup) in the Processing toolbox"

SETTING_EXECUTABLE = "SAR2OPT_EXECUTABLE"
"""Name of the Processing setting (Options > Processing > Providers > sar2opt)."""

CLI_MODULE = "sar2opt_geo.cli.main"
# TERMINATE_GRACE_S (seconds between SIGTERM and SIGKILL on cancel) and POLL_S (how often the
# feedback is polled for cancellation while the CLI is quiet) come from .subprocess_stream
_STAGE_COUNTERS = re.compile(r"\d[\d.,:]*")  # counts, fractions, percentages and times in a progress text

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
    model: str | None = None  # the model card's name, where the done event gives it


class BackendNotFound(BackendError):
    """No backend is configured or installed (the message says how to get one)."""


def profile_venv(profile_dir: str | os.PathLike) -> Path:
    """``<profile>/sar2opt/venv``: the virtual environment ``sar2opt:setup`` creates."""
    return Path(profile_dir).joinpath(*PROFILE_VENV)


def venv_executable(venv: str | os.PathLike) -> Path:
    """What runs the CLI of a virtual environment: ``bin/sar2opt``; on Windows the
    environment's ``python.exe`` (``Scripts\\sar2opt.exe`` embeds the path it was built at)."""
    venv = Path(venv)
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "sar2opt"


def find_backend(
    configured: str | None = None,
    *,
    profile_dir: str | os.PathLike | None = None,
    environ: dict[str, str] | None = None,
) -> list[str]:
    """Return the argv prefix that starts the CLI, from the first of these that is set:

    1. ``configured``: the provider setting (``sar2opt:setup`` stores its result there);
    2. the ``SAR2OPT_EXECUTABLE`` environment variable;
    3. the environment ``sar2opt:setup`` made in the QGIS profile, ``<profile_dir>/sar2opt/venv``;
    4. ``sar2opt`` on ``PATH``.

    A value may be the ``sar2opt`` executable, the Python of an environment where
    ``sar2opt_geo`` is installed (run as ``python -m sar2opt_geo.cli.main``) or the
    environment's folder. A setting or variable that points nowhere is an error naming it
    (it is not skipped: the user chose it). Raises :class:`BackendNotFound` when none is set.
    """
    environ = os.environ if environ is None else environ
    value = (configured or "").strip()
    if value:
        return _command_for(value, f"the sar2opt provider setting ({SETTING_PATH})")
    value = (environ.get(ENV_EXECUTABLE) or "").strip()
    if value:
        return _command_for(value, f"the {ENV_EXECUTABLE} environment variable")
    if profile_dir:
        executable = venv_executable(profile_venv(profile_dir))
        if executable.is_file():
            return _command_for(str(executable), f"the environment made by sar2opt:setup ({executable.parent.parent})")
    found = shutil.which("sar2opt", path=environ.get("PATH"))
    if found:
        return [found]
    places = f"the provider setting, {ENV_EXECUTABLE}, " + (f"{profile_venv(profile_dir)} " if profile_dir else "") + "and PATH"
    raise BackendNotFound(
        f"no sar2opt backend found (looked at {places}): {SETUP_HINT}, or set {SETTING_PATH} "
        "to the sar2opt of an environment that has sar2opt-geo and torch"
    )


def resolve_command(configured: str | None = None, profile_dir: str | os.PathLike | None = None) -> list[str]:
    """:func:`find_backend` (kept for callers of the earlier name)."""
    return find_backend(configured, profile_dir=profile_dir)


def _command_for(value: str, source: str) -> list[str]:
    path = Path(os.path.expanduser(value))
    if path.is_dir():  # a virtual environment folder
        for candidate in ("bin/sar2opt", "Scripts/python.exe", "bin/python", "Scripts/sar2opt.exe"):
            if (path / candidate).is_file():
                path = path / candidate
                break
        else:
            raise BackendError(
                f"{path} ({source}) is a folder without bin/sar2opt or bin/python; point it to the sar2opt "
                f"executable or to the Python of the environment that has sar2opt-geo, or {SETUP_HINT}"
            )
    if not path.is_file():
        found = shutil.which(value)
        if not found:
            raise BackendError(f"sar2opt executable {value} ({source}) does not exist; fix it or clear it and {SETUP_HINT}")
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


class NullFeedback:
    """A feedback that is never cancelled and ignores every message (when none is given)."""

    def isCanceled(self) -> bool:
        """Never cancelled."""
        return False

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


_GDAL_MESSAGE = re.compile(r"^(Warning|ERROR) \d+: (.*)$")  # GDAL's own CPLError lines on stderr
_PY_WARNING = re.compile(r"^\S.*:\d+: (\w*Warning): (.*)$")  # "file.py:12: UserWarning: text"


class _Relay:
    """Turns the CLI's output into feedback calls: progress text only when it changes, each
    distinct warning once, GDAL's and Python's raw warning lines on stderr as one short
    warning each (the source line Python prints below a warning is dropped), log errors
    held back so that the final error is not reported twice."""

    def __init__(self, feedback, translate: Callable[[str], str]):
        self.feedback = feedback
        self.translate = translate
        self.warnings: list[str] = []
        self.logged_errors: list[str] = []
        self._text: str | None = None
        self._seen: set[str] = set()
        self._skip_source_line = False

    def progress(self, event: dict) -> None:
        try:
            self.feedback.setProgress(100.0 * min(max(float(event.get("fraction", 0.0)), 0.0), 1.0))
        except (TypeError, ValueError):
            pass
        text = str(event.get("message") or "")
        stage = _STAGE_COUNTERS.sub("#", text)  # "tiles 7/891" and "tiles 8/891" are one stage
        if text and stage != self._text:
            # QGIS's dialog logs every progress text as a line: one per stage, the bar moves for the rest
            self._text = stage
            self.feedback.setProgressText(text)

    def warning(self, message: str) -> None:
        message = self.translate(message)
        if message in self._seen:
            return
        self._seen.add(message)
        self.warnings.append(message)
        if hasattr(self.feedback, "pushWarning"):
            self.feedback.pushWarning(message)
        else:
            self.feedback.reportError(message, False)

    def log(self, level: str, message: str) -> None:
        level = (level or "info").lower()
        if level in ("warning", "warn"):
            self.warning(message)
        elif level in ("error", "critical"):
            self.logged_errors.append(self.translate(message))
        elif level == "debug":
            self.feedback.pushDebugInfo(message)
        else:
            self.feedback.pushInfo(self.translate(message))

    def stderr(self, line: str) -> None:
        if self._skip_source_line:
            self._skip_source_line = False
            if line.startswith((" ", "\t")):
                return
        gdal = _GDAL_MESSAGE.match(line)
        if gdal:
            self.warning(f"GDAL {gdal.group(1).lower()}: {gdal.group(2).strip()}")
            return
        py = _PY_WARNING.match(line)
        if py:
            self._skip_source_line = True
            self.warning(f"{py.group(1)}: {py.group(2).strip()}")
            return
        if line.strip():
            self.feedback.pushConsoleInfo(line)

    def flush_errors(self, final: str | None) -> None:
        """Report the logged errors that are not the final error message."""
        for message in self.logged_errors:
            if message != final:
                self.feedback.reportError(message, False)


class _Collector:
    """Reads the CLI's output lines: JSON events go to the relay and into the result, other
    stdout lines into the console (or the ``--json`` document), stderr's ``sar2opt: error:``
    line is kept as the error, the rest of stderr goes to the relay."""

    def __init__(self, relay: _Relay, json_document: bool):
        self.relay = relay
        self.json_document = json_document
        self.result = RunResult()
        self.error_message: str | None = None  # from an "error" event
        self.stderr_error: str | None = None  # from a "sar2opt: error: ..." line
        self.stderr_tail: list[str] = []
        self.document_lines: list[str] = []

    def line(self, tag: str, line: str) -> None:
        if tag == "err":
            self.stderr(line)
        else:
            self.stdout(line)

    def stderr(self, line: str) -> None:
        self.stderr_tail = (self.stderr_tail + [line])[-20:]
        match = _STDERR_ERROR.match(line)
        if match:
            self.stderr_error = match.group(1).strip()
        else:
            self.relay.stderr(line)

    def stdout(self, line: str) -> None:
        event = _parse_event(line)
        if event is None:
            self.document_lines.append(line)
            if not self.json_document and line.strip():
                self.relay.feedback.pushConsoleInfo(line)
            return
        kind = event.get("event")
        if kind == "progress":
            self.relay.progress(event)
        elif kind == "log":
            self.relay.log(str(event.get("level", "info")), str(event.get("message", "")))
        elif kind == "done":
            outputs = event.get("outputs") or {}
            if isinstance(outputs, dict):
                self.result.outputs.update(outputs)
            if event.get("model"):
                self.result.model = str(event["model"])
        elif kind == "error":
            self.error_message = str(event.get("message", "")).strip() or self.error_message


def run_cli(
    args: Sequence[str],
    feedback=None,
    *,
    command: Sequence[str] | None = None,
    configured: str | None = None,
    profile_dir: str | os.PathLike | None = None,
    guard: OutputGuard | None = None,
    json_document: bool = False,
    check: bool = True,
    grace_s: float = TERMINATE_GRACE_S,
    translate: Callable[[str], str] | None = None,
) -> RunResult:
    """Run ``sar2opt ARGS...`` and relay its JSON progress to ``feedback``.

    ``args`` are the sub-command and its arguments (include ``--progress json`` where the
    sub-command supports it). ``command`` overrides the argv prefix (:func:`find_backend` of
    ``configured`` and ``profile_dir`` otherwise). With ``json_document=True`` the
    non-event stdout is parsed as one JSON document (``sar2opt info --json``). With
    ``check=False`` a non-zero exit that still reported ``done`` (a batch where some crops
    failed) returns the result with its ``returncode`` instead of raising. ``translate``
    rewrites messages (warnings, errors) before they are shown, e.g. option names into QGIS
    parameter names.

    Raises :class:`BackendCancelled` when ``feedback.isCanceled()`` turned true (the CLI is
    terminated and ``guard`` removes partial outputs) and :class:`BackendError` with the CLI's
    one-line message when it fails.
    """
    feedback = feedback if feedback is not None else NullFeedback()
    translate = translate or (lambda text: text)
    argv = cli_argv(args, command, configured=configured, profile_dir=profile_dir)
    feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in argv))
    stream = _start(argv, grace_s)
    collector = _Collector(_Relay(feedback, translate), json_document)
    _relay_output(stream, collector, feedback, guard)
    if stream.cancelled:
        _raise_cancelled(feedback, guard)
    result = collector.result
    result.returncode = stream.wait()
    if guard is not None and result.returncode != 0:
        guard.cleanup(temporaries_only=True)
    final = _final_error(collector, check, translate)
    collector.relay.flush_errors(final)
    if final is not None:
        raise BackendError(final)
    if json_document:
        result.document = _json_document(collector.document_lines, args)
    return result


def cli_argv(
    args: Sequence[str],
    command: Sequence[str] | None = None,
    *,
    configured: str | None = None,
    profile_dir: str | os.PathLike | None = None,
) -> list[str]:
    """The full command line: ``command`` (else :func:`find_backend`) followed by ``args``."""
    return list(command or find_backend(configured, profile_dir=profile_dir)) + [str(a) for a in args]


def _start(argv: list[str], grace_s: float) -> ProcessStream:
    """Start the CLI in a process group of its own, with :func:`child_environment`."""
    try:
        return ProcessStream(argv, env=child_environment(), grace_s=grace_s, poll_s=POLL_S)
    except OSError as exc:
        raise BackendError(f"cannot start {argv[0]}: {exc.strerror or exc}; check the sar2opt provider setting") from exc


def _relay_output(stream: ProcessStream, collector: _Collector, feedback, guard: OutputGuard | None) -> None:
    """Pass each output line to ``collector`` until the CLI ends or the feedback is cancelled
    (the CLI is then terminated). On any exception (e.g. KeyboardInterrupt in qgis_process)
    the CLI is terminated and the guard removes temporaries before it propagates."""
    try:
        with stream:
            for tag, line in stream.lines(
                feedback.isCanceled, on_cancel=lambda: feedback.pushInfo("Cancelling: stopping the sar2opt process ...")
            ):
                collector.line(tag, line)
    except BaseException:
        if guard is not None:
            guard.cleanup(temporaries_only=True)
        raise
    collector.result.warnings = collector.relay.warnings


def _raise_cancelled(feedback, guard: OutputGuard | None) -> None:
    """Remove partial outputs (all, or only temporaries with ``keep_finished``) and raise
    :class:`BackendCancelled` saying what was kept."""
    keep = guard is not None and guard.keep_finished
    removed = guard.cleanup(temporaries_only=keep) if guard is not None else []
    if removed:
        feedback.pushInfo("Removed partial outputs: " + ", ".join(str(p) for p in removed))
    if keep:
        raise BackendCancelled(
            "sar2opt was cancelled by the user; outputs finished before the cancel were kept and partial "
            "ones removed: run it again with the same output folder to resume"
        )
    raise BackendCancelled("sar2opt was cancelled by the user; no output was written")


def _final_error(collector: _Collector, check: bool, translate: Callable[[str], str]) -> str | None:
    """The one-line error of a failed run, or None when it succeeded (or, with ``check=False``,
    failed after reporting its outputs and no error event): the error event's message, else
    stderr's ``sar2opt: error:`` line, else stderr's last line, else the exit status."""
    result = collector.result
    if result.returncode == 0 or (not check and result.outputs and collector.error_message is None):
        return None
    final = collector.error_message or collector.stderr_error
    if not final:
        tail = [s for s in collector.stderr_tail if s.strip()]
        final = tail[-1].strip() if tail else f"sar2opt exited with status {result.returncode}"
    return translate(final)


def _json_document(lines: list[str], args: Sequence[str]) -> Any:
    """The non-event stdout lines parsed as one JSON document (None when there were none)."""
    text = "\n".join(lines).strip()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise BackendError(f"sar2opt {args[0] if args else ''} printed output that is not JSON: {exc}") from exc


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
