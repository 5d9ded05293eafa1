"""Band choice from the card, and sensor/band mismatch warnings (strict: refusal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sar2opt_geo.errors import BandError
from sar2opt_geo.models.card import InputDomain, ModelCard
from sar2opt_geo.preprocess.bands import plan_bands
from sar2opt_geo.radiometry import Quantity
from sar2opt_geo.sensors.base import BandInfo, Scene


class StubScene(Scene):
    def read(self, band, window=None):  # pragma: no cover - never read here
        raise AssertionError


def scene(bands, sensor="Sentinel-1", freq="C", quantity=Quantity.SIGMA0):
    return StubScene(Path("/data/scene.tif"), sensor, "P", 10, 10, {b: BandInfo(b, quantity) for b in bands},
                     frequency_band=freq)


def sar_card(bands=("VH",), freq="C"):
    return ModelCard("s1vh", "unet_article", {"in_channels": len(bands)}, InputDomain(
        "Sentinel-1", tuple(bands), "sigma0", "percentile", percentile=99.0, frequency_band=freq))


GRAY = ModelCard("gray", "unet_article", {"in_channels": 1}, InputDomain(
    "optical", ("gray",), "gray", "percentile", percentile=99.0, gray_from=("red", "green", "blue"),
    gray_weights=(0.299, 0.587, 0.114)))


def test_exact_match_has_no_warning():
    plan = plan_bands(scene(["VV", "VH"]), sar_card())
    assert plan.bands == ("VH",) and plan.warnings == ()


def test_single_pol_scene_feeds_its_band_with_one_warning_naming_both():
    plan = plan_bands(scene(["HH"]), sar_card())
    assert plan.bands == ("HH",)
    assert len(plan.warnings) == 1 and "VH" in plan.warnings[0] and "HH" in plan.warnings[0]


def test_dual_pol_without_match_takes_same_polarisation_kind():
    assert plan_bands(scene(["HH", "HV"]), sar_card(("VH",))).bands == ("HV",)
    assert plan_bands(scene(["HH", "HV"]), sar_card(("VV",))).bands == ("HH",)


def test_l_band_scene_with_c_band_model_warns_and_strict_refuses():
    s = scene(["HH", "HV"], sensor="ALOS-2 PALSAR-2", freq="L")
    plan = plan_bands(s, sar_card())
    assert plan.bands == ("HV",)
    assert any("L-band" in w and "C-band" in w for w in plan.warnings)
    with pytest.raises(BandError, match="strict"):
        plan_bands(s, sar_card(), strict=True)


def test_explicit_bands_win_and_are_checked():
    assert plan_bands(scene(["VV", "VH"]), sar_card(), ["VV"]).bands == ("VV",)
    with pytest.raises(BandError, match="no band 'HH'"):
        plan_bands(scene(["VV", "VH"]), sar_card(), ["HH"])
    with pytest.raises(BandError, match="takes 1 band"):
        plan_bands(scene(["VV", "VH"]), sar_card(), ["VV", "VH"])


def test_ambiguous_dual_pol_asks_for_bands():
    with pytest.raises(BandError, match="--bands"):
        plan_bands(scene(["HH", "VV"]), sar_card(("VH",)))


def test_sar_model_on_optical_scene_is_refused():
    opt = scene(["red", "green", "blue"], sensor="Landsat-8", freq=None, quantity=Quantity.REFLECTANCE)
    with pytest.raises(BandError, match="gray model"):
        plan_bands(opt, sar_card())


def test_gamma0_scene_for_sigma0_model_warns():
    plan = plan_bands(scene(["VH"], quantity=Quantity.GAMMA0), sar_card())
    assert plan.bands == ("VH",) and any("gamma0" in w for w in plan.warnings)


def test_gray_model_combines_rgb_or_uses_single_band():
    opt = scene(["blue", "green", "red"], sensor="Landsat-8", freq=None, quantity=Quantity.REFLECTANCE)
    plan = plan_bands(opt, GRAY)
    assert plan.bands == ("red", "green", "blue") and plan.gray and plan.warnings == ()
    one = plan_bands(scene(["VH"]), GRAY)
    assert one.bands == ("VH",) and not one.gray and len(one.warnings) == 1
    forced = plan_bands(opt, GRAY, ["green"])
    assert forced.bands == ("green",) and not forced.gray
    with pytest.raises(BandError):
        plan_bands(scene(["b1", "b2"], sensor="optical", freq=None, quantity=Quantity.RADIANCE_DN), GRAY)


def test_unknown_radar_band_is_not_a_mismatch():
    plan = plan_bands(scene(["VH"], sensor="SAR", freq="unknown"), sar_card())
    assert plan.bands == ("VH",) and plan.warnings == ()


def test_gray_model_fed_a_requested_sar_band_warns_and_strict_refuses():
    """Regression: the gray->RGB model on one chosen SAR band (the article's experiment) warned nothing."""
    sc = scene(["HH", "HV"], sensor="ALOS-2 PALSAR-2", freq="L")
    plan = plan_bands(sc, GRAY, ["HV"])
    assert plan.bands == ("HV",) and not plan.gray
    assert any("SAR band HV" in w for w in plan.warnings)
    with pytest.raises(BandError):
        plan_bands(sc, GRAY, ["HV"], strict=True)
