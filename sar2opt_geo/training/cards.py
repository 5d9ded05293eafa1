"""Model-card templates for the data a generator is trained on (input domain, output scaling)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from ..models.card import (
    PERCENTILE_SCALING,
    PNG_SCALING,
    REFLECTANCE_SCALING,
    InputDomain,
    ModelCard,
    Normalisation,
    OutputSpec,
)
from ..normalize import GRAY_WEIGHTS, SEN1_2_DB_RANGE
from ..radiometry import Quantity, Scale

__all__ = ["PERCENTILE_SCALING", "PNG_SCALING", "REFLECTANCE_SCALING", "card_for_dataset"]



def card_for_dataset(
    layout: str,
    mode: str = "sar",
    sar_bands: Sequence[str] = ("VH",),
    name: str = "generator",
    description: str = "",
) -> ModelCard:
    """A template card whose input domain and output scaling match how ``layout`` data is normalised.

    Architecture, training and metrics fields are filled in by the trainer.
    """
    if mode == "colorize":
        inp = InputDomain(sensor="optical", bands=("gray",), quantity=Quantity.GRAY,
                          normalisation=Normalisation.PERCENTILE, units=Scale.LINEAR, percentile=99.0,
                          quantize_levels=255, pixel_spacing_m=10.0,
                          gray_from=("red", "green", "blue"), gray_weights=GRAY_WEIGHTS)
        scaling = REFLECTANCE_SCALING if layout in ("sen12ms-cr", "bigearthnet") else PERCENTILE_SCALING
        sensor = "Sentinel-2" if layout != "images" else "optical"
    elif layout == "la":
        inp = InputDomain(sensor="Sentinel-1", bands=tuple(sar_bands), quantity=Quantity.SIGMA0,
                          normalisation=Normalisation.PERCENTILE, units=Scale.LINEAR, percentile=99.0,
                          quantize_levels=255, pixel_spacing_m=10.0, frequency_band="C")
        scaling, sensor = PERCENTILE_SCALING, "Sentinel-2"
    elif layout in ("sen1-2", "article"):
        inp = InputDomain(sensor="Sentinel-1", bands=("VV",), quantity=Quantity.SIGMA0,
                          normalisation=Normalisation.DB_CLIP, units=Scale.DB, db_range=SEN1_2_DB_RANGE,
                          quantize_levels=255, pixel_spacing_m=10.0, frequency_band="C")
        scaling, sensor = PNG_SCALING, "Sentinel-2"
    elif layout in ("sen12ms-cr", "bigearthnet"):
        inp = InputDomain(sensor="Sentinel-1", bands=tuple(b.upper() for b in sar_bands), quantity=Quantity.SIGMA0,
                          normalisation=Normalisation.DB_CLIP, units=Scale.DB, db_range=SEN1_2_DB_RANGE,
                          pixel_spacing_m=10.0, frequency_band="C")
        scaling, sensor = REFLECTANCE_SCALING, "Sentinel-2"
    else:
        raise ConfigError(f"no card template for layout {layout!r} in mode {mode!r}")
    return ModelCard(name=name, architecture="unet_article", architecture_args={}, input=inp,
                     output=OutputSpec(bands=("red", "green", "blue"), scaling=scaling, sensor=sensor),
                     description=description)
