"""Lee filter: reduces speckle in flat areas, keeps the mean and edges, NaN-aware, tileable."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from sar2opt_geo.preprocess.speckle import filtered_read, lee_filter


def _speckled(h=128, w=128, seed=0, enl=4.4):
    rng = np.random.default_rng(seed)
    truth = np.full((h, w), 0.05, dtype=np.float32)
    truth[:, w // 2 :] = 0.5  # a 10 dB edge in the middle
    return truth, (truth * rng.gamma(enl, 1 / enl, size=(h, w))).astype(np.float32)


def test_flat_areas_get_smoother_mean_is_kept():
    _truth, x = _speckled()
    y = lee_filter(x, 7)
    flat_in, flat_out = x[:, 8:50], y[:, 8:50]
    cv_in = flat_in.std() / flat_in.mean()
    cv_out = flat_out.std() / flat_out.mean()
    assert cv_out < 0.6 * cv_in
    assert flat_out.mean() == pytest.approx(flat_in.mean(), rel=0.03)
    # the edge survives: the two sides stay about 10x apart right next to it
    assert y[:, 66:70].mean() / y[:, 58:62].mean() > 6


def test_nan_stays_nan_and_does_not_spread():
    _, x = _speckled(64, 64)
    x[10:20, 10:20] = np.nan
    y = lee_filter(x, 5)
    assert np.isnan(y[10:20, 10:20]).all()
    assert np.isfinite(np.delete(y.ravel(), np.flatnonzero(np.isnan(x)))).all()


def test_window_with_context_equals_whole_raster():
    _, x = _speckled(90, 110, seed=3)
    whole = lee_filter(x, 7)
    for win in (Window(col_off=0, row_off=0, width=40, height=30), Window(col_off=37, row_off=41, width=73, height=49)):
        part = filtered_read(lambda w: x[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width],
                             win, 90, 110, 7)
        expect = whole[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]
        np.testing.assert_allclose(part, expect, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("size", [2, 4, 1])
def test_even_or_tiny_window_is_refused(size):
    with pytest.raises(ValueError, match="odd"):
        lee_filter(np.ones((8, 8), np.float32), size)
