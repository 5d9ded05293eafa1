"""Install the sar2opt backend into a virtual environment of its own (``sar2opt:setup``).

QGIS's Python cannot host torch and pip's rasterio next to QGIS's GDAL, so the backend gets a
separate environment, by default in the QGIS profile (``<profile>/sar2opt/venv``):

1. a Python >= the wheel's ``Requires-Python`` that has ``venv`` and ``ensurepip`` is found
   (given, else QGIS's own Python, else ``python3.X`` / ``python3`` on ``PATH``);
2. ``python -m venv`` makes the environment under a temporary name beside the final one
   (``.venv.partial-<pid>``);
3. pip installs torch, pinned (``torch==2.13.0`` from the plugin's ``constraints.txt``): the CPU
   build from PyTorch's CPU index by default (on macOS PyPI's build), or PyPI's default CUDA
   build, or from a given index URL; ``--no-deps``, its dependencies come with step 4;
4. pip installs the bundled wheel (``wheels/sar2opt_geo-*.whl``, this plugin's own backend with
   its weights) with its dependencies from PyPI, torch held by the constraint;
5. a self-check runs the new CLI end to end: ``sar2opt demo`` on a 64 x 64 synthetic scene (the
   bundled model, rasterio, the COG writer and the PNG preview), then prints the versions;
6. only then is the environment moved to its final place (the scripts' ``#!`` lines are
   rewritten for the new path) and a ``sar2opt-setup.json`` written into it.

Any failure or cancel removes the temporary environment, and what was at the final place stays
as it was. pip's own cache is used, so a second setup does not download again.

Standard library only (no ``qgis`` import): tested outside QGIS; ``feedback`` is duck-typed on
:class:`qgis.core.QgsProcessingFeedback`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .backend import BackendError, NullFeedback, child_environment, venv_executable
from .subprocess_stream import ProcessStream

__all__ = [
    "CPU_INDEX_URL",
    "MARKER",
    "TORCH_BUILDS",
    "PythonCandidate",
    "SetupCancelled",
    "SetupError",
    "SetupResult",
    "bundled_wheel",
    "find_python",
    "python_candidates",
    "setup_backend",
    "torch_install_arguments",
    "torch_pin",
]

PLUGIN_DIR = Path(__file__).resolve().parent
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
TORCH_BUILDS = ("cpu", "cuda")
TORCH_PIN_FALLBACK = "torch==2.13.0"
MARKER = "sar2opt-setup.json"
"""Written into a finished environment: what was installed (wheel hash, torch build, Python)."""

_PROBE = (
    "import json, sys, venv, ensurepip; "
    "print(json.dumps({'version': list(sys.version_info[:3]), 'executable': sys.executable, 'prefix': sys.prefix, "
    "'base_prefix': sys.base_prefix}))"
)
_SELF_CHECK = (
    "import json, torch, rasterio, sar2opt_geo; "
    "print(json.dumps({'sar2opt_geo': sar2opt_geo.__version__, 'torch': torch.__version__, "
    "'cuda': bool(torch.cuda.is_available()), 'rasterio': rasterio.__version__, 'gdal': rasterio.__gdal_version__}))"
)


class SetupError(BackendError):
    """The setup failed; the message names the step and what to do, nothing was left behind."""


class SetupCancelled(SetupError):
    """Cancelled through the feedback; the temporary environment was removed."""


@dataclass(frozen=True)
class PythonCandidate:
    path: str
    version: tuple[int, int, int]
    where: str  # "given", "QGIS's Python", "PATH"


@dataclass(frozen=True)
class SetupResult:
    executable: str  # what to store in the provider setting
    venv: str
    python: str  # the base Python the environment was made with
    reused: bool  # True: an environment from an earlier identical setup passed the check
    versions: dict
    seconds: float


# -- what to install ------------------------------------------------------------------------------


def bundled_wheel(plugin_dir: Path = PLUGIN_DIR) -> Path | None:
    """The backend wheel shipped in the plugin zip (``wheels/sar2opt_geo-*.whl``), newest name last."""
    wheels = sorted((plugin_dir / "wheels").glob("sar2opt_geo-*.whl"))
    return wheels[-1] if wheels else None


def _source_checkout(plugin_dir: Path = PLUGIN_DIR) -> Path | None:
    """The repository when the plugin is used from a checkout (``plugin/sar2opt_qgis`` symlinked)."""
    root = plugin_dir.parents[1] if len(plugin_dir.parents) > 1 else None
    if root and (root / "setup.cfg").is_file() and (root / "scripts" / "build_plugin_zip.py").is_file():
        return root
    return None


def _build_wheel_from_checkout(root: Path, dest: Path) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sar2opt_build_plugin_zip", root / "scripts" / "build_plugin_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_wheel(dest, root=root)


def torch_pin(plugin_dir: Path = PLUGIN_DIR) -> str:
    """The torch requirement from the plugin's ``wheels/constraints.txt`` (the repository's
    ``constraints.txt``, copied by build_plugin_zip.py), else ``torch==2.13.0``."""
    for path in (plugin_dir / "wheels" / "constraints.txt", (_source_checkout(plugin_dir) or plugin_dir) / "constraints.txt"):
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if re.match(r"^torch\s*==", line):
                    return line.replace(" ", "")
    return TORCH_PIN_FALLBACK


def _requires_python(wheel: Path) -> tuple[int, int]:
    """The minimum ``(major, minor)`` from the wheel's ``Requires-Python: >=X.Y`` (else 3.11)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        text = zf.read(name).decode("utf-8") if name else ""
    found = re.search(r"^Requires-Python:\s*>=\s*(\d+)\.(\d+)", text, re.MULTILINE)
    return (int(found.group(1)), int(found.group(2))) if found else (3, 11)


def torch_install_arguments(torch: str = "cpu", index_url: str | None = None, platform: str = sys.platform) -> list[str]:
    """pip arguments that choose where torch comes from: ``index_url`` if given; else the CPU
    build from PyTorch's CPU index (``cpu``; PyPI on macOS, whose wheels are CPU/MPS builds);
    ``cuda``: PyPI's default build, which on Linux is the CUDA one (on Windows PyPI has CPU
    wheels only: give the ``index_url`` of the CUDA build, e.g. .../whl/cu128)."""
    if torch not in TORCH_BUILDS:
        raise SetupError(f"torch build {torch!r} is not one of {', '.join(TORCH_BUILDS)}")
    if index_url:
        return ["--index-url", index_url]
    if torch == "cpu" and platform != "darwin":
        return ["--index-url", CPU_INDEX_URL]
    if torch == "cuda" and platform.startswith("win"):
        raise SetupError(
            "PyPI has no CUDA build of torch for Windows: give the PyTorch index URL of the CUDA build "
            "(TORCH_INDEX_URL, e.g. https://download.pytorch.org/whl/cu128; see pytorch.org/get-started)"
        )
    return []


# -- which Python -------------------------------------------------------------------------------


def python_candidates(given: str | None = None) -> list[tuple[str, str]]:
    """``(path, where)`` to try, in order: the given one; QGIS's own Python (the interpreter
    under ``sys.base_prefix``: QGIS embeds Python, so ``sys.executable`` is QGIS itself or
    whatever ``python3`` PATH had); ``python3.X`` and ``python3`` (Windows: ``python``) on PATH."""
    if given:
        return [(given, "given")]
    found: list[tuple[str, str]] = []
    major, minor = sys.version_info[:2]
    if os.name == "nt":
        own = [os.path.join(sys.base_prefix, "python.exe"), os.path.join(sys.base_prefix, "python3.exe")]
    else:
        own = [os.path.join(sys.base_prefix, "bin", f"python{major}.{minor}"), os.path.join(sys.base_prefix, "bin", "python3")]
    found += [(path, "QGIS's Python") for path in own if Path(path).is_file()]
    names = ["python"] if os.name == "nt" else [f"python3.{m}" for m in range(14, 10, -1)] + ["python3"]
    for name in names:
        path = shutil.which(name)
        if path:
            found.append((path, "PATH"))
    unique: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path, where in found:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, where))
    return unique


def _probe(path: str) -> dict | None:
    try:
        proc = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=child_environment(),
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def find_python(given: str | None = None, minimum: tuple[int, int] = (3, 11), feedback=None) -> PythonCandidate:
    """The first candidate (:func:`python_candidates`) that runs, is at least ``minimum`` and
    has ``venv`` and ``ensurepip`` (Debian/Ubuntu put them in ``python3-venv``)."""
    feedback = feedback or NullFeedback()
    tried = []
    for path, where in python_candidates(given):
        info = _probe(path)
        if info is None:
            tried.append(f"{path} (no venv/ensurepip or does not run)")
            continue
        version = tuple(info["version"])
        if version[:2] < minimum:
            tried.append(f"{path} (Python {'.'.join(map(str, version))})")
            continue
        feedback.pushInfo(f"Python for the environment: {path} ({where}, {'.'.join(map(str, version))})")
        return PythonCandidate(path, version, where)
    need = f"Python >= {minimum[0]}.{minimum[1]} with the venv module"
    if given:
        raise SetupError(f"{given} cannot make the environment: it needs to be a {need}; tried {'; '.join(tried)}")
    raise SetupError(
        f"no {need} found (tried {'; '.join(tried) or 'nothing on PATH'}); install one (Debian/Ubuntu: "
        "sudo apt install python3-venv; Windows/macOS: python.org) and give its path in PYTHON"
    )


# -- running the steps --------------------------------------------------------------------------


_CANCELLED_MESSAGE = "sar2opt setup was cancelled; the partial environment was removed"
_PIP_RETRY = re.compile(r"WARNING: Retrying \(Retry\(")
_PIP_RETRY_HOST = re.compile(r"HTTPS?ConnectionPool\(host='([^']+)'")


class _Steps:
    """Runs commands with their output streamed to ``feedback``, progress mapped into a band,
    cancel polled every 0.1 s (SIGTERM to the process group, SIGKILL 10 s later)."""

    def __init__(self, feedback):
        self.feedback = feedback
        self._text = None
        self._retrying = False  # pip's first retry warning of the current step was reported

    def text(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.feedback.setProgressText(text)

    def check_cancel(self) -> None:
        if self.feedback.isCanceled():
            raise SetupCancelled(_CANCELLED_MESSAGE)

    def run(self, argv: list[str], step: str, band: tuple[float, float], env: dict | None = None,
            expected_lines: int = 60) -> list[str]:
        self.check_cancel()
        self.feedback.pushCommandInfo(" ".join(argv))
        self.text(step)
        self._retrying = False
        try:
            stream = ProcessStream(argv, env=env or child_environment(), merge_stderr=True)
        except OSError as exc:
            raise SetupError(f"{step}: cannot start {argv[0]}: {exc.strerror or exc}") from exc
        lines: list[str] = []
        with stream:
            for _, line in stream.lines(self.feedback.isCanceled):
                lines.append(line)
                self._relay(line, band, len(lines), expected_lines)
        if stream.cancelled:
            raise SetupCancelled(_CANCELLED_MESSAGE)
        code = stream.wait()
        if code != 0:
            errors = [ln.strip() for ln in lines if ln.strip().startswith("ERROR:")] or [ln.strip() for ln in lines if ln.strip()][-1:]
            raise SetupError(f"{step} failed (exit status {code}): {errors[-1] if errors else 'no output'}")
        self.feedback.setProgress(band[1])
        return lines

    def _relay(self, line: str, band: tuple[float, float], count: int, expected_lines: int) -> None:
        """One output line: pip's first retry warning as one calm info line (the rest dropped),
        other lines to the console; progress moves towards the band's end."""
        if _PIP_RETRY.search(line):  # pip's "WARNING: Retrying ..." per index and attempt look like failure
            if not self._retrying:
                self._retrying = True
                host = _PIP_RETRY_HOST.search(line)
                self.feedback.pushInfo(
                    f"pip cannot reach {host.group(1) if host else 'a package index'} at the moment and retries "
                    "(further retry lines are left out); this is not a failure unless the step fails")
        elif line.strip():
            self.feedback.pushConsoleInfo(line)  # pip's own lines; the progress text stays the step's
        # approach the band's end without reaching it: pip does not say how much is left
        low, high = band
        self.feedback.setProgress(low + (high - low) * (1 - 0.5 ** (count / max(expected_lines / 3, 1))))


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "--progress-bar", "off", "--prefer-binary"]


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _relocate(staging: Path, target: Path) -> None:
    """Rewrite the paths a venv records of itself (``#!`` lines of ``bin/`` scripts, the
    activate scripts, ``pyvenv.cfg``'s ``command``) from ``staging`` to ``target``. The
    interpreter itself finds its prefix from its own location, so the rest needs nothing."""
    old, new = str(staging).encode(), str(target).encode()
    scripts = staging / ("Scripts" if os.name == "nt" else "bin")
    for path in [*sorted(scripts.iterdir()), staging / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file() or path.suffix.lower() == ".exe":
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data[:1024]:  # text files only
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old, new))
            path.chmod(mode)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # a file left read-only (Windows) or busy: try once more
        time.sleep(0.5)
        shutil.rmtree(path, ignore_errors=True)


def _stale_partials(target: Path) -> list[Path]:
    """Temporary environments of earlier setups that were killed (their process is gone). POSIX
    only: on Windows ``os.kill(pid, 0)`` would terminate a process, so nothing is swept there."""
    stale: list[Path] = []
    if os.name != "posix":
        return stale
    for path in target.parent.glob(f".{target.name}.partial-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.append(path)
        except (PermissionError, OSError):
            pass
    return stale


def _self_check(python: Path, work: Path, steps: _Steps, band: tuple[float, float]) -> dict:
    """``sar2opt demo`` on a small synthetic scene with the bundled model, then the versions."""
    env = child_environment()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    demo = work / "selfcheck" / "demo_rgb.tif"
    steps.run([str(python), "-m", "sar2opt_geo.cli.main", "demo", "--size", "64", "--device", "cpu", "--progress", "none",
               "--output", str(demo)], "self-check: translating a synthetic scene", band, env=env, expected_lines=8)
    if not demo.is_file():
        raise SetupError(f"self-check failed: sar2opt demo reported success but wrote no {demo.name}")
    lines = steps.run([str(python), "-c", _SELF_CHECK], "self-check: versions", (band[1], band[1]), env=env, expected_lines=1)
    shutil.rmtree(work / "selfcheck", ignore_errors=True)
    try:
        return json.loads(lines[-1])
    except (ValueError, IndexError) as exc:
        raise SetupError(f"self-check failed: no version report ({exc})") from None


def _marker(wheel_sha256: str, torch_req: str, torch: str, index_url: str | None, python: PythonCandidate | None) -> dict:
    return {"wheel_sha256": wheel_sha256, "torch": torch_req, "torch_build": torch, "index_url": index_url or "",
            "python": python.path if python else ""}


def _reusable(target: Path, wanted: dict, python: str | None = None) -> bool:
    """An earlier setup at ``target`` did what is asked now (same wheel, torch and index; the
    same base Python when one is given)."""
    try:
        recorded = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    keys = ("wheel_sha256", "torch", "torch_build", "index_url")
    if python and os.path.realpath(python) != os.path.realpath(recorded.get("python") or ""):
        return False
    return all(recorded.get(k) == wanted.get(k) for k in keys) and venv_executable(target).is_file()


def setup_backend(
    target: str | os.PathLike,
    *,
    wheel: str | os.PathLike | None = None,
    python: str | None = None,
    torch: str = "cpu",
    index_url: str | None = None,
    reinstall: bool = False,
    feedback=None,
    plugin_dir: Path = PLUGIN_DIR,
) -> SetupResult:
    """Create (or check) the backend environment at ``target`` and return what to store.

    ``wheel``: the sar2opt-geo wheel (default: the one bundled with the plugin, else one built
    from the repository checkout the plugin runs from); ``python``: the base interpreter
    (default: found, :func:`find_python`); ``torch``: ``cpu`` or ``cuda`` and ``index_url``, see
    :func:`torch_install_arguments`; ``reinstall``: rebuild even when an environment from an
    identical setup (same wheel, torch and index) is there and passes the self-check.
    """
    t0 = time.monotonic()
    feedback = feedback if feedback is not None else NullFeedback()
    steps = _Steps(feedback)
    target = Path(os.path.abspath(os.path.expanduser(str(target))))
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_partials(target):
        feedback.pushInfo(f"Removing the unfinished environment of an earlier setup: {stale}")
        _remove_tree(stale)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    _remove_tree(staging)
    torch_args = torch_install_arguments(torch, index_url)  # fails early on an impossible request
    torch_req = torch_pin(plugin_dir)
    try:
        staging.mkdir()
        if wheel is None:
            wheel = bundled_wheel(plugin_dir)
            if wheel is None:
                root = _source_checkout(plugin_dir)
                if root is None:
                    raise SetupError(f"the plugin has no backend wheel ({plugin_dir / 'wheels'} is empty); reinstall the plugin zip")
                feedback.pushInfo(f"No bundled wheel: building one from the checkout {root}")
                wheel = _build_wheel_from_checkout(root, staging / "wheel")
        wheel = Path(wheel)
        if not wheel.is_file():
            raise SetupError(f"backend wheel {wheel} does not exist")
        wanted = _marker(_sha256(wheel), torch_req, torch, index_url, None)
        if not reinstall and _reusable(target, wanted, python):
            feedback.pushInfo(f"{target} was set up with the same wheel and torch build; checking it")
            try:
                versions = _self_check(_venv_python(target), staging, steps, (0.0, 95.0))
            except SetupCancelled:
                raise
            except SetupError as exc:
                feedback.pushWarning(f"the existing environment failed its self-check ({exc}); rebuilding it")
            else:
                recorded = json.loads((target / MARKER).read_text(encoding="utf-8"))
                feedback.setProgress(100.0)
                return SetupResult(str(venv_executable(target)), str(target), recorded.get("python", ""), True, versions,
                                   time.monotonic() - t0)
        base = find_python(python, _requires_python(wheel), feedback)
        wanted["python"] = base.path
        venv = staging / "venv"
        steps.run([base.path, "-m", "venv", str(venv)], "creating the virtual environment", (0.0, 5.0), expected_lines=2)
        vpy = _venv_python(venv)
        steps.run([*_pip(vpy), "--no-deps", *torch_args, torch_req], f"installing {torch_req} ({torch})", (5.0, 40.0),
                  expected_lines=6)
        constraints = staging / "constraints.txt"
        constraints.write_text(torch_req + "\n", encoding="utf-8")
        steps.run([*_pip(vpy), "-c", str(constraints), str(wheel)], f"installing {wheel.name} and its dependencies",
                  (40.0, 85.0), expected_lines=120)
        versions = _self_check(vpy, staging, steps, (85.0, 97.0))
        steps.check_cancel()
        feedback.pushInfo("self-check passed: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        steps.text("moving the environment into place")
        _relocate(venv, target)
        (venv / MARKER).write_text(json.dumps({**wanted, "versions": versions,
                                               "base": asdict(base)}, indent=1) + "\n", encoding="utf-8")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(venv, target)
        except OSError:
            if old.exists():
                os.replace(old, target)
            raise
        _remove_tree(old)
        feedback.setProgress(100.0)
        return SetupResult(str(venv_executable(target)), str(target), base.path, False, versions, time.monotonic() - t0)
    except SetupCancelled:
        raise
    except (SetupError, OSError) as exc:
        raise SetupError(
            f"sar2opt setup failed: {exc}; the partial environment was removed and {target} was left as it was"
        ) from None
    finally:
        _remove_tree(staging)
