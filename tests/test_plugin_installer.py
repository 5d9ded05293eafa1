"""The plugin's standard-library modules outside QGIS: the backend setup (``installer.py``)
with test-double Pythons for the failure and cancel paths (the real setup runs in
``tests/test_qgis_setup.py``), the process streaming both use (``subprocess_stream.py``), the
first-run decision and the option names in messages."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "plugin"))
import build_plugin_zip
from sar2opt_qgis import backend, firstrun, installer, options, subprocess_stream

_FAKE_PYTHON = '''\
#!{python}
"""Test double for a base Python: answers the probe as Python {version}; FAKE_PY says what
``-m venv`` does: fail (like Debian without python3-venv) or slow (runs until killed)."""
import json, os, sys, time
if sys.argv[1] == "-c":
    print(json.dumps({{"version": {version}, "executable": sys.argv[0], "prefix": "/fake", "base_prefix": "/fake"}}))
    sys.exit(0)
if sys.argv[1:3] == ["-m", "venv"]:
    os.makedirs(sys.argv[3], exist_ok=True)
    if os.environ.get("FAKE_PY") == "fail":
        print("Error: Command '[\\'" + sys.argv[3] + "/bin/python3\\', \\'-m\\', \\'ensurepip\\']' returned non-zero exit status 1.")
        sys.exit(1)
    for i in range(600):
        print(f"working {{i}}", flush=True)
        time.sleep(0.05)
sys.exit(3)
'''


def _fake_python(folder: Path, version=(3, 12, 0)) -> Path:
    path = folder / "python3"
    path.write_text(_FAKE_PYTHON.format(python=sys.executable, version=list(version)))
    path.chmod(0o755)
    return path


class Feedback:
    def __init__(self, cancel_after_lines: int | None = None):
        self.console: list[str] = []
        self.info: list[str] = []
        self.texts: list[str] = []
        self.progress: list[float] = []
        self.cancel_after_lines = cancel_after_lines

    def isCanceled(self) -> bool:
        return self.cancel_after_lines is not None and len(self.console) >= self.cancel_after_lines

    def setProgress(self, value):
        self.progress.append(value)

    def setProgressText(self, text):
        self.texts.append(text)

    def pushConsoleInfo(self, text):
        self.console.append(text)

    def pushInfo(self, text):
        self.info.append(text)

    def pushWarning(self, text):
        self.info.append(text)

    def pushCommandInfo(self, text):
        self.info.append(text)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_plugin_zip.build_wheel(tmp_path_factory.mktemp("wheel"))


def _earlier_setup(profile: Path) -> Path:
    """A working environment from an earlier setup, as files: it must survive a failed one."""
    target = backend.profile_venv(profile)
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "sar2opt").write_text("#!/bin/sh\n")
    return target


@pytest.mark.parametrize("mode, error", [("fail", installer.SetupError), ("slow", installer.SetupCancelled)])
def test_failed_or_cancelled_setup_leaves_nothing_and_keeps_the_earlier_environment(tmp_path, wheel, monkeypatch, mode, error):
    monkeypatch.setenv("FAKE_PY", mode)
    python = _fake_python(tmp_path)
    target = _earlier_setup(tmp_path / "profile")
    stale = target.with_name(".venv.partial-999999999")  # left by a setup that was killed
    stale.mkdir()
    fb = Feedback(cancel_after_lines=3 if mode == "slow" else None)
    t0 = time.monotonic()
    with pytest.raises(error) as info:
        installer.setup_backend(target, wheel=wheel, python=str(python), feedback=fb)
    assert time.monotonic() - t0 < 20  # the slow fake alone would run 30 s
    message = str(info.value)
    if mode == "fail":
        assert message.startswith("sar2opt setup failed: creating the virtual environment failed (exit status 1):")
        assert "ensurepip" in message and f"{target} was left as it was" in message
    else:
        assert "cancelled" in message and "removed" in message
    assert sorted(p.name for p in target.parent.iterdir()) == ["venv"]  # no .venv.partial-*, stale one removed too
    assert sorted(p.name for p in target.rglob("*")) == ["bin", "sar2opt"]


def test_find_python_rejects_too_old_and_missing_interpreters(tmp_path):
    old = _fake_python(tmp_path, version=(3, 10, 2))
    with pytest.raises(installer.SetupError, match=r"needs to be a Python >= 3.11 with the venv module.*Python 3\.10\.2"):
        installer.find_python(str(old), (3, 11))
    with pytest.raises(installer.SetupError, match="does not run"):
        installer.find_python(str(tmp_path / "no-python"), (3, 11))
    (tmp_path / "new").mkdir()
    good = installer.find_python(str(_fake_python(tmp_path / "new")), (3, 11))
    assert good.version == (3, 12, 0) and good.where == "given"


def test_find_python_automatically_finds_one_with_venv():
    """Where the tests run (and in CI) a Python >= 3.11 with venv and ensurepip exists; QGIS's
    own interpreter (under sys.base_prefix) is tried before PATH."""
    candidates = installer.python_candidates()
    own = [p for p, where in candidates if where == "QGIS's Python"]
    assert own and candidates[: len(own)] == [(p, "QGIS's Python") for p in own]
    assert all(Path(p).parent == Path(sys.base_prefix) / "bin" for p in own)
    found = installer.find_python(None, (3, 11))
    assert found.version >= (3, 11) and Path(found.path).is_file()


def test_torch_comes_from_the_cpu_index_unless_asked_otherwise():
    assert installer.torch_install_arguments("cpu", platform="linux") == ["--index-url", installer.CPU_INDEX_URL]
    assert installer.torch_install_arguments("cpu", platform="win32") == ["--index-url", installer.CPU_INDEX_URL]
    assert installer.torch_install_arguments("cpu", platform="darwin") == []  # PyPI's macOS wheels are CPU/MPS
    assert installer.torch_install_arguments("cuda", platform="linux") == []  # PyPI's default Linux build is CUDA
    assert installer.torch_install_arguments("cuda", "https://example.invalid/cu128", platform="win32") == [
        "--index-url", "https://example.invalid/cu128"]
    with pytest.raises(installer.SetupError, match="TORCH_INDEX_URL"):
        installer.torch_install_arguments("cuda", platform="win32")
    with pytest.raises(installer.SetupError, match="rocm"):
        installer.torch_install_arguments("rocm")


def test_torch_pin_is_the_repository_constraint(tmp_path):
    plugin = build_plugin_zip.build_folder(tmp_path)
    constraint = next(line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch"))
    assert installer.torch_pin(plugin) == constraint.replace(" ", "") == "torch==2.13.0"
    assert installer.bundled_wheel(plugin).name == build_plugin_zip.wheel_name()
    assert installer.torch_pin(tmp_path / "elsewhere") == installer.TORCH_PIN_FALLBACK


def test_relocate_rewrites_the_paths_a_venv_records(tmp_path):
    staging = tmp_path / ".venv.partial-1" / "venv"
    target = tmp_path / "venv"
    (staging / "bin").mkdir(parents=True)
    script = staging / "bin" / "sar2opt"
    script.write_text(f"#!{staging}/bin/python\nimport sys\n")
    script.chmod(0o755)
    (staging / "bin" / "activate").write_text(f"VIRTUAL_ENV='{staging}'\n")
    (staging / "bin" / "python").symlink_to(sys.executable)
    (staging / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = /usr/bin/python3 -m venv {staging}\n")
    installer._relocate(staging, target)
    assert script.read_text().splitlines()[0] == f"#!{target}/bin/python" and os.access(script, os.X_OK)
    assert (staging / "bin" / "activate").read_text() == f"VIRTUAL_ENV='{target}'\n"
    assert (staging / "pyvenv.cfg").read_text().endswith(f"-m venv {target}\n")
    assert os.readlink(staging / "bin" / "python") == sys.executable


def test_reuse_needs_the_same_wheel_torch_and_index(tmp_path):
    target = _earlier_setup(tmp_path)
    wanted = installer._marker("abc", "torch==2.13.0", "cpu", None, None)
    assert not installer._reusable(target, wanted)  # no marker: not a finished setup
    (target / installer.MARKER).write_text(json.dumps({**wanted, "python": "/usr/bin/python3"}))
    assert installer._reusable(target, wanted)
    assert not installer._reusable(target, {**wanted, "wheel_sha256": "def"})  # the plugin brought a new wheel
    assert not installer._reusable(target, {**wanted, "torch_build": "cuda"})
    assert installer._reusable(target, wanted, python="/usr/bin/python3")  # the one it was made with
    assert not installer._reusable(target, wanted, python=sys.executable)  # another Python asked for


def test_first_run_prompt_only_in_the_desktop_without_a_backend(tmp_path, monkeypatch):
    monkeypatch.delenv(backend.ENV_EXECUTABLE, raising=False)
    missing = firstrun.missing_backend("", tmp_path, environ={"PATH": str(tmp_path)})
    assert missing and "sar2opt:setup" in missing
    assert firstrun.should_offer_setup(True, missing, dismissed=False)
    assert not firstrun.should_offer_setup(False, missing, dismissed=False)  # qgis_process, scripts
    assert not firstrun.should_offer_setup(True, missing, dismissed=True)  # "Don't ask again"
    assert firstrun.missing_backend(sys.executable, tmp_path) is None
    assert not firstrun.should_offer_setup(True, None, dismissed=False)


@pytest.mark.parametrize("text, expected", [
    ("match_input_grid cannot be combined with dst_crs/dst_res; choose one", "MATCH_INPUT_GRID cannot be combined with TARGET_CRS; choose one"),
    ("/s.tif: a composite needs a dual-pol scene (HH+HV or VV+VH); it has VV; pass --co and --cross (co=, cross=) band names",
     "/s.tif: a composite needs a dual-pol scene (HH+HV or VV+VH); it has VV; set CO_POL and CROSS_POL band names"),
    ("tile_size=100 is not a positive multiple of 16; use e.g. 112", "TILE_SIZE=100 is not a positive multiple of 16; use e.g. 112"),
    ("/s.tif: match_input_grid needs a map-projected input; use dst_crs/dst_res (--t-srs/--tr) instead",
     "/s.tif: MATCH_INPUT_GRID needs a map-projected input; use TARGET_CRS instead"),
    ("tiles overlap by 96 px; the bands of the scene", "tiles overlap by 96 px; the bands of the scene"),  # plain words stay
])
def test_messages_use_the_qgis_parameter_names(text, expected):
    assert options.qgis_message(text) == expected


def test_tiling_check_names_the_parameters():
    assert options.check_tiling(options.TILE_SIZE_DEFAULT, options.OVERLAP_DEFAULT) is None
    assert options.check_tiling(None, None) is None and options.check_tiling(512, None) is None
    assert options.check_tiling(options.TILE_SIZE_MIN, options.OVERLAP_MIN) is None
    assert options.check_tiling(500, 128) == "TILE_SIZE=500 is not a multiple of 16 pixels; use e.g. 512"
    assert options.check_tiling(512, 100).startswith("OVERLAP=100 is not a multiple of 16 pixels")
    assert options.check_tiling(512, 64).startswith("OVERLAP=64 is smaller than 96 pixels")
    assert options.check_tiling(256, 256).startswith("OVERLAP=256 must be smaller than TILE_SIZE=256")


_SYNTHETIC_OPTIONS = '''
"""A synthetic sar2opt_geo/options.py: the shape the plugin reads (stdlib only at module level)."""
from __future__ import annotations
import dataclasses
from dataclasses import dataclass, field
DEFAULT_TILE_SIZE = 256
DEFAULT_OVERLAP = 96
@dataclass(frozen=True)
class TranslateOptions:
    tile_size: int = field(default=DEFAULT_TILE_SIZE, metadata={"flag": ("--tile",), "qgis": "TILE_SIZE"})
    dst_crs: str | None = field(default=None, metadata={"flag": ("--t-srs",), "qgis": "TARGET_CRS"})
    dst_res: float | None = field(default=None, metadata={"flag": ("--tr",), "qgis": None})
    def __post_init__(self):
        from .engine import tiling  # relative, heavy: never run by the plugin
def option_fields(cli_only=False):
    return list(dataclasses.fields(TranslateOptions))
'''


def test_backend_options_are_read_from_the_library_source_without_importing_it(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "sar2opt_geo").mkdir(parents=True)
    (checkout / "sar2opt_geo" / "options.py").write_text(_SYNTHETIC_OPTIONS)
    plugin_dir = checkout / "plugin" / "sar2opt_qgis"
    plugin_dir.mkdir(parents=True)
    library = options.backend_options(plugin_dir)
    assert (library.DEFAULT_TILE_SIZE, library.DEFAULT_OVERLAP) == (256, 96)
    assert options._library_names(library) == {"tile_size": "TILE_SIZE", "--tile": "TILE_SIZE", "dst_crs": "TARGET_CRS",
                                               "--t-srs": "TARGET_CRS"}
    assert library.__name__ == "sar2opt_qgis._backend_options"  # not imported as sar2opt_geo: its __init__ never runs
    assert options.backend_options(tmp_path / "a" / "b") is None  # neither wheel nor checkout: the plugin's fallbacks


def test_plugin_defaults_and_names_are_the_librarys(tmp_path):
    """With the library's options.py (in the bundled wheel) the plugin shows its defaults and maps
    its flags to the QGIS names it declares; without it, the plugin's own values (512 / 128)."""
    plugin = build_plugin_zip.build_folder(tmp_path)
    library = options.backend_options(plugin)
    if (ROOT / "sar2opt_geo" / "options.py").exists():
        assert library is not None
        defaults = {f.name: f.default for f in library.option_fields()}
        assert (options.TILE_SIZE_DEFAULT, options.OVERLAP_DEFAULT) == (defaults["tile_size"], defaults["overlap"])
        assert options.MAX_MEMORY_MB_DEFAULT == library.DEFAULT_MAX_MEMORY_MB and options.BACKENDS == library.BACKENDS
        declared = {f.name: f.metadata["qgis"] for f in library.option_fields() if f.metadata.get("qgis")}
        assert declared and all(options.BACKEND_NAMES[name] == qgis for name, qgis in declared.items())
    else:
        assert library is None and (options.TILE_SIZE_DEFAULT, options.OVERLAP_DEFAULT) == (None, None)


def test_pip_retry_warnings_become_one_calm_line(tmp_path):
    """Issue 24: pip's repeated "WARNING: Retrying (Retry(...)) ... NewConnectionError" lines for an
    unreachable index looked like failure in the setup log. One info line says what happens."""
    retry = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
             "broken by 'NewConnectionError(<HTTPSConnection object>: Failed to establish a new connection)': "
             "/simple/torch/ HTTPSConnectionPool(host='download.pytorch.org', port=443)")
    script = tmp_path / "fake_pip.py"
    script.write_text(f"for _ in range(4):\n    print({retry!r})\nprint('Successfully installed torch-2.13.0')\n")
    fb = Feedback()
    installer._Steps(fb).run([sys.executable, str(script)], "installing torch", (5.0, 40.0))
    assert fb.console == ["Successfully installed torch-2.13.0"]
    calm = [t for t in fb.info if "pip cannot reach" in t]
    assert len(calm) == 1 and "download.pytorch.org" in calm[0] and "not a failure" in calm[0]


def test_process_stream_tags_stdout_and_stderr_and_returns_the_exit_status():
    code = "import sys; print('one'); print('two', file=sys.stderr, flush=True); sys.exit(3)"
    with subprocess_stream.ProcessStream([sys.executable, "-c", code]) as stream:
        lines = sorted(stream.lines(lambda: False))
    assert lines == [("err", "two"), ("out", "one")] and not stream.cancelled and stream.wait() == 3
    with subprocess_stream.ProcessStream([sys.executable, "-c", code], merge_stderr=True) as stream:
        assert sorted(stream.lines(lambda: False)) == [("out", "one"), ("out", "two")]


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to a process group")
def test_process_stream_cancel_kills_a_process_that_ignores_sigterm_after_the_grace_period():
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('started', flush=True); "
            "time.sleep(30)")
    calls: list[str] = []
    t0 = time.perf_counter()
    with subprocess_stream.ProcessStream([sys.executable, "-c", code], grace_s=0.5) as stream:
        for _, line in stream.lines(lambda: bool(calls), on_cancel=lambda: calls.append("cancel")):
            calls.append(line)
    assert calls == ["started", "cancel"] and stream.cancelled
    assert stream.wait() == -9 and time.perf_counter() - t0 < 10
