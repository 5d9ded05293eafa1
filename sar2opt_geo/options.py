"""Translate options, defined once: defaults, units, help texts, CLI flags and QGIS names.

:class:`TranslateOptions` is the one definition of how a scene is translated. Each field
carries its user-facing description in ``dataclasses.field(metadata=...)``:

* ``help``: one sentence with units and the default, shown by ``--help`` and in QGIS;
* ``flag``: the CLI flag(s) (``sar2opt translate``, ``batch``, ``composite`` ... generate
  their options from these, :mod:`sar2opt_geo.cli._options`);
* ``group``: the ``--help`` section;
* ``qgis``: the QGIS Processing parameter name, where the plugin exposes the option;
* ``kind``: how the CLI parses it (``"value"``, ``"flag"`` for ``store_true``,
  ``"switch"`` for ``--x/--no-x``, ``"bands"`` for a comma list, ``"bounds"`` for four numbers);
* ``effect``: what the option can change, for the hashes that decide whether an earlier output
  is still valid (:func:`options_with_effect`): ``"pixels"`` (the default), ``"nothing"`` (where
  and how fast it runs, whether an existing file may be replaced), ``"encoding"`` (only the
  final file: data type, quicklook), ``"window"`` (which part of the scene: batches hash the
  prepared polygon instead).

This module imports only the standard library, so QGIS's own Python (which has neither
torch nor pip's rasterio) can read the defaults and names from it.

Sizes are in pixels of the model grid; resolutions in units of the target CRS; bounds are
``(left, bottom, right, top)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_MEMORY_MB",
    "QUANTIZE_MODES",
    "RESAMPLING_METHODS",
    "SEED_MAX",
    "TranslateOptions",
    "check_seed",
    "option_fields",
    "options_with_effect",
    "parse_bands",
]

#: Memory budget of a translation, MB of peak RSS: tile size and batch are chosen from it for the model.
DEFAULT_MAX_MEMORY_MB = 1500
#: Inference backends and quantisation modes (sar2opt_geo.engine.backends).
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
QUANTIZE_MODES: tuple[str, ...] = ("none", "int8")
#: Arithmetic of the model (``sar2opt_geo.engine.backends.PRECISIONS``; checked in the tests).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: How a plain raster may store its values (``sar2opt_geo.sensors.geotiff.UNITS``; checked in the tests).
INPUT_UNITS: tuple[str, ...] = ("db", "linear", "amplitude", "scaled", "reflectance", "dn")
#: GDAL resampling names (rasterio.enums.Resampling members; checked against rasterio in the tests).
RESAMPLING_METHODS: tuple[str, ...] = (
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "gauss",
    "max", "min", "med", "q1", "q3", "sum", "rms",
)


#: Largest seed: seeds go to torch's and numpy's generators, which take whole numbers 0 .. 2**63 - 1 here.
SEED_MAX = 2**63 - 1


def check_seed(seed: Any, flag: str = "--seed", count: int = 1) -> int:
    """``seed`` as an int when ``seed .. seed + count - 1`` are all valid seeds (0 .. :data:`SEED_MAX`).

    Raises :class:`~sar2opt_geo.errors.ConfigError` (:class:`~sar2opt_geo.errors.OptionTypeError`
    for a non-integer) naming ``flag`` and the range allowed.
    """
    import numbers

    from .errors import ConfigError, OptionTypeError

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise OptionTypeError(f"{flag} {seed!r} is not a whole number; give an integer from 0 to {SEED_MAX} (2**63 - 1)")
    seed = int(seed)
    top = SEED_MAX - max(1, count) + 1
    if not 0 <= seed <= top:
        runs = f" (with {count} runs it uses seeds {flag} .. {flag}+{count - 1})" if count > 1 else ""
        raise ConfigError(f"{flag} {seed} is out of range{runs}; give a whole number from 0 to {top}"
                          + (" (2**63 - 1)" if top == SEED_MAX else ""))
    return seed


def parse_bands(value: Any) -> tuple[str, ...] | None:
    """Band names from ``"HH, HV"``, ``("HH", "HV")``, ``2`` or None: a tuple of stripped names, or None."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        value = str(value).split(",")
    names = tuple(str(b).strip() for b in value if str(b).strip())
    return names or None


Effect = Literal["pixels", "nothing", "encoding", "window"]


def _opt(default: Any, help: str, *, flag: str | tuple[str, ...] | None = None, group: str = "",
         qgis: str | None = None, kind: str = "value", metavar: str | None = None,
         choices: tuple[str, ...] | None = None, cli: bool = True, effect: Effect = "pixels") -> Any:
    """A dataclass field with its user-facing description (see the module docstring)."""
    meta = {"help": help, "flag": (flag,) if isinstance(flag, str) else flag, "group": group, "qgis": qgis,
            "kind": kind, "metavar": metavar, "choices": choices, "cli": cli, "effect": effect}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TranslateOptions:
    """How to translate a scene. Sizes are in pixels of the model grid; resolutions in CRS units.

    Every field's ``metadata["help"]`` says what it means, its unit and its default; see
    :func:`option_fields`. Invalid values raise :class:`~sar2opt_geo.errors.ConfigError`.
    """

    bands: tuple[str, ...] | None = _opt(
        None, "scene bands fed to the model, comma-separated names (HH, VH, red ...) or 1-based indices "
        "(default: the card's bands; a single-pol scene's only band)",
        flag="--bands", group="", qgis="BANDS", kind="bands", metavar="B[,B]")
    tile_size: int | None = _opt(
        None, "tile size in pixels of the model grid, a multiple of the model's downsampling (16 for the bundled "
        "models) (default: the size that computes least within --max-memory-mb)",
        flag="--tile", group="tiling", qgis="TILE_SIZE", metavar="PX")
    overlap: int | None = _opt(
        None, "overlap of neighbouring tiles in pixels, a multiple of the downsampling, at least twice the model's "
        "receptive margin for exact tiles (default: 2 x the margin from the model: 96 for the bundled models)",
        flag="--overlap", group="tiling", qgis="OVERLAP", metavar="PX")
    batch_size: int | None = _opt(
        None, "tiles per forward pass (default: 1 on CPU, as many as fit on a GPU)",
        flag="--batch", group="tiling", metavar="N", effect="nothing")
    max_memory_mb: float = _opt(
        DEFAULT_MAX_MEMORY_MB, f"memory the engine may allocate, MB (tiles, activations, row buffers; what the calling process "
        f"already holds is not counted); tile size and batch are chosen to stay under it and under the memory the "
        f"machine has available, and an explicit --tile/--batch over it is refused (default {DEFAULT_MAX_MEMORY_MB})", flag="--max-memory-mb", group="tiling", qgis="MAX_MEMORY_MB",
        metavar="MB")
    backend: str = _opt(
        "torch", "inference backend: torch (default), onnxruntime or openvino (CPU; exported in memory)",
        flag="--backend", group="tiling", qgis="BACKEND", choices=BACKENDS)
    quantize: str = _opt(
        "none", "int8: quantise the model for onnxruntime (smaller, not exact; PSNR loss measured in "
        "benchmarks/README.md) (default none)", flag="--quantize", group="tiling", choices=QUANTIZE_MODES)
    precision: str = _opt(
        "auto", "arithmetic of the model: auto (bf16 on CPUs with AVX-512 BF16 or AMX, 1.7x faster for the bundled "
        "model with validation PSNR unchanged; fp32 elsewhere; SAR2OPT_PRECISION=fp32|bf16 pins it), fp32, or bf16 "
        "(torch backend) (default auto)", flag="--precision", group="tiling", qgis="PRECISION", choices=PRECISIONS)
    device: str = _opt(
        "auto", "torch device: auto (CUDA if available, else CPU), cpu, cuda, cuda:1 ... (default: auto)",
        flag="--device", group="", qgis="DEVICE", metavar="DEVICE", effect="nothing")
    dst_crs: str | None = _opt(
        None, "reproject the result to this CRS, e.g. EPSG:4326 (default: model grid)",
        flag="--t-srs", group="output grid", qgis="TARGET_CRS", metavar="CRS")
    dst_res: float | None = _opt(
        None, "output resolution in units of the output CRS", flag="--tr", group="output grid", metavar="RES")
    pixel_spacing_m: float | None = _opt(
        None, "pixel spacing the model runs at, metres (default: the model card's, 10 m for the bundled models; "
        "the input is resampled to it, and a model run at another spacing sees objects at another scale)",
        flag="--pixel-spacing", group="output grid", metavar="METRES")
    match_input_grid: bool = _opt(
        False, "resample the result back onto the input's own grid (map-projected inputs only)",
        flag="--match-input-grid", group="output grid", qgis="MATCH_INPUT_GRID", kind="flag")
    resampling: str = _opt(
        "bilinear", "GDAL resampling for upsampling the input and reprojecting the output (default bilinear; "
        "downsampling the input always uses average)", flag="--resampling", group="output grid", metavar="NAME",
        choices=RESAMPLING_METHODS)
    bounds: tuple[float, float, float, float] | None = _opt(
        None, "write only this rectangle (data around it is read as context)", flag="--bounds",
        group="output grid", kind="bounds", effect="window")
    bounds_crs: str | None = _opt(
        None, "CRS of --bounds (default: --t-srs if given, else the input's)", flag="--bounds-crs",
        group="output grid", metavar="CRS", effect="window")
    speckle_filter: Literal["none", "lee"] = _opt(
        "none", "speckle filter on linear power before translation (default none)", flag="--speckle",
        group="radiometry", choices=("none", "lee"))
    speckle_window: int = _opt(
        7, "Lee window in input pixels, odd (default 7)", flag="--speckle-window", group="radiometry", metavar="PX")
    calibration_factor_db: float | None = _opt(
        None, "PALSAR-2 calibration factor in dB (default: from the product's LED file, else -83.0)",
        flag="--calibration-factor", group="radiometry", metavar="DB")
    sensor: str | None = _opt(
        None, "what a plain raster (GeoTIFF, VRT ...) holds when its name and tags do not say: SAR, Sentinel-1, "
        "ALOS-2, optical, Sentinel-2 or Landsat-8 (default: detected; a guess is logged as a warning)",
        flag="--sensor", group="radiometry", qgis="SENSOR", metavar="NAME")
    input_units: str | None = _opt(
        None, "how a plain raster stores its values: db, linear (power), amplitude, scaled (8-bit linear/p99), "
        "reflectance or dn (default: from tags and names, else from the values)",
        flag="--input-units", group="radiometry", qgis="INPUT_UNITS", choices=INPUT_UNITS)
    thermal_noise_removal: bool = _opt(
        True, "Sentinel-1 SAFE: subtract the thermal noise LUTs (default: on)", flag="--thermal-noise-removal",
        group="radiometry", kind="switch")
    strict: bool = _opt(
        False, "refuse a sensor/band mismatch with the model card", flag="--strict", group="radiometry", kind="flag")
    dtype: Literal["uint8", "float32"] = _opt(
        "uint8", "uint8 RGB with nodata mask (default) or float32 in [0, 1] with NaN nodata", flag="--dtype",
        group="output", choices=("uint8", "float32"), effect="encoding")
    quicklook: bool = _opt(
        False, "also write <OUTPUT stem>.png (<= 1024 px, transparent nodata)", flag="--quicklook", group="output",
        kind="flag", effect="encoding")
    overwrite: bool = _opt(
        True, "replace an existing OUTPUT (default: yes; --no-overwrite refuses)", flag="--overwrite",
        group="output", kind="switch", effect="nothing")
    stochastic: bool = _opt(
        False, "keep dropout on at inference (the article's mode)", flag="--stochastic", group="output", kind="flag")
    seed: int = _opt(
        0, "seed of the dropout masks with --stochastic (default 0)", flag="--seed", group="output", metavar="N")
    samples: int = _opt(
        1, "uncertainty: run the stochastic mode (dropout on) N times with seeds --seed .. --seed+N-1, write their "
        "mean as OUTPUT and the per-pixel spread (sample std of BT.601 luminance, float32) as "
        "<OUTPUT stem>_spread.tif; each run's channel-dropout masks are shared by all tiles, so neither depends on "
        "the tiling (default 1: one run, no spread)", flag="--samples", group="output", qgis="SAMPLES",
        metavar="N")
    keep_structure: bool = _opt(
        True, "add the SAR's own fine structure (band-pass 10-80 m of the input as the model sees it) to the "
        "model's colours, so fields, roads and buildings the SAR shows stay visible anywhere; the colours keep the "
        "160 m land-cover layout, but pixel-level PSNR/SSIM against optical images fall (measured in "
        "docs/TRAINING.md); --no-keep-structure writes the model's output alone (default: on)",
        flag="--keep-structure", group="output", qgis="KEEP_STRUCTURE", kind="switch")
    structure_strength: float = _opt(
        1.0, "with --keep-structure: output brightness ([0, 1] scale) per unit of linear backscatter / scene "
        "percentile above its 80 m neighbourhood (default 1)", flag="--structure-strength", group="output",
        metavar="K")
    aoi: object | None = _opt(None, "a shapely geometry: pixels outside it become nodata (unless keep_rectangle)",
                              cli=False, effect="window")
    aoi_crs: str | None = _opt(None, "CRS of aoi (default: dst_crs if set, else the input's)", cli=False, effect="window")
    keep_rectangle: bool = _opt(False, "with aoi: keep the whole bounding rectangle, no polygon mask", cli=False, effect="window")

    def __post_init__(self) -> None:
        from .errors import ConfigError

        object.__setattr__(self, "bands", parse_bands(self.bands))
        if self.dtype not in ("uint8", "float32"):
            raise ConfigError(f"dtype must be 'uint8' or 'float32', got {self.dtype!r}")
        if self.speckle_filter not in ("none", "lee"):
            raise ConfigError(f"speckle_filter must be 'none' or 'lee', got {self.speckle_filter!r}")
        if self.speckle_filter == "lee" and (self.speckle_window < 3 or self.speckle_window % 2 == 0):
            raise ConfigError(f"speckle_window must be an odd number of pixels >= 3, got {self.speckle_window}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.resampling not in RESAMPLING_METHODS:
            raise ConfigError(f"unknown resampling {self.resampling!r}; e.g. nearest, bilinear, cubic, average")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"samples must be a whole number >= 1 (stochastic runs), got {self.samples!r}")
        object.__setattr__(self, "seed", check_seed(self.seed, count=self.samples))
        if isinstance(self.structure_strength, bool) or not isinstance(self.structure_strength, (int, float)) \
                or not 0 <= self.structure_strength <= 10:
            raise ConfigError(f"structure_strength must be a number from 0 to 10, got {self.structure_strength!r}")
        if self.dst_res is not None and not self.dst_res > 0:
            raise ConfigError(f"dst_res must be a positive resolution in dst_crs units, got {self.dst_res}")
        if self.pixel_spacing_m is not None and not (0 < self.pixel_spacing_m < 1e6):
            raise ConfigError(f"pixel_spacing_m must be a positive number of metres, got {self.pixel_spacing_m}")
        if self.match_input_grid and (self.dst_crs or self.dst_res):
            raise ConfigError("match_input_grid cannot be combined with dst_crs/dst_res; choose one")
        self._check_tiling()
        if self.bounds is not None:
            object.__setattr__(self, "bounds", tuple(float(v) for v in self.bounds))
            if len(self.bounds) != 4:
                raise ConfigError(f"bounds must be (left, bottom, right, top), got {self.bounds}")

    def _check_tiling(self) -> None:
        """Sizes that cannot work for any model; the model's own constraints are checked when it is known."""
        from .errors import ConfigError, OptionTypeError

        for name in ("tile_size", "overlap", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise OptionTypeError(f"tiling {name}={value!r} is not an integer; give a whole number of pixels")
        if self.tile_size is not None and (self.tile_size < 16 or self.tile_size % 16):
            raise ConfigError(f"tile_size={self.tile_size} is not a positive multiple of 16; use e.g. "
                              f"{max(16, -(-self.tile_size // 16) * 16)}")
        if self.overlap is not None and (self.overlap < 0 or self.overlap % 16):
            raise ConfigError(f"overlap={self.overlap} is not a non-negative multiple of 16; use e.g. "
                              f"{max(0, -(-self.overlap // 16) * 16)}")
        if self.tile_size is not None and self.overlap is not None and self.overlap >= self.tile_size:
            raise ConfigError(f"overlap={self.overlap} must be smaller than tile_size={self.tile_size}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if not self.max_memory_mb > 0:
            raise ConfigError(f"max_memory_mb={self.max_memory_mb} must be a positive number of MB (e.g. 1500)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
        if self.quantize not in QUANTIZE_MODES:
            raise ConfigError(f"quantize {self.quantize!r} is unknown; choose none or int8")
        if self.quantize != "none" and self.backend == "torch":
            raise ConfigError("quantize=int8 runs on backend onnxruntime; add --backend onnxruntime")
        if self.stochastic and self.backend != "torch":
            raise ConfigError(f"stochastic mode (dropout on) needs backend torch, not {self.backend!r}")

    def replace(self, **changes: Any) -> TranslateOptions:
        """A copy with ``changes``; unknown names raise :class:`~sar2opt_geo.errors.OptionTypeError` (a
        ``TypeError``) listing the valid ones."""
        from .errors import OptionTypeError

        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise OptionTypeError(
                f"unknown translate option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


def options_with_effect(*effects: Effect) -> frozenset[str]:
    """Names of the :class:`TranslateOptions` fields whose ``effect`` is one of ``effects``."""
    return frozenset(f.name for f in dataclasses.fields(TranslateOptions) if f.metadata["effect"] in effects)


def option_fields(cli_only: bool = False) -> list[dataclasses.Field]:
    """The fields of :class:`TranslateOptions` in declaration order (``cli_only``: those with a CLI flag)."""
    fields = dataclasses.fields(TranslateOptions)
    return [f for f in fields if f.metadata.get("cli", True)] if cli_only else list(fields)
