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

Cards are validated when built (and so when read from a checkpoint): every field has a type
(``quantity``, ``units`` and ``normalisation`` are the :mod:`sar2opt_geo.radiometry` and
:class:`Normalisation` enums) and a range, and a bad value raises
:class:`~sar2opt_geo.errors.ConfigError` naming the field. ``input.nodata_fill`` is the
model-domain value the generator sees where its input is nodata, in training and inference.

Output: ``tanh`` in [-1, 1] for each of ``output.bands``; ``(y + 1) / 2`` is the value on
the scale ``output.scaling`` describes; the uint8 product is ``round(255 * (y + 1) / 2)``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..normalize import DEFAULT_NODATA_FILL
from ..radiometry import Quantity, Scale

__all__ = [
    "PERCENTILE_SCALING",
    "PIXEL_SPACING_RANGE_M",
    "PNG_SCALING",
    "REFLECTANCE_SCALING",
    "InputDomain",
    "ModelCard",
    "Normalisation",
    "OutputSpec",
]

#: ``OutputSpec.scaling`` of the training targets, by how the optical side was stored.
PERCENTILE_SCALING = "(y+1)/2 = band / scene 99th percentile, clipped"
REFLECTANCE_SCALING = "(y+1)/2 = reflectance / 0.3, clipped (Sentinel-2 DN 0..3000 of x10000)"
PNG_SCALING = "(y+1)/2 = SEN1-2 8-bit RGB PNG value / 255"

#: Ground pixel spacings a card may declare, metres (a smaller one makes grids without end).
PIXEL_SPACING_RANGE_M: tuple[float, float] = (0.01, 100_000.0)


class Normalisation(enum.StrEnum):
    """How calibrated values become the model input (see the module docstring)."""

    DB_CLIP = "db_clip"
    PERCENTILE = "percentile"


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"model card field {where} must be a finite number, got {value!r}")
    return float(value)


def _enum(where: str, cls: type[enum.Enum], value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ConfigError(
            f"model card field {where} is {value!r}; expected one of {', '.join(m.value for m in cls)}") from None


def _names(where: str, value: Any, allow_none: bool = False) -> tuple[str, ...] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"model card field {where} must be a non-empty list of names, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class InputDomain:
    """The radiometric domain and geometry of the model input (validated when built)."""

    sensor: str  # e.g. "Sentinel-1", "optical"
    bands: tuple[str, ...]  # e.g. ("VH",), ("VV",), ("gray",)
    quantity: Quantity  # what the input band measures: sigma0, reflectance, gray, ...
    normalisation: Normalisation
    units: Scale = Scale.LINEAR  # scale of the values *before* normalisation: linear power or dB
    db_range: tuple[float, float] | None = None  # dB clip range for "db_clip"
    percentile: float | None = None  # scene percentile (0-100] for "percentile"
    quantize_levels: int | None = None  # e.g. 255 when trained on 8-bit data
    pixel_spacing_m: float = 10.0  # ground pixel spacing the model was trained at, metres
    gray_from: tuple[str, ...] | None = None  # optical bands combined into gray
    gray_weights: tuple[float, ...] | None = None  # weights for gray_from (sum to 1)
    frequency_band: str | None = None  # radar band of the training data: "C", "L"; None for optical
    nodata_fill: float = DEFAULT_NODATA_FILL  # model-domain value fed where the input is nodata (training and inference)

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.sensor, str) or not self.sensor.strip():
            raise ConfigError(f"model card field input.sensor must be a sensor name, got {self.sensor!r}")
        put(self, "bands", _names("input.bands", self.bands))
        put(self, "quantity", _enum("input.quantity", Quantity, self.quantity))
        put(self, "normalisation", _enum("input.normalisation", Normalisation, self.normalisation))
        put(self, "units", _enum("input.units", Scale, self.units))
        if self.normalisation == Normalisation.DB_CLIP:
            if self.db_range is None or isinstance(self.db_range, str) or len(self.db_range) != 2:
                raise ConfigError(f"model card field input.db_range must be (lo, hi) in dB for db_clip, "
                                  f"got {self.db_range!r}")
            lo, hi = (_number("input.db_range", v) for v in self.db_range)
            if not hi > lo:
                raise ConfigError(f"model card field input.db_range must have hi > lo, got {self.db_range!r}")
            put(self, "db_range", (lo, hi))
        if self.normalisation == Normalisation.PERCENTILE:
            if self.percentile is None:
                raise ConfigError("model card field input.percentile is needed for percentile normalisation (0-100)")
            q = _number("input.percentile", self.percentile)
            if not 0.0 < q <= 100.0:
                raise ConfigError(f"model card field input.percentile must be within (0, 100], got {self.percentile!r}")
        if self.quantize_levels is not None and (isinstance(self.quantize_levels, bool) or
                                                  not isinstance(self.quantize_levels, int) or self.quantize_levels < 2):
            raise ConfigError(f"model card field input.quantize_levels must be an integer >= 2 or null, "
                              f"got {self.quantize_levels!r}")
        spacing = _number("input.pixel_spacing_m", self.pixel_spacing_m)
        lo, hi = PIXEL_SPACING_RANGE_M
        if not lo <= spacing <= hi:
            raise ConfigError(f"model card field input.pixel_spacing_m must be between {lo:g} and {hi:g} metres, "
                              f"got {self.pixel_spacing_m!r}")
        put(self, "gray_from", _names("input.gray_from", self.gray_from, allow_none=True))
        if self.gray_weights is not None:
            weights = tuple(_number("input.gray_weights", w) for w in self.gray_weights)
            if self.gray_from is None or len(weights) != len(self.gray_from):
                raise ConfigError(f"model card field input.gray_weights needs one weight per input.gray_from band, "
                                  f"got {self.gray_weights!r} for {self.gray_from!r}")
            put(self, "gray_weights", weights)
        if self.frequency_band is not None and (not isinstance(self.frequency_band, str) or not self.frequency_band):
            raise ConfigError(f"model card field input.frequency_band must be a radar band such as C or L, "
                              f"got {self.frequency_band!r}")
        fill = _number("input.nodata_fill", self.nodata_fill)
        if not -1.0 <= fill <= 1.0:
            raise ConfigError(f"model card field input.nodata_fill must be within the model domain [-1, 1], got {fill}")


@dataclass(frozen=True)
class OutputSpec:
    """What the generator's output bands mean."""

    bands: tuple[str, ...] = ("red", "green", "blue")
    scaling: str = "tanh output y in [-1, 1]; (y + 1) / 2 = band value / scene 99th percentile, clipped to [0, 1]"
    sensor: str = "Sentinel-2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", _names("output.bands", self.bands))


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

    def __post_init__(self) -> None:
        for name in ("name", "architecture"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"model card field {name} must be a non-empty string, got {value!r}")
        if not isinstance(self.architecture_args, dict):
            raise ConfigError(f"model card field architecture_args must be a mapping, got {self.architecture_args!r}")
        if self.out_channels != len(self.output.bands):
            raise ConfigError(f"model card: architecture_args.out_channels={self.out_channels} does not match the "
                              f"{len(self.output.bands)} output.bands {self.output.bands}")
        if self.in_channels != len(self.input.bands):
            raise ConfigError(f"model card: architecture_args.in_channels={self.in_channels} does not match the "
                              f"{len(self.input.bands)} input.bands {self.input.bands}")

    @property
    def in_channels(self) -> int:
        return int(self.architecture_args.get("in_channels", len(self.input.bands)))

    @property
    def out_channels(self) -> int:
        return int(self.architecture_args.get("out_channels", len(self.output.bands)))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (enums as their string values)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

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
        for part, fields_of, values in (("input", InputDomain, inp), ("output", OutputSpec, out)):
            unknown = sorted(set(values) - {f.name for f in dataclasses.fields(fields_of)})
            if unknown:
                raise ConfigError(f"model card has unknown field(s) {', '.join(f'{part}.{k}' for k in unknown)}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(input=InputDomain(**inp), output=OutputSpec(**out), **{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)
