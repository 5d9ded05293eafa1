"""Model cards: what a checkpoint expects as input and produces as output.

The engine configures itself from the card (input bands, radiometric domain, pixel
spacing, output scaling) instead of from flags users must guess. A card is plain JSON
stored inside the checkpoint; see :mod:`sar2opt_geo.models.checkpoint`.

Input domain conventions (model input is always in [-1, 1]):

* ``normalisation="db_clip"``: SAR backscatter in dB, clipped to ``db_range`` (lo, hi),
  then mapped linearly to [-1, 1]. The SEN1-2 8-bit PNGs correspond to (-25, 0) dB.
* ``normalisation="percentile"``: linear values (sigma0 power for SAR, reflectance or DN
  for optical) divided by the scene's ``percentile``-th percentile over valid pixels,
  clipped to [0, 1], optionally quantised to ``quantize_levels`` steps (8-bit training
  data: 255), then mapped to [-1, 1]. This is the domain of the Los Angeles pairs.
* Gray models (``quantity="gray"``) first bring each of ``gray_from`` bands to [0, 1]
  with the rule above, then take the weighted sum with ``gray_weights``.

Output: ``tanh`` in [-1, 1] for each of ``output.bands``; ``(y + 1) / 2`` is the value on
the scale ``output.scaling`` describes; the uint8 product is ``round(255 * (y + 1) / 2)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["InputDomain", "ModelCard", "OutputSpec"]

Normalisation = Literal["db_clip", "percentile"]


@dataclass(frozen=True)
class InputDomain:
    """The radiometric domain and geometry of the model input."""

    sensor: str  # e.g. "Sentinel-1", "optical"
    bands: tuple[str, ...]  # e.g. ("VH",), ("VV",), ("gray",)
    quantity: str  # a radiometry.Quantity value: "sigma0", "reflectance", "gray", ...
    normalisation: Normalisation
    units: str = "linear"  # units of the values *before* normalisation: "linear" power or "db"
    db_range: tuple[float, float] | None = None  # dB clip range for "db_clip"
    percentile: float | None = None  # scene percentile (0-100) for "percentile"
    quantize_levels: int | None = None  # e.g. 255 when trained on 8-bit data
    pixel_spacing_m: float = 10.0  # ground pixel spacing the model was trained at, metres
    gray_from: tuple[str, ...] | None = None  # optical bands combined into gray
    gray_weights: tuple[float, ...] | None = None  # weights for gray_from (sum to 1)
    frequency_band: str | None = None  # radar band of the training data: "C", "L"; None for optical

    def __post_init__(self) -> None:
        if self.normalisation == "db_clip" and self.db_range is None:
            raise ValueError("db_clip normalisation needs db_range=(lo, hi) in dB")
        if self.normalisation == "percentile" and self.percentile is None:
            raise ValueError("percentile normalisation needs percentile (0-100)")


@dataclass(frozen=True)
class OutputSpec:
    """What the generator's output bands mean."""

    bands: tuple[str, ...] = ("red", "green", "blue")
    scaling: str = "tanh output y in [-1, 1]; (y + 1) / 2 = band value / scene 99th percentile, clipped to [0, 1]"
    sensor: str = "Sentinel-2"


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use (and judge) a generator checkpoint."""

    name: str
    architecture: str  # key of sar2opt_geo.models.GENERATORS, e.g. "unet_article"
    architecture_args: dict[str, Any]  # keyword arguments of that constructor
    input: InputDomain
    output: OutputSpec = field(default_factory=OutputSpec)
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)  # data, recipe, command, epochs
    metrics: dict[str, Any] = field(default_factory=dict)  # validation metrics and baselines
    library_version: str = ""
    created: str = ""

    @property
    def in_channels(self) -> int:
        return int(self.architecture_args.get("in_channels", len(self.input.bands)))

    @property
    def out_channels(self) -> int:
        return int(self.architecture_args.get("out_channels", len(self.output.bands)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        d = dict(d)
        inp = dict(d.pop("input"))
        for k in ("bands", "db_range", "gray_from", "gray_weights"):
            if inp.get(k) is not None:
                inp[k] = tuple(inp[k])
        out = dict(d.pop("output", {}))
        if "bands" in out:
            out["bands"] = tuple(out["bands"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(input=InputDomain(**inp), output=OutputSpec(**out), **{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)
