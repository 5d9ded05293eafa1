"""Issue 19: every CLI failure is one line on stderr naming the file or value and the fix, a non-zero
exit status, nothing at the output path and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sar2opt_geo.cli.main import main
from sar2opt_geo.errors import ConfigError, OptionTypeError
from sar2opt_geo.options import SEED_MAX, TranslateOptions, check_seed
from sar2opt_geo.samples.synthetic import write_sample_scene

HUGE_SEED = "99999999999999999999"  # > 2**64: torch.manual_seed raised "Overflow when unpacking long long"


pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures the root logger


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_sample_scene(tmp_path_factory.mktemp("issue19") / "sample.tif", size=64)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    return errors[0]


# -- 1. a backend or export-onnx without its packages -------------------------------------------------


@pytest.mark.parametrize(
    ("hidden", "backend", "needle"),
    [
        ("onnxruntime", "onnxruntime", 'pip install "sar2opt-geo[onnx]" (or: pip install onnxruntime)'),
        ("onnx", "onnxruntime", 'pip install "sar2opt-geo[onnx]" (or: pip install onnx)'),
        ("openvino", "openvino", 'pip install "sar2opt-geo[openvino]" (or: pip install openvino)'),
        ("onnx", "openvino", "pip install onnx;"),  # the openvino extra has no onnx: the plain line only
    ],
)
def test_backend_without_its_package_is_one_line_bug(scene, tmp_path, capsys, monkeypatch, hidden, backend, needle):
    """Regression: --backend onnxruntime / openvino without onnx, onnxruntime or openvino ended in a traceback."""
    monkeypatch.setitem(sys.modules, hidden, None)  # as if it were not installed: import raises ImportError
    out = tmp_path / "res" / "rgb.tif"
    code = main(["translate", str(scene), str(out), "--backend", backend, "--progress", "none", "--device", "cpu"])
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("sar2opt: error: ") and f"the {hidden} package" in line and needle in line
    assert not out.parent.exists()


def test_backend_runner_without_its_package_says_how_to_install_bug(tiny_generator, monkeypatch):
    """Regression: the library's onnxruntime runner raised ModuleNotFoundError (or torch's OnnxExporterError)."""
    from sar2opt_geo.engine.backends import make_runner

    monkeypatch.setattr("sar2opt_geo.engine.backends._SESSIONS", {})  # no session cached by another test
    for hidden in ("onnxruntime", "onnx"):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, hidden, None)
            r = make_runner(tiny_generator(), backend="onnxruntime")
            with pytest.raises(ConfigError, match=rf"needs the {hidden} package.*pip install \"sar2opt-geo\[onnx\]\""):
                r(np.zeros((1, 1, 32, 32), np.float32))


def test_export_onnx_without_onnx_is_one_line_bug(tmp_path, capsys, monkeypatch):
    """Regression: sar2opt export-onnx without the onnx package ended in ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "models" / "sar.onnx"
    assert main(["export-onnx", "sar", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "the onnx package" in line and 'pip install "sar2opt-geo[onnx]" (or: pip install onnx)' in line
    assert not out.parent.exists()


# -- 2. seeds torch and numpy cannot take ----------------------------------------------------------------


def test_seed_out_of_range_is_a_config_error_bug():
    """Regression: TranslateOptions(seed=10**20) was accepted and torch raised an overflow mid-run."""
    assert TranslateOptions(seed=SEED_MAX).seed == SEED_MAX == 2**63 - 1
    assert check_seed(0) == 0 and check_seed(np.int64(7)) == 7
    for bad in (2**63, int(HUGE_SEED), -1):
        with pytest.raises(ConfigError, match=rf"--seed {bad} is out of range; give a whole number from 0 to {SEED_MAX}"):
            TranslateOptions(seed=bad)
    with pytest.raises(ConfigError, match="with 3 runs it uses seeds"):
        TranslateOptions(seed=SEED_MAX - 1, samples=3)  # seeds seed .. seed + 2 must all fit
    with pytest.raises(OptionTypeError, match="--seed 1.5 is not a whole number"):
        TranslateOptions(seed=1.5)


def test_translate_huge_seed_is_one_line_bug(scene, tmp_path, capsys):
    """Regression: sar2opt translate --stochastic --seed 99999999999999999999 ended in a traceback."""
    out = tmp_path / "res" / "rgb.tif"
    code = main(["translate", str(scene), str(out), "--stochastic", "--seed", HUGE_SEED, "--progress", "none"])
    assert code != 0
    line = _one_error_line(capsys.readouterr().err)
    assert f"--seed {HUGE_SEED} is out of range" in line and str(SEED_MAX) in line
    assert not out.parent.exists()


@pytest.mark.parametrize("command", ["train", "demo", "experiment"])
def test_other_commands_check_the_seed_bug(tmp_path, capsys, command):
    """Regression: train --seed 10**20 reached torch.manual_seed; demo and experiment took it as well."""
    out = tmp_path / "out"
    argv = {
        "train": ["train", str(tmp_path / "data"), str(out)],
        "demo": ["demo", "--synthetic", "-o", str(out / "demo.tif")],
        "experiment": ["experiment", str(out), "--synthetic-palsar2"],
    }[command]
    assert main([*argv, "--seed", HUGE_SEED]) == 1
    captured = capsys.readouterr()
    assert f"--seed {HUGE_SEED} is out of range" in _one_error_line(captured.err) and captured.out == ""
    assert not out.exists()


# -- 3. a reader of stdout that goes away ----------------------------------------------------------------


def _run_with_closed_stdout(*argv: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the child writes: every write to stdout fails with EPIPE
    try:
        return subprocess.run([sys.executable, "-m", "sar2opt_geo.cli.main", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("fmt", [["--json"], []])
def test_closed_stdout_exits_quietly_bug(scene, fmt):
    """Regression: `sar2opt info X | true` printed a BrokenPipeError traceback."""
    r = _run_with_closed_stdout("info", str(scene), *fmt)
    assert r.returncode == 141  # 128 + SIGPIPE, as a shell reports a program killed by it
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and "Exception ignored" not in r.stderr


# -- 4. demo's errors go to stderr -----------------------------------------------------------------------


@pytest.mark.parametrize("synthetic", [["--synthetic"], []])
def test_demo_size_error_goes_to_stderr_bug(tmp_path, capsys, synthetic):
    """Regression: sar2opt demo --size 0 printed its error on stdout (and exited 2 with nothing on stderr)."""
    out = tmp_path / "demo" / "demo_rgb.tif"
    assert main(["demo", *synthetic, "--size", "0", "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    line = _one_error_line(captured.err)
    assert line.startswith("sar2opt: error: --size 0 is too small; give at least 16 pixels")
    assert not out.parent.exists()


def test_failed_demo_leaves_nothing_behind_bug(tmp_path, capsys):
    """Regression companion: a demo that failed after writing its synthetic scene left it (and its folder)."""
    bad_model = tmp_path / "broken.safetensors"
    bad_model.write_bytes(b"not a checkpoint")
    out = tmp_path / "demo" / "demo_rgb.tif"
    argv = ["demo", "--synthetic", "--size", "64", "--model", str(bad_model), "-o", str(out), "--progress", "none"]
    assert main(argv) == 1
    assert str(bad_model) in _one_error_line(capsys.readouterr().err)
    assert not out.parent.exists()


# -- 5. a failed experiment leaves no folders behind -----------------------------------------------------


@pytest.fixture
def not_a_raster(tmp_path) -> Path:
    path = tmp_path / "inputs" / "broken.tif"
    path.parent.mkdir()
    path.write_text("not a GeoTIFF\n")
    return path


def test_failed_experiment_leaves_no_empty_folders_bug(tmp_path, capsys, not_a_raster):
    """Regression: a failed sar2opt experiment left OUT/composites and OUT/figures (and OUT/data) behind."""
    out = tmp_path / "runs" / "exp"
    argv = ["experiment", str(out), "--scene", str(not_a_raster), "--synthetic-palsar2", "--progress", "none"]
    assert main(argv) == 1  # fails on the broken scene after OUT/composites, figures and data were written
    assert str(not_a_raster) in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()  # OUT and the parent the run created are gone too


def test_failed_experiment_keeps_what_was_there_bug(tmp_path, capsys, not_a_raster):
    """Regression companion: cleaning up after a failure touches nothing that existed before the run."""
    out = tmp_path / "exp"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"previous run")
    (out / "notes.txt").write_text("mine")
    assert main(["experiment", str(out), "--scene", str(not_a_raster), "--progress", "none"]) == 1
    capsys.readouterr()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["figures", "figures/old.png", "notes.txt"]


def test_experiment_missing_scene_fails_before_writing_bug(tmp_path):
    """Regression: a missing --scene was found only after the output folders were made and models loaded."""
    from sar2opt_geo.errors import InputError
    from sar2opt_geo.experiment.run import ExperimentConfig, SceneSpec, run_experiment

    missing = tmp_path / "nope.tif"
    with pytest.raises(InputError, match=r"nope.tif: no such file or folder \(--scene\)"):
        run_experiment(ExperimentConfig(out_dir=tmp_path / "exp", scenes=(SceneSpec(missing, "nope"),)))
    assert not (tmp_path / "exp").exists()
