"""Export a generator to ONNX, with its model card in the ONNX metadata.

The ONNX graph has one input ``input`` ``(N, C_in, H, W)`` and one output ``output``
``(N, C_out, H, W)``, float32, with dynamic batch, height and width (H and W must still be
multiples of the model's ``downsampling``, 16 for the article's U-Net). Inference runs in
eval mode (BatchNorm running statistics, no dropout).

``metadata_props`` follow the convention of the Deepness QGIS plugin (values are JSON
encoded): ``model_type`` (``"Superresolution"``, Deepness' image-to-image type),
``class_names`` (output band index -> band name), ``resolution`` (training pixel spacing,
**centimetres per pixel**), ``tiles_size`` (pixels) and ``tiles_overlap`` (percent of the
tile); plus ours: ``sar2opt_card`` (the full model card JSON), ``sar2opt_format``,
``sar2opt_io_range`` and ``sar2opt_downsampling``.

``io_range="model"`` (default) keeps the network's own domain: input and output in
[-1, 1], input prepared exactly as the card says (dB clip or scene percentile). With
``io_range="unit"`` the graph takes and returns [0, 1] (``x * 2 - 1`` in front, ``(y + 1) / 2``
behind), which is what Deepness feeds for 8-bit rasters (``value / 255``): right for models
whose card input is 8-bit-quantised data such as the Los Angeles pairs.

The legacy TorchScript exporter is used (``dynamo=False``): the torch.export-based one needs
the ``onnxscript`` package, which the pinned environment does not have.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .card import ModelCard
from .checkpoint import FORMAT, load_model

__all__ = ["OPSET", "compare_onnx", "export_onnx", "onnx_metadata", "read_onnx_card"]

log = logging.getLogger(__name__)

OPSET = 17
IoRange = Literal["model", "unit"]


class _UnitIO(nn.Module):
    """Wrap a generator so that input and output are in [0, 1] instead of [-1, 1]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x * 2.0 - 1.0) + 1.0) * 0.5


def onnx_metadata(
    card: ModelCard, io_range: IoRange = "model", downsampling: int = 16, tile_size: int = 512, overlap: int = 128
) -> dict[str, str]:
    """The ``metadata_props`` written by :func:`export_onnx` (keys -> JSON-encoded values)."""
    return {
        "model_type": json.dumps("Superresolution"),
        "class_names": json.dumps({str(i): b for i, b in enumerate(card.output.bands)}),
        "resolution": json.dumps(round(card.input.pixel_spacing_m * 100.0, 3)),  # cm per pixel
        "tiles_size": json.dumps(tile_size),
        "tiles_overlap": json.dumps(round(100 * overlap / tile_size)),  # percent
        "sar2opt_format": json.dumps(FORMAT),
        "sar2opt_io_range": json.dumps(io_range),
        "sar2opt_downsampling": json.dumps(downsampling),
        "sar2opt_card": card.to_json(),
    }


def export_onnx(
    model: str | os.PathLike | tuple[nn.Module, ModelCard],
    dst: str | os.PathLike,
    *,
    io_range: IoRange = "model",
    opset: int = OPSET,
    sample_size: int | None = None,
) -> Path:
    """Write ``model`` (a checkpoint path or a loaded ``(module, card)``) as ONNX to ``dst`` atomically.

    Args:
        model: ``.safetensors`` checkpoint, or ``(module, card)``.
        dst: output ``.onnx`` path.
        io_range: ``"model"`` ([-1, 1] in and out) or ``"unit"`` ([0, 1]); see the module docstring.
        opset: ONNX opset version.
        sample_size: side of the tracing input in pixels (default: 2 x the model's downsampling,
            at least 64); height and width stay dynamic in the graph.
    """
    import onnx

    if isinstance(model, tuple):
        module, card = model
    else:
        module, card = load_model(model, "cpu")
    module = module.to("cpu").eval()
    down = int(getattr(module, "downsampling", 16))
    side = sample_size or max(64, 2 * down)
    net: nn.Module = _UnitIO(module) if io_range == "unit" else module
    example = torch.zeros(1, card.in_channels, side, side)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)  # legacy exporter notice
            warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)  # reflection pads
            torch.onnx.export(
                net,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}},
                opset_version=opset,
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        for key, value in onnx_metadata(card, io_range, down).items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, value
        proto.doc_string = f"{card.name}: {card.description}".strip()
        proto.producer_name = "sar2opt_geo"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s (%s, io_range=%s, opset %d)", dst, card.name, io_range, opset)
    return dst


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card stored in an exported ONNX file's ``sar2opt_card`` metadata."""
    import onnx

    from ..errors import CheckpointError

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if "sar2opt_card" not in props:
        raise CheckpointError(f"{path}: ONNX file without sar2opt_card metadata; export it with sar2opt export-onnx")
    return ModelCard.from_json(props["sar2opt_card"])


def compare_onnx(path: str | os.PathLike, module: nn.Module, x: np.ndarray, io_range: IoRange = "model") -> float:
    """Max absolute difference between onnxruntime and torch on input ``x`` ``(N, C, H, W)`` float32."""
    import onnxruntime as ort

    x = np.ascontiguousarray(x, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    net = _UnitIO(module) if io_range == "unit" else module
    with torch.inference_mode():
        want = net.eval()(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())
