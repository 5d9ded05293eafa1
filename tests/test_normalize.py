"""Radiometric normalisation, defined once (sar2opt_geo.normalize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar2opt_geo import normalize
from sar2opt_geo.errors import ConfigError


def test_db_clip_maps_sen1_2_range_to_unit_and_model():
    db = np.array([-40.0, -25.0, -12.5, 0.0, 5.0, np.nan], np.float32)
    u = normalize.db_clip_to_unit(db)
    np.testing.assert_allclose(u[:5], [0, 0, 0.5, 1, 1])
    assert np.isnan(u[5])
    np.testing.assert_allclose(normalize.unit_to_model(u[:5]), [-1, -1, 0, 1, 1])
    # 8-bit SEN1-2 PNG value v encodes -25 + 25 v / 255 dB: both routes agree
    v = np.arange(256).astype(np.uint8)
    vf = v.astype(np.float64)
    np.testing.assert_allclose(normalize.uint8_to_unit(v), normalize.db_clip_to_unit(-25 + 25 * vf / 255.0), atol=1e-6)


def test_percentile_rule_reproduces_8bit_la_scaling():
    rng = np.random.default_rng(0)
    power = rng.gamma(1.0, 0.05, size=(64, 64)).astype(np.float32)
    p99 = np.percentile(power, 99)
    u = normalize.percentile_to_unit(power, quantize_levels=255)
    assert u.max() == 1.0 and u.min() >= 0
    expected = np.round(np.clip(power / p99, 0, 1) * 255) / 255
    np.testing.assert_allclose(u, expected, atol=1e-6)
    # per-band scales for a (C, H, W) array
    stack = np.stack([power, 10 * power])
    np.testing.assert_allclose(normalize.percentile_scale(stack, per_band=True), [p99, 10 * p99], rtol=1e-5)


def test_reflectance_and_gray():
    np.testing.assert_allclose(normalize.reflectance_to_unit(np.array([0, 1500, 3000, 9000])), [0, 0.5, 1, 1])
    one = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(normalize.gray_from_rgb(one, one, one), one, atol=1e-6)  # weights sum to 1
    np.testing.assert_allclose(normalize.gray_from_rgb(one, 0 * one, 0 * one), 0.299 * one, atol=1e-6)
    y = torch.tensor([-1.5, -1.0, 0.0, 1.0])
    assert torch.equal(normalize.model_to_unit(y), torch.tensor([0.0, 0.0, 0.5, 1.0]))



def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="hi > lo"):
        normalize.db_clip_to_unit(np.zeros(3), 0.0, 0.0)
    with pytest.raises(ConfigError, match="3 weights"):
        normalize.gray_from_rgb(np.zeros(2), np.zeros(2), np.zeros(2), (0.5, 0.5))


def test_normalize_imports_neither_torch_nor_rasterio():
    import subprocess
    import sys

    code = "import sys, sar2opt_geo.normalize; print('torch' in sys.modules, 'rasterio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
