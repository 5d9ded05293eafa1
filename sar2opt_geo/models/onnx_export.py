"""Export a generator to ONNX, with its model card in the ONNX metadata.

Two targets:

``target="generic"`` (default): for ONNX Runtime and other runtimes driven by your own code.
One input ``input`` ``(N, C_in, H, W)`` and one output ``output`` ``(N, C_out, H, W)``, float32,
dynamic batch, height and width (H and W must still be multiples of the model's
``downsampling``, 16 for the article's U-Net). ``io_range="model"`` keeps the network's own
domain, input and output in [-1, 1], input prepared exactly as the card says (dB clip or scene
percentile); ``io_range="unit"`` wraps the graph to take and return [0, 1] (``x * 2 - 1`` in
front, ``(y + 1) / 2`` behind). The caller tiles the scene, prepares the input and writes the
georeferenced result; nothing in such a file is read by a GIS plugin.

``target="deepness"``: a file the Deepness QGIS plugin loads and runs, following what its model
classes check and read (``deepness/processing/models/model_base.py`` and ``regressor.py``):

* a **static square input** ``(N, C_in, T, T)`` (Deepness takes the tile size from the input
  shape and refuses dynamic or non-square shapes), batch dynamic;
* model type ``"Regressor"``: one output per band (``red``, ``green``, ``blue``), each
  ``(N, 1, T, T)`` with values ``(y + 1) / 2`` in [0, 1]. Deepness' regression takes channel 0
  of every output and blends tiles by cropping half the overlap, which is what a U-Net needs;
  its ``Superresolution`` type pastes whole tiles into a canvas ``scale_factor`` times larger
  (its UI allows 2 and up) and fails with any overlap at scale 1, so it cannot run this model;
* metadata: ``model_type``, ``class_names`` (one ``{"0": band}`` per output), ``resolution``
  (the card's pixel spacing in **cm per pixel**), ``tile_size`` (pixels; the key Deepness reads,
  not ``tiles_size``), ``tiles_overlap`` (percent of the tile, chosen so that half of it covers
  the model's receptive-field margin), ``standardization_mean`` / ``standardization_std``
  (0.5, 0.5: Deepness feeds raster value / 255, which becomes ``value / 127.5 - 1``, the
  model's [-1, 1] domain for 8-bit input) and ``reg_output_scaling`` (255: layers in 0..255
  like sar2opt's uint8 product).

What Deepness does differently from ``sar2opt translate``: it divides raster values by 255, so it
needs an 8-bit raster already prepared as the card says (for the bundled SAR model: linear
sigma0 divided by the scene's 99th percentile, clipped, times 255, like the Los Angeles pairs),
it resamples that 8-bit raster to ``resolution`` itself, pads the scene border with zeros
instead of reflection, and writes the three bands as three single-band float layers (stack them
with ``gdalbuildvrt -separate``). Both targets carry ``sar2opt_card`` (the full model card),
``sar2opt_format``, ``sar2opt_target``, ``sar2opt_io_range`` and ``sar2opt_downsampling``.

The legacy TorchScript exporter is used (``dynamo=False``): the torch.export-based one needs
the ``onnxscript`` package, which the pinned environment does not have.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..io.atomic import atomic_file
from .card import ModelCard
from .checkpoint import FORMAT

__all__ = [
    "DEEPNESS_MODEL_TYPE",
    "OPSET",
    "compare_onnx",
    "deepness_overlap_percent",
    "export_onnx",
    "onnx_metadata",
    "read_onnx_card",
]

log = logging.getLogger(__name__)

OPSET = 17
DEEPNESS_MODEL_TYPE = "Regressor"  # Deepness' ModelType values are its model class names
IoRange = Literal["model", "unit"]
Target = Literal["generic", "deepness"]


class _UnitIO(nn.Module):
    """Wrap a generator so that input and output are in [0, 1] instead of [-1, 1]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x * 2.0 - 1.0) + 1.0) * 0.5


class _DeepnessIO(nn.Module):
    """Input in the model's [-1, 1]; one ``(N, 1, H, W)`` output in [0, 1] per band (Deepness' regression)."""

    def __init__(self, model: nn.Module, bands: int) -> None:
        super().__init__()
        self.model = model
        self.bands = bands

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = (self.model(x) + 1.0) * 0.5
        return tuple(y[:, i : i + 1] for i in range(self.bands))


def _margin(module: nn.Module) -> int:
    """Pixels to crop on inner tile sides: the model's receptive-field margin, at least the engine's 48."""
    return max(48, int(getattr(module, "receptive_margin", 47)) + 1)


def _deepness_overlap_px(tile_size: int, percent: int) -> int:
    return int(tile_size * percent / 100 * 2) // 2  # Deepness' ProcessingOverlap.get_overlap_px


def deepness_overlap_percent(tile_size: int, margin: int, downsampling: int = 16) -> int:
    """The whole percentage of ``tile_size`` to put in ``tiles_overlap`` for Deepness.

    Deepness turns it into ``overlap_px = int(tile_size * percent / 100 * 2) // 2`` and crops
    ``overlap_px // 2`` pixels on inner tile sides. The smallest percentage is chosen for which
    that crop covers ``margin`` (the receptive field) and the stride ``tile_size - overlap_px`` is
    a multiple of ``downsampling``: then every tile sits on the same pixel lattice as a
    whole-image pass (the U-Net's pooling makes its output depend on that phase) and the mosaic
    has no seams. If no percentage up to 50 % gives such a stride, the margin alone decides.
    """
    fits = [p for p in range(1, 51) if _deepness_overlap_px(tile_size, p) // 2 >= margin]
    aligned = [p for p in fits if (tile_size - _deepness_overlap_px(tile_size, p)) % downsampling == 0]
    if not fits:
        raise ConfigError(f"tile_size={tile_size} is too small for a {margin} px margin per side; use a larger tile")
    return (aligned or fits)[0]


def onnx_metadata(
    card: ModelCard, io_range: IoRange = "model", downsampling: int = 16, tile_size: int = 512,
    overlap_percent: int | None = None, target: Target = "generic",
) -> dict[str, str]:
    """The ``metadata_props`` written by :func:`export_onnx` (keys -> JSON-encoded values)."""
    ours = {
        "sar2opt_format": json.dumps(FORMAT),
        "sar2opt_target": json.dumps(target),
        "sar2opt_io_range": json.dumps(io_range),
        "sar2opt_downsampling": json.dumps(downsampling),
        "sar2opt_card": card.to_json(),
    }
    if target == "generic":
        return {"sar2opt_band_names": json.dumps(list(card.output.bands)), **ours}
    channels = card.in_channels
    return {
        "model_type": json.dumps(DEEPNESS_MODEL_TYPE),
        "class_names": json.dumps([{"0": b} for b in card.output.bands]),
        "resolution": json.dumps(round(card.input.pixel_spacing_m * 100.0, 3)),  # cm per pixel
        "tile_size": json.dumps(tile_size),
        "tiles_overlap": json.dumps(overlap_percent if overlap_percent is not None else 25),  # percent of the tile
        "standardization_mean": json.dumps([0.5] * channels),
        "standardization_std": json.dumps([0.5] * channels),
        "reg_output_scaling": json.dumps(255.0),
        **ours,
    }


def _require(name: str, what: str) -> Any:
    """Import ``name`` (``onnx`` or ``onnxruntime``, both in the ``onnx`` extra), or raise a one-line
    :class:`~sar2opt_geo.errors.ConfigError` naming it and the ``pip install`` line."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f'{what} needs the {name} package, not installed in this Python: '
                          f'pip install "sar2opt-geo[onnx]" (or: pip install {name})') from None


def export_onnx(
    model: str | os.PathLike | tuple[nn.Module, ModelCard],
    dst: str | os.PathLike,
    *,
    io_range: IoRange = "model",
    opset: int = OPSET,
    sample_size: int | None = None,
    target: Target = "generic",
    tile_size: int = 512,
) -> Path:
    """Write ``model`` (a checkpoint path or a loaded ``(module, card)``) as ONNX to ``dst`` atomically.

    Args:
        model: ``.safetensors`` checkpoint, or ``(module, card)``.
        dst: output ``.onnx`` path.
        io_range: ``"model"`` ([-1, 1] in and out) or ``"unit"`` ([0, 1]); generic target only.
        opset: ONNX opset version.
        sample_size: generic target: side of the tracing input in pixels (default: 2 x the model's
            downsampling, at least 64); height and width stay dynamic in the graph.
        target: ``"generic"`` or ``"deepness"`` (see the module docstring).
        tile_size: deepness target: the static input side in pixels, a multiple of the model's
            downsampling, larger than twice its receptive-field margin (default 512).

    Raises :class:`~sar2opt_geo.errors.ConfigError` when the ``onnx`` package is missing (before
    anything is read or written).
    """
    onnx = _require("onnx", "exporting to ONNX (sar2opt export-onnx)")

    if target not in ("generic", "deepness"):
        raise ConfigError(f"target must be 'generic' or 'deepness', got {target!r}")
    from .loading import load

    loaded = load(model, "cpu")  # a path, 'sar' / 'gray', a LoadedModel or a (module, card) tuple
    module, card = loaded.module, loaded.card
    module = module.to("cpu").eval()
    down = int(getattr(module, "downsampling", 16))
    overlap_percent = None
    if target == "deepness":
        if io_range != "model":
            raise ConfigError("io_range applies to the generic target only; the Deepness export's input and output "
                              "ranges are fixed by its metadata (raster/255, standardised; outputs 0..1 x 255)")
        margin = _margin(module)
        if tile_size % down or tile_size <= 2 * margin:
            raise ConfigError(
                f"tile_size={tile_size} does not fit {card.name}: it must be a multiple of {down} and larger than "
                f"2 x {margin} px (its receptive-field margin); e.g. --tile-size {max(512, down * math.ceil(4 * margin / down))}"
            )
        overlap_percent = deepness_overlap_percent(tile_size, margin, down)
        net: nn.Module = _DeepnessIO(module, card.out_channels)
        side = tile_size
        outputs = [str(b) for b in card.output.bands]
        if len(outputs) != card.out_channels or len(set(outputs)) != len(outputs):
            outputs = [f"band{i + 1}" for i in range(card.out_channels)]
        dynamic = {"input": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    else:
        net = _UnitIO(module) if io_range == "unit" else module
        side = sample_size or max(64, 2 * down)
        outputs = ["output"]
        dynamic = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
    example = torch.zeros(1, card.in_channels, side, side)
    dst = Path(dst)
    with atomic_file(dst) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)  # legacy exporter notice
            warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)  # reflection pads
            torch.onnx.export(
                net,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        for key, value in onnx_metadata(card, io_range, down, tile_size, overlap_percent, target).items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, value
        proto.doc_string = f"{card.name}: {card.description}".strip()
        proto.producer_name = "sar2opt_geo"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    log.info("wrote %s (%s, target %s, io_range=%s, opset %d)", dst, card.name, target, io_range, opset)
    return dst


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card stored in an exported ONNX file's ``sar2opt_card`` metadata."""
    onnx = _require("onnx", "reading an ONNX file")

    from ..errors import CheckpointError

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if "sar2opt_card" not in props:
        raise CheckpointError(f"{path}: ONNX file without sar2opt_card metadata; export it with sar2opt export-onnx")
    return ModelCard.from_json(props["sar2opt_card"])


def compare_onnx(path: str | os.PathLike, module: nn.Module, x: np.ndarray, io_range: IoRange = "model") -> float:
    """Max absolute difference between onnxruntime and torch on input ``x`` ``(N, C, H, W)`` float32.

    For a Deepness export the outputs are compared as one stack against ``(y + 1) / 2``.
    """
    ort = _require("onnxruntime", "running an ONNX file")
    x = np.ascontiguousarray(x, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate(sess.run(None, {"input": x}), axis=1)
    props = sess.get_modelmeta().custom_metadata_map
    deepness = json.loads(props.get("sar2opt_target", '"generic"')) == "deepness"
    net = _DeepnessIO(module, got.shape[1]) if deepness else _UnitIO(module) if io_range == "unit" else module
    with torch.inference_mode():
        out = net.eval()(torch.from_numpy(x))
        want = torch.cat(out, dim=1).numpy() if deepness else out.numpy()
    return float(np.abs(got - want).max())
