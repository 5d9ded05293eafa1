"""Radiometric normalisation, defined once: raw values -> [0, 1] ("unit") -> [-1, 1] ("model").

The generator sees values in [-1, 1] and emits ``tanh`` values in [-1, 1]. Every path
into that domain goes through two steps, so that training (``sar2opt_geo.data``) and
inference (``sar2opt_geo.preprocess``) share the exact same arithmetic. This module
needs numpy only (no torch, no rasterio):

1. raw -> unit [0, 1], by one of the rules below (the model card's ``normalisation``);
2. :func:`unit_to_model`: ``x * 2 - 1``; back with :func:`model_to_unit`: ``(y + 1) / 2``.

Rules (all float32, NaN in -> NaN out):

* :func:`db_clip_to_unit` ("db_clip"): SAR backscatter in **dB**, clipped to ``(lo, hi)``
  and scaled linearly. The SEN1-2 8-bit PNGs store sigma0 clipped to (-25, 0) dB as 0..255,
  so a model trained on them has ``db_range=(-25, 0)`` (:data:`SEN1_2_DB_RANGE`).
* :func:`percentile_to_unit` ("percentile"): **linear** values (sigma0 power, reflectance
  or DN) divided by the scene's p-th percentile over valid pixels, clipped to [0, 1], then
  optionally quantised (:func:`quantize_unit`, 255 levels for 8-bit training data). The
  Los Angeles pairs are exactly this with p = 99 and 255 levels, stored as uint8, so
  :func:`uint8_to_unit` (``x / 255``) recovers them.
* :func:`reflectance_to_unit`: Sentinel-2 reflectance stored as DN x 10000, clipped to
  0..3000 (reflectance 0..0.3) and scaled to [0, 1] (:data:`OPTICAL_DN_RANGE`).
* :func:`gray_from_rgb`: a weighted sum of unit-scaled bands (ITU-R BT.601 luma weights
  by default), the input of the colourisation model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from .errors import ConfigError

__all__ = [
    "DEFAULT_NODATA_FILL",
    "GRAY_WEIGHTS",
    "OPTICAL_DN_RANGE",
    "OPTICAL_DN_SCALE",
    "SEN1_2_DB_RANGE",
    "db_clip_to_unit",
    "gray_from_rgb",
    "model_to_unit",
    "percentile_scale",
    "percentile_to_unit",
    "quantize_unit",
    "reflectance_to_unit",
    "uint8_to_unit",
    "unit_to_model",
]

#: dB range of the SEN1-2 8-bit SAR PNGs (0 -> -25 dB, 255 -> 0 dB).
SEN1_2_DB_RANGE: tuple[float, float] = (-25.0, 0.0)
#: Sentinel-2 DN range (reflectance x 10000) mapped to [0, 1]: reflectance 0 .. 0.3.
OPTICAL_DN_RANGE: tuple[float, float] = (0.0, 3000.0)
#: Sentinel-2 L1C/L2A scale: DN = reflectance x 10000.
OPTICAL_DN_SCALE: float = 10000.0
#: Model-domain value the generator sees where its input is nodata (the centre of [-1, 1]); the
#: card's ``input.nodata_fill`` default, used by training datasets and the inference engine alike.
DEFAULT_NODATA_FILL: float = 0.0
#: ITU-R BT.601 luma weights for (red, green, blue).
GRAY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def db_clip_to_unit(db: np.ndarray, lo: float = SEN1_2_DB_RANGE[0], hi: float = SEN1_2_DB_RANGE[1]) -> np.ndarray:
    """Backscatter in dB -> [0, 1]: clip to ``(lo, hi)`` dB, then ``(db - lo) / (hi - lo)``. NaN stays NaN."""
    if not hi > lo:
        raise ConfigError(f"db range must have hi > lo, got ({lo}, {hi})")
    db = _f32(db)
    return ((np.clip(db, lo, hi) - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)


@overload
def percentile_scale(x: np.ndarray, percentile: float = ..., per_band: Literal[False] = ...) -> np.float32: ...
@overload
def percentile_scale(x: np.ndarray, percentile: float = ..., *, per_band: Literal[True]) -> np.ndarray: ...
@overload
def percentile_scale(x: np.ndarray, percentile: float, per_band: Literal[True]) -> np.ndarray: ...
@overload
def percentile_scale(x: np.ndarray, percentile: float = ..., per_band: bool = ...) -> np.ndarray | np.float32: ...
def percentile_scale(x: np.ndarray, percentile: float = 99.0, per_band: bool = False) -> np.ndarray | np.float32:
    """The ``percentile``-th percentile of the finite, positive values of ``x``.

    With ``per_band=True`` ``x`` is ``(C, ...)`` and one value per band is returned (an array), else one
    ``np.float32``.
    Non-positive values are left out (nodata or padding in linear power and DN data); a
    band without any valid value gets scale 1.0 so that division stays defined.
    """
    x = _f32(x)
    if per_band:
        return np.array([percentile_scale(b, percentile) for b in x], dtype=np.float32)
    v = x[np.isfinite(x) & (x > 0)]
    return np.float32(np.percentile(v, percentile) if v.size else 1.0)


def quantize_unit(x01: np.ndarray, levels: int | None) -> np.ndarray:
    """Round unit values to ``levels`` steps (``round(x * levels) / levels``), as 8-bit storage does; None: unchanged."""
    x01 = _f32(x01)
    if not levels:
        return x01
    return (np.round(x01 * levels) / np.float32(levels)).astype(np.float32)


def percentile_to_unit(
    x: np.ndarray,
    scale: float | np.floating | np.ndarray | None = None,
    percentile: float = 99.0,
    quantize_levels: int | None = None,
) -> np.ndarray:
    """Linear values -> [0, 1]: ``clip(x / scale, 0, 1)``, optionally quantised.

    ``scale`` is the scene's ``percentile``-th percentile (computed here over the whole
    array when None; pass it in when working window by window). For a ``(C, H, W)``
    array ``scale`` may hold one value per band.
    """
    x = _f32(x)
    if scale is None:
        scale = percentile_scale(x, percentile)
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim == 1:
        scale = scale.reshape((-1,) + (1,) * (x.ndim - 1))
    return quantize_unit(np.clip(x / scale, 0.0, 1.0), quantize_levels)


def uint8_to_unit(x: np.ndarray) -> np.ndarray:
    """8-bit values (0..255) -> [0, 1]: ``x / 255``."""
    return (_f32(x) / np.float32(255.0)).astype(np.float32)


def reflectance_to_unit(dn: np.ndarray, lo: float = OPTICAL_DN_RANGE[0], hi: float = OPTICAL_DN_RANGE[1]) -> np.ndarray:
    """Sentinel-2 DN (reflectance x 10000) -> [0, 1]: clip to ``(lo, hi)`` (default 0..3000), scale linearly."""
    dn = _f32(dn)
    return ((np.clip(dn, lo, hi) - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)


def unit_to_model(x01):
    """[0, 1] -> model domain [-1, 1]: ``x * 2 - 1`` (numpy arrays or torch tensors)."""
    return x01 * 2.0 - 1.0


def model_to_unit(y):
    """Model output [-1, 1] -> [0, 1]: ``(y + 1) / 2``, clipped (numpy arrays or torch tensors)."""
    u = (y + 1.0) / 2.0
    return u.clamp(0.0, 1.0) if hasattr(u, "clamp") else np.clip(u, 0.0, 1.0)


def gray_from_rgb(
    r: np.ndarray, g: np.ndarray, b: np.ndarray, weights: Sequence[float] = GRAY_WEIGHTS
) -> np.ndarray:
    """Weighted sum of three unit-scaled bands (default BT.601 luma ``0.299 R + 0.587 G + 0.114 B``)."""
    if len(weights) != 3:
        raise ConfigError(f"gray_from_rgb needs 3 weights, got {tuple(weights)}")
    wr, wg, wb = (np.float32(w) for w in weights)
    return (wr * _f32(r) + wg * _f32(g) + wb * _f32(b)).astype(np.float32)
