"""Radiometric quantities and scales, typed.

Never mix sigma0/gamma0/beta0, nor power/dB/amplitude: every SAR array in this library
travels with a :class:`Quantity` and a :class:`Scale`. Readers return *linear power*
(intensity) sigma0 as float32 with NaN for nodata; conversions to dB happen here.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["Quantity", "Scale", "amplitude_to_power", "from_db", "to_db"]


class Quantity(enum.StrEnum):
    """What a band measures."""

    SIGMA0 = "sigma0"  # backscatter normalised to ground area
    GAMMA0 = "gamma0"  # normalised to the area perpendicular to the look direction
    BETA0 = "beta0"  # radar brightness, slant-range normalised
    DN = "dn"  # uncalibrated digital numbers
    REFLECTANCE = "reflectance"  # optical top/bottom-of-atmosphere reflectance (0..1)
    RADIANCE_DN = "optical_dn"  # optical digital numbers of unknown calibration
    GRAY = "gray"  # single-band panchromatic-like brightness


class Scale(enum.StrEnum):
    """How a quantity is expressed."""

    LINEAR = "linear"  # power / intensity
    DB = "db"  # 10 * log10(power)
    AMPLITUDE = "amplitude"  # sqrt(power)


def to_db(power: np.ndarray, floor: float = 1e-10) -> np.ndarray:
    """Linear power to dB (``10 log10``); values <= 0 become ``10 log10(floor)``; NaN stays NaN."""
    power = np.asarray(power, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        return (10.0 * np.log10(np.maximum(power, floor))).astype(np.float32)


def from_db(db: np.ndarray) -> np.ndarray:
    """dB to linear power (``10 ** (dB / 10)``); NaN stays NaN."""
    return np.power(10.0, np.asarray(db, dtype=np.float32) / 10.0).astype(np.float32)


def amplitude_to_power(amplitude: np.ndarray) -> np.ndarray:
    """Amplitude to linear power (square)."""
    a = np.asarray(amplitude, dtype=np.float32)
    return (a * a).astype(np.float32)
