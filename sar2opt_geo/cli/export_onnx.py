"""``sar2opt export-onnx`` (a generator to ONNX, card in the metadata) and ``sar2opt
import-pix2pix`` (a CycleGAN-and-pix2pix ``latest_net_G.pth`` to a sar2opt_geo checkpoint).
Thin shells over :mod:`sar2opt_geo.models.onnx_export` and :mod:`sar2opt_geo.models.reference`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ._common import add_model, add_verbosity

__all__ = ["add_parser"]

log = logging.getLogger(__name__)

IMPORT_DESCRIPTION = """\
Convert a generator trained with the PyTorch CycleGAN-and-pix2pix code (latest_net_G.pth,
--netG unet_256 / unet_128 / resnet_9blocks / resnet_6blocks, batch or instance norm) into a
sar2opt_geo .safetensors checkpoint with a model card. The architecture is read from the
weights; you describe the training data (the card's input domain):

  Sentinel-1 VV PNGs of SEN1-2 (dB clipped to -25..0, stored 0..255):
    --sensor Sentinel-1 --band VV --normalisation db_clip --db-range -25 0 --frequency-band C
  8-bit VH scaled by the scene's 99th percentile (the Los Angeles pairs):
    --sensor Sentinel-1 --band VH --normalisation percentile --percentile 99 --quantize-levels 255

A net trained on 3-channel copies of a gray image (upstream default --input_nc 3) is fed the
one band repeated three times.
"""


def _export(args: argparse.Namespace) -> int:
    from ..models.onnx_export import export_onnx

    if args.target == "deepness" and args.io_range != "model":
        args.export_parser.error("--io-range applies to --target generic only; the Deepness export fixes its ranges")
    dst = export_onnx(args.model, args.output, io_range=args.io_range, opset=args.opset, target=args.target,
                      tile_size=args.tile_size)
    print(dst)
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..models.card import InputDomain
    from ..models.reference_import import import_reference_checkpoint
    from ..radiometry import Quantity, Scale

    if args.normalisation == "db_clip" and not args.db_range:
        args.import_parser.error("--normalisation db_clip needs --db-range LO HI, the dB range the net was trained on "
                                 "(e.g. --db-range -25 0 for SEN1-2)")
    # --quantity stays a string here: InputDomain checks it (one ConfigError line for an unknown name)
    quantity = args.quantity or (Quantity.GRAY if args.bands == ["gray"] else Quantity.SIGMA0)
    domain = InputDomain(
        sensor=args.sensor,
        bands=tuple(args.bands),
        quantity=quantity,
        normalisation=args.normalisation,
        units=Scale.DB if args.normalisation == "db_clip" else Scale.LINEAR,
        db_range=tuple(args.db_range) if args.db_range else None,
        percentile=args.percentile if args.normalisation == "percentile" else None,
        quantize_levels=args.quantize_levels,
        pixel_spacing_m=args.pixel_spacing,
        frequency_band=args.frequency_band,
    )
    dst = import_reference_checkpoint(
        args.pth, args.output, domain, name=args.name, net=args.net, description=args.description or ""
    )
    print(dst)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export-onnx",
        help="export a generator to ONNX (generic: dynamic H/W; deepness: a file the Deepness QGIS plugin runs)",
        description=(
            "Export a .safetensors generator to ONNX with its model card in metadata_props (sar2opt_card). "
            "--target generic (default): input 'input' (N, C, H, W), output 'output', dynamic batch, height and width "
            "(multiples of the model's downsampling), for ONNX Runtime driven by your own code. "
            "--target deepness: for the Deepness QGIS plugin: static square input of --tile-size px, one output per "
            "band (model type Regressor), metadata Deepness reads (resolution in cm/px, tile_size, tiles_overlap "
            "covering the receptive field, standardization 0.5/0.5 so that raster/255 becomes the model's [-1, 1], "
            "reg_output_scaling 255). Deepness feeds raster values / 255: give it an 8-bit raster prepared as the "
            "card says (see docs/EXPERIMENT.md)."
        ),
    )
    add_model(p, positional=True)
    p.add_argument("output", type=Path, help="ONNX file to write")
    p.add_argument("--target", choices=("generic", "deepness"), default="generic",
                   help="generic: dynamic H/W for your own runtime; deepness: for the Deepness QGIS plugin (default: generic)")
    p.add_argument("--tile-size", type=int, default=512, metavar="PX",
                   help="--target deepness: static input side in pixels, a multiple of the model's downsampling (default: 512)")
    p.add_argument("--io-range", choices=("model", "unit"), default="model",
                   help="--target generic: model = input/output in [-1, 1] as the card defines; unit = [0, 1] in and out "
                        "(default: model)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    add_verbosity(p)
    p.set_defaults(func=_export, export_parser=p)

    q = subparsers.add_parser(
        "import-pix2pix",
        help="convert a CycleGAN-and-pix2pix latest_net_G.pth to a sar2opt_geo checkpoint",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("pth", type=Path, help="reference generator state dict (latest_net_G.pth)")
    q.add_argument("output", type=Path, help=".safetensors checkpoint to write")
    q.add_argument("--net", choices=("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"),
                   help="upstream --netG, checked against the weights (default: detected)")
    q.add_argument("--name", help="model name in the card (default: the file stem)")
    q.add_argument("--description", help="free text for the card")
    g = q.add_argument_group("training data (the card's input domain)")
    g.add_argument("--sensor", required=True, help="e.g. Sentinel-1, ALOS-2 PALSAR-2, optical")
    g.add_argument("--band", dest="bands", action="append", required=True, metavar="BAND",
                   help="input band(s) in the model's channel order, repeatable: VV, VH, HH, HV, gray")
    g.add_argument("--quantity", help="sigma0, gamma0, reflectance, gray (default: sigma0, or gray for --band gray)")
    g.add_argument("--normalisation", choices=("db_clip", "percentile"), required=True,
                   help="db_clip: dB clipped to --db-range; percentile: linear / scene --percentile")
    g.add_argument("--db-range", type=float, nargs=2, metavar=("LO", "HI"), help="dB range for db_clip (required with it), e.g. -25 0")
    g.add_argument("--percentile", type=float, default=99.0, help="scene percentile for percentile (default: 99)")
    g.add_argument("--quantize-levels", type=int, default=None, help="255 when trained on 8-bit data (default: none)")
    g.add_argument("--pixel-spacing", type=float, default=10.0, help="training pixel spacing in metres (default: 10)")
    g.add_argument("--frequency-band", choices=("C", "L", "X"), help="radar band of the training data")
    add_verbosity(q)
    q.set_defaults(func=_import, import_parser=q)
    return p
