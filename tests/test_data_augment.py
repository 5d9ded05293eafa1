"""Random gain + speckle on the SAR side (sar2opt_geo.data.augment): determinism per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest

from sar2opt_geo.data import PairDataset, SpeckleAugment, find_pairs
from sar2opt_geo.models import InputDomain


def test_same_stream_same_result_and_only_the_stream_matters():
    aug = SpeckleAugment(probability=1.0)
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32)).astype(np.float32)
    a = aug(x, np.random.default_rng([0, 3, 5]))
    b = aug(x.copy(), np.random.default_rng([0, 3, 5]))
    c = aug(x, np.random.default_rng([0, 4, 5]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # quantised like the 8-bit training data


def test_gain_only_scales_linear_power_and_speckle_keeps_the_mean():
    x = np.full((1, 256, 256), 0.25, np.float32)
    gain_only = SpeckleAugment(probability=0.0, gain_db=3.0, quantize_levels=None)
    y = gain_only(x, np.random.default_rng(1))
    ratio_db = 10 * np.log10(y / x)
    assert np.ptp(ratio_db) < 1e-4 and abs(float(ratio_db.mean())) <= 3.0 + 1e-4
    speckle = SpeckleAugment(probability=1.0, gain_db=0.0, looks=(4.0, 4.0), quantize_levels=None)
    z = speckle(x, np.random.default_rng(2))
    assert float(z.mean()) == pytest.approx(0.25, rel=0.02)  # unit-mean gamma noise (0.25 x noise stays < 1)
    assert float(z.std() / z.mean()) == pytest.approx(0.5, rel=0.05)  # 4 looks: std/mean = 1/sqrt(4)


def test_db_domain_adds_decibels():
    inp = InputDomain(sensor="Sentinel-1", bands=("VV",), quantity="sigma0", normalisation="db_clip", units="db",
                      db_range=(-25.0, 0.0))
    aug = SpeckleAugment.for_input(inp, probability=0.0, gain_db=2.0)
    assert aug.domain == "db" and aug.db_range == (-25.0, 0.0)
    x = np.full((1, 8, 8), 0.5, np.float32)  # -12.5 dB
    rng = np.random.default_rng(3)
    g = float(np.random.default_rng(3).uniform(-2.0, 2.0))
    assert np.allclose(aug(x, rng), 0.5 + g / 25.0, atol=1e-6)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="probability"):
        SpeckleAugment(probability=1.5)
    with pytest.raises(ValueError, match="looks"):
        SpeckleAugment(looks=(10.0, 3.0))
    with pytest.raises(ValueError, match="db_range"):
        SpeckleAugment(domain="db")


def test_dataset_draws_from_the_per_sample_stream(la_pairs):
    pairs = find_pairs(la_pairs)[:2]
    aug = SpeckleAugment(probability=1.0)
    kw = {"crop_size": 64, "crops_per_image": 2, "augment": True, "seed": 5}
    plain, a, b = PairDataset(pairs, **kw), PairDataset(pairs, speckle=aug, **kw), PairDataset(pairs, speckle=aug, **kw)
    for ds in (plain, a, b):
        ds.set_epoch(2)
    s_plain, s_a, s_b = plain[3], a[3], b[3]
    assert np.array_equal(s_a["condition"], s_b["condition"])  # same (seed, epoch, index): same sample
    assert np.array_equal(s_a["target"], s_plain["target"])  # same crop and flips; the optical side is untouched
    assert not np.array_equal(s_a["condition"], s_plain["condition"])
    a.set_epoch(3)
    assert not np.array_equal(a[3]["condition"], s_b["condition"])  # a new epoch draws anew
    # read order does not matter (workers, DDP ranks): index 3 alone equals index 3 after others
    c = PairDataset(pairs, speckle=aug, **kw)
    c.set_epoch(2)
    _ = c[0], c[1]
    assert np.array_equal(c[3]["condition"], s_a["condition"])


def test_validation_and_colourisation_samples_are_never_augmented(la_pairs):
    pairs = find_pairs(la_pairs)[:1]
    aug = SpeckleAugment(probability=1.0)
    val, val_aug = PairDataset(pairs, 64, random_crops=False), PairDataset(pairs, 64, random_crops=False, speckle=aug)
    assert np.array_equal(val[0]["condition"], val_aug[0]["condition"])
    gray = find_pairs(la_pairs, mode="colorize")[:1]
    g, g_aug = PairDataset(gray, 64, seed=1), PairDataset(gray, 64, seed=1, speckle=aug)
    assert np.array_equal(g[0]["condition"], g_aug[0]["condition"])
