"""Radiometric augmentation of the SAR side of training pairs: random gain and extra speckle.

Why: a model trained on three scenes sees three speckle levels and three scene-percentile
scalings. At inference the same land cover arrives with another scene's 99th percentile (the
card's ``percentile`` normalisation divides by it) and another number of looks (GRD products,
multi-looked or filtered scenes). Two random changes, drawn per training sample, make the
model indifferent to both:

* **gain**: the linear backscatter is multiplied by ``10^(g / 10)``, ``g`` uniform in
  ``[-gain_db, +gain_db]`` dB, i.e. the scene percentile the data was divided by moves by
  up to ``gain_db`` dB (then clipped to [0, 1] as the normalisation does);
* **speckle**: with probability ``probability`` the linear backscatter is multiplied by
  fully developed speckle, unit-mean gamma noise ``Gamma(L, 1/L)`` with ``L`` looks drawn
  log-uniformly from ``looks`` (the intensity distribution of an ``L``-look SAR image).

* **contrast** (``db_gamma``, off by default): the dB below the scene percentile are
  multiplied by a factor drawn log-uniformly (``x ** gamma`` on linear power / percentile), as
  the spread of backscatter differs between regions, land covers and processors.

All act on linear power: for a ``"db"`` domain (db_clip cards) the unit values are taken back
to dB, changed (a gain is a dB offset, speckle adds ``10 log10(noise)``) and clipped again. The
result is quantised like the training data (``quantize_levels``, 255 for 8-bit data), so the
model never sees values the inference normalisation cannot produce.

Randomness comes only from the generator passed in: the dataset passes its per-sample stream
``numpy.random.default_rng([seed, epoch, index])``, so a sample is the same whichever worker or
DDP rank draws it, and ``--resume`` needs no extra state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError

__all__ = ["SpeckleAugment"]


@dataclass(frozen=True)
class SpeckleAugment:
    """Random gain (dB) and gamma speckle (looks) on the SAR condition, in the model card's domain.

    Attributes:
        probability: chance that a sample gets extra speckle (0..1).
        looks: ``(min, max)`` equivalent number of looks of the added speckle, drawn log-uniformly.
        gain_db: half-width of the uniform random gain, dB (0: no gain change).
        db_gamma: ``(lo, hi)`` of a random contrast on the dB scale, drawn log-uniformly:
            backscatter relative to the scene percentile (linear domain) is raised to that
            power, i.e. its dB below the percentile are multiplied by it; in the ``"db"``
            domain dB below the range's top are. ``(1, 1)``: off (and nothing is drawn).
        domain: ``"linear"`` when unit values are linear power / scene percentile (the card's
            ``percentile`` normalisation), ``"db"`` when they are clipped dB (``db_clip``).
        db_range: ``(lo, hi)`` dB of the ``"db"`` domain.
        quantize_levels: round the result to this many steps (None: keep float).
    """

    probability: float = 0.5
    looks: tuple[float, float] = (3.0, 30.0)
    gain_db: float = 2.0
    db_gamma: tuple[float, float] = (1.0, 1.0)
    domain: Literal["linear", "db"] = "linear"
    db_range: tuple[float, float] | None = None
    quantize_levels: int | None = 255

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"speckle probability {self.probability} must be in [0, 1]")
        if not 0.0 < self.looks[0] <= self.looks[1]:
            raise ConfigError(f"speckle looks {self.looks} must be (min, max) with 0 < min <= max")
        if self.gain_db < 0:
            raise ConfigError(f"gain_db {self.gain_db} must be >= 0")
        if not 0.0 < self.db_gamma[0] <= self.db_gamma[1]:
            raise ConfigError(f"db_gamma {self.db_gamma} must be (lo, hi) with 0 < lo <= hi")
        if self.domain == "db" and self.db_range is None:
            raise ConfigError("the db domain needs db_range=(lo, hi)")

    @classmethod
    def for_input(cls, inp: Any, **kwargs: Any) -> SpeckleAugment:
        """The augmentation for a card's :class:`~sar2opt_geo.models.card.InputDomain`."""
        if inp.normalisation == "db_clip":
            return cls(domain="db", db_range=tuple(inp.db_range), quantize_levels=inp.quantize_levels, **kwargs)
        return cls(domain="linear", quantize_levels=inp.quantize_levels, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __call__(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copy of ``unit`` (``(C, H, W)`` float32 in [0, 1]); draws from ``rng`` only."""
        gain_db = float(rng.uniform(-self.gain_db, self.gain_db)) if self.gain_db else 0.0
        noise = None
        if rng.random() < self.probability:
            lo, hi = np.log(self.looks[0]), np.log(self.looks[1])
            looks = float(np.exp(rng.uniform(lo, hi)))
            noise = rng.gamma(looks, 1.0 / looks, size=unit.shape).astype(np.float32)
        gamma = 1.0
        if self.db_gamma != (1.0, 1.0):  # drawn last, so that streams without it are unchanged
            gamma = float(np.exp(rng.uniform(np.log(self.db_gamma[0]), np.log(self.db_gamma[1]))))
        x = unit.astype(np.float32)
        if self.domain == "linear":
            if gamma != 1.0:
                x = np.power(np.maximum(x, np.float32(0.0)), np.float32(gamma))
            x = x * np.float32(10.0 ** (gain_db / 10.0))
            if noise is not None:
                x = x * noise
            x = np.clip(x, 0.0, 1.0)
        else:
            lo_db, hi_db = self.db_range  # type: ignore[misc]
            db = lo_db + x * np.float32(hi_db - lo_db)
            db = np.float32(hi_db) + (db - np.float32(hi_db)) * np.float32(gamma) + np.float32(gain_db)
            if noise is not None:
                db = db + np.float32(10.0) * np.log10(np.maximum(noise, np.float32(1e-6)))
            x = np.clip((db - lo_db) / np.float32(hi_db - lo_db), 0.0, 1.0)
        if self.quantize_levels:
            x = np.round(x * self.quantize_levels) / np.float32(self.quantize_levels)
        return x.astype(np.float32)
