"""Model input domain from the card: streaming scene percentile, dB clip, percentile, gray."""

from __future__ import annotations

import numpy as np
import pytest

from sar2opt_geo import normalize
from sar2opt_geo.errors import CancelledError, NoValidDataError
from sar2opt_geo.models.card import InputDomain
from sar2opt_geo.preprocess.domain import make_normaliser, scene_percentile


def _reader(a):
    return lambda w: a[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]


@pytest.mark.parametrize("q", [50.0, 99.0, 99.9])
def test_streaming_percentile_matches_numpy(q):
    rng = np.random.default_rng(1)
    a = (rng.gamma(4.4, 0.05 / 4.4, size=(700, 900)) * rng.lognormal(0, 1, size=(700, 900))).astype(np.float32)
    a[:100] = np.nan  # nodata
    a[100:110] = 0.0  # non-positive values are not valid pixels (as in sar2opt_geo.normalize.percentile_scale)
    value, n = scene_percentile(_reader(a), 700, 900, q, block=128)
    valid = a[np.isfinite(a) & (a > 0)]
    assert n == valid.size
    assert value == pytest.approx(float(normalize.percentile_scale(a, q)), rel=0.003)


def test_large_rasters_are_sampled_block_wise():
    rng = np.random.default_rng(2)
    a = rng.gamma(4.4, 1 / 4.4, size=(1024, 1024)).astype(np.float32)
    calls = []

    def read(w):
        calls.append(w)
        return _reader(a)(w)

    value, n = scene_percentile(read, 1024, 1024, 99, max_pixels=1024 * 1024 // 8, block=128)
    assert len(calls) == 8 and n == 8 * 128 * 128
    assert value == pytest.approx(np.percentile(a, 99), rel=0.03)


def test_all_nodata_and_cancel():
    a = np.full((50, 50), np.nan, np.float32)
    with pytest.raises(NoValidDataError):
        scene_percentile(_reader(a), 50, 50, 99)
    with pytest.raises(CancelledError):
        scene_percentile(_reader(a), 50, 50, 99, cancel=lambda: True)


def test_db_clip_normaliser_uses_decibels_and_keeps_nan():
    d = InputDomain("Sentinel-1", ("VV",), "sigma0", "db_clip", units="db", db_range=(-25.0, 0.0))
    norm = make_normaliser(d, ["VV"])
    power = np.array([[[1e-4, 10 ** -1.25, 1.0, 10.0, np.nan]]], np.float32)  # -40, -12.5, 0, +10 dB, nodata
    y = norm(power)
    assert y.shape == (1, 1, 5)
    np.testing.assert_allclose(y[0, 0, :4], [-1.0, 0.0, 1.0, 1.0], atol=1e-5)
    assert np.isnan(y[0, 0, 4])


def test_percentile_normaliser_divides_by_scene_percentile_and_quantises():
    rng = np.random.default_rng(3)
    a = rng.gamma(4.4, 0.1 / 4.4, size=(200, 300)).astype(np.float32)
    a[0, 0] = np.nan
    d = InputDomain("Sentinel-1", ("VH",), "sigma0", "percentile", percentile=99.0, quantize_levels=255)
    norm = make_normaliser(d, ["VH"], lambda b, w: _reader(a)(w), 200, 300)
    (p99,) = norm.scales
    assert p99 == pytest.approx(np.nanpercentile(a, 99), rel=0.003)
    y = norm(a[None])
    assert np.isnan(y[0, 0, 0])
    finite = y[np.isfinite(y)]
    assert finite.min() >= -1.0 and finite.max() == pytest.approx(1.0)
    unit = (finite + 1) / 2 * 255
    np.testing.assert_allclose(unit, np.round(unit), atol=1e-3)  # 255 levels
    assert np.mean(finite >= 1.0 - 1e-6) == pytest.approx(0.01, abs=0.003)  # about 1 % clipped


def test_gray_normaliser_each_band_by_its_own_percentile_then_weights():
    rng = np.random.default_rng(4)
    bands = {"red": rng.random((64, 64)).astype(np.float32) * 3000,
             "green": rng.random((64, 64)).astype(np.float32) * 100,
             "blue": rng.random((64, 64)).astype(np.float32)}
    d = InputDomain("optical", ("gray",), "gray", "percentile", percentile=99.0, gray_from=("red", "green", "blue"),
                    gray_weights=(0.5, 0.3, 0.2))
    norm = make_normaliser(d, ["red", "green", "blue"], lambda b, w: _reader(bands[b])(w), 64, 64, gray=True)
    x = np.stack([bands["red"], bands["green"], bands["blue"]])
    y = norm(x)
    assert y.shape == (1, 64, 64)
    units = [np.clip(x[i] / s, 0, 1) for i, s in enumerate(norm.scales)]
    expect = 0.5 * units[0] + 0.3 * units[1] + 0.2 * units[2]
    np.testing.assert_allclose((y[0] + 1) / 2, expect, atol=1e-5)
    assert "gray" in norm.describe()


def test_percentiles_are_cached_per_scene_key():
    from sar2opt_geo.preprocess.domain import clear_statistics_cache

    a = np.random.default_rng(5).gamma(4.4, 0.1 / 4.4, size=(100, 100)).astype(np.float32)
    reads = []

    def read(band, w):
        reads.append(w)
        return _reader(a)(w)

    d = InputDomain("Sentinel-1", ("VH",), "sigma0", "percentile", percentile=99.0)
    clear_statistics_cache()
    first = make_normaliser(d, ["VH"], read, 100, 100, cache_key=("scene-a", 1))
    n = len(reads)
    again = make_normaliser(d, ["VH"], read, 100, 100, cache_key=("scene-a", 1))
    assert again.scales == first.scales and len(reads) == n  # nothing read again
    make_normaliser(d, ["VH"], read, 100, 100, cache_key=("scene-a", 2))  # another key: computed
    assert len(reads) == 2 * n
    clear_statistics_cache()
