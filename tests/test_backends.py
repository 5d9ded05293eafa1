"""engine.backends: torch / ONNX Runtime / OpenVINO runners, int8 opt-in, option errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sar2opt_geo.engine import TilingConfig, make_runner, run_tiled
from sar2opt_geo.engine.backends import _SESSIONS, model_digest
from sar2opt_geo.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiled(model, image, **kwargs) -> tuple[np.ndarray, object]:
    _, h, w = image.shape
    out = np.zeros((3, h, w), np.float32)

    def write(win, a):
        out[:, win.row_off : win.row_off + win.height] = a

    stats = run_tiled(model, lambda win: image[:, win.row_off : win.row_off + win.height], h, w, write,
                      TilingConfig(tile_size=128, overlap=96, batch_size=2), **kwargs)
    return out, stats


def test_onnxruntime_backend_equals_torch_and_leaves_no_file(tiny_generator, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = tiny_generator()
    image = np.random.default_rng(0).uniform(-1, 1, (1, 150, 170)).astype(np.float32)
    want, _ = tiled(model, image, optimise=False)
    got, stats = tiled(model, image, backend="onnxruntime")
    assert stats.backend == "onnxruntime FastUNet"
    assert np.abs(got - want).max() <= 1e-5
    assert list(tmp_path.iterdir()) == []  # exported in memory
    # the session is cached per model content
    digest = model_digest(make_runner(model, backend="onnxruntime").module)
    assert any(k[0] == digest for k in _SESSIONS)


def test_onnxruntime_runs_models_it_does_not_rewrite() -> None:
    from sar2opt_geo.models.reference import ReferenceResnetGenerator

    net = ReferenceResnetGenerator(1, 3, n_blocks=1, ngf=4).eval()
    x = np.random.default_rng(1).uniform(-1, 1, (2, 1, 32, 48)).astype(np.float32)
    r = make_runner(net, backend="onnxruntime")
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    assert r.name == "onnxruntime ReferenceResnetGenerator"
    assert np.abs(r(x) - want).max() <= 1e-5


def test_int8_is_opt_in_close_but_not_exact(tiny_generator) -> None:
    model = tiny_generator(width=0.25)
    image = np.tanh(np.cumsum(np.random.default_rng(2).normal(size=(1, 128, 128)), axis=2) / 6).astype(np.float32)
    want, _ = tiled(model, image, optimise=False)
    got, stats = tiled(model, image, backend="onnxruntime", quantize="int8")
    assert stats.backend == "onnxruntime FastUNet int8"
    err = np.abs(got - want)
    assert err.max() > 0 and err.mean() < 0.05  # quantised: close on average, not bit-exact


def test_backend_option_errors(tiny_generator) -> None:
    model = tiny_generator()
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; choose one of torch, onnxruntime, openvino"):
        make_runner(model, backend="tensorrt")
    with pytest.raises(ConfigError, match="quantize='int8' needs backend='onnxruntime'"):
        make_runner(model, quantize="int8")
    with pytest.raises(ConfigError, match="stochastic mode .* needs backend='torch'"):
        tiled(model, np.zeros((1, 40, 40), np.float32), backend="onnxruntime", stochastic=True)
    with pytest.raises(ConfigError, match="unknown quantize 'int4'"):
        make_runner(model, backend="onnxruntime", quantize="int4")


def test_openvino_missing_says_how_to_install(tiny_generator, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed: import raises ImportError
    monkeypatch.setattr("sar2opt_geo.engine.backends._SESSIONS", {})  # no compiled session from another test
    r = make_runner(tiny_generator(), backend="openvino")
    with pytest.raises(ConfigError, match="pip install openvino"):
        r(np.zeros((1, 1, 32, 32), np.float32))


def test_openvino_equals_torch(tiny_generator) -> None:
    model = tiny_generator()
    x = np.random.default_rng(3).uniform(-1, 1, (1, 1, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(make_runner(model, backend="openvino")(x) - want).max() <= 1e-4


def test_torch_runner_on_cuda_is_only_built_when_a_gpu_is_there(tiny_generator) -> None:
    if torch.cuda.is_available():
        r = make_runner(tiny_generator(), device="cuda", autocast=True)
        y = r(np.zeros((2, 1, 64, 64), np.float32))
        assert y.dtype == np.float32 and y.shape == (2, 3, 64, 64)
    else:
        with pytest.raises(ConfigError, match="autocast is only supported on CUDA"):
            make_runner(tiny_generator(), device="cpu", autocast=True)
