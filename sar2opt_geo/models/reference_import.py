"""Import a ``latest_net_G.pth`` of the reference CycleGAN-and-pix2pix code as a sar2opt_geo checkpoint.

The architectures live in :mod:`sar2opt_geo.models.reference`; this module adds the card and
writes the ``.safetensors`` file (:func:`sar2opt_geo.models.checkpoint.save_generator`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..version import __version__
from .card import InputDomain, ModelCard, OutputSpec
from .checkpoint import save_generator
from .reference import (
    REFERENCE_NETS,
    REFERENCE_OUTPUT_SCALING,
    detect_reference_architecture,
    load_reference_state_dict,
    strip_instance_norm_stats,
)
from .registry import build_generator

__all__ = ["import_reference_checkpoint", "reference_card"]

log = logging.getLogger(__name__)


def reference_card(
    name: str,
    architecture: str,
    architecture_args: dict[str, Any],
    input_domain: InputDomain,
    output: OutputSpec | None = None,
    description: str = "",
    source: str = "",
) -> ModelCard:
    """A model card for an imported reference generator; ``input_domain`` is what the user knows of the training data."""
    return ModelCard(
        name=name,
        architecture=architecture,
        architecture_args=dict(architecture_args),
        input=input_domain,
        output=output or OutputSpec(scaling=REFERENCE_OUTPUT_SCALING, sensor="optical"),
        description=description or "pix2pix generator imported from the reference CycleGAN-and-pix2pix code",
        training={"framework": "junyanz/pytorch-CycleGAN-and-pix2pix", "source_checkpoint": source},
        library_version=__version__,
    )


def import_reference_checkpoint(
    pth: str | os.PathLike,
    dst: str | os.PathLike,
    input_domain: InputDomain,
    *,
    name: str | None = None,
    net: str | None = None,
    output: OutputSpec | None = None,
    description: str = "",
) -> Path:
    """Convert a reference ``latest_net_G.pth`` into a sar2opt_geo ``.safetensors`` checkpoint.

    Args:
        pth: the reference generator state dict.
        dst: the ``.safetensors`` file to write (atomically).
        input_domain: sensor, bands, normalisation of the training data (the card's ``input``);
            a single band feeding a net trained on 3-channel gray copies is repeated.
        name: card name (default: the file stem).
        net: upstream ``--netG`` (``unet_256``, ``unet_128``, ``resnet_9blocks``, ``resnet_6blocks``)
            to check against; default: detected from the keys.
        output: what the output bands mean (default RGB, 8-bit training images).
    """
    pth = Path(pth)
    state = load_reference_state_dict(pth)
    architecture, args = detect_reference_architecture(state)
    if net is not None:
        if net not in REFERENCE_NETS:
            raise CheckpointError(f"{pth}: unknown --netG {net!r}; choose one of {', '.join(REFERENCE_NETS)}")
        want_arch, fixed = REFERENCE_NETS[net]
        if want_arch != architecture or any(args.get(k) != v for k, v in fixed.items()):
            raise CheckpointError(f"{pth}: weights look like {architecture} {args}, not {net}; drop the net option or fix it")
    n_in = len(input_domain.bands)
    if n_in not in (1, args["input_nc"]):
        raise CheckpointError(
            f"{pth}: the net takes {args['input_nc']} input channels but the card lists {n_in} bands; list 1 or {args['input_nc']}"
        )
    args["in_channels"] = n_in
    state = strip_instance_norm_stats(state, args["norm"])
    model = build_generator(architecture, **args)
    expected = model.state_dict()
    for k, v in expected.items():  # checkpoints from PyTorch < 0.4.1 lack num_batches_tracked
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros_like(v)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{pth}: weights do not fit {architecture} {args}; pass net= to check: {detail}") from None
    card = reference_card(name or pth.stem, architecture, args, input_domain, output, description, source=pth.name)
    log.info("imported %s as %s %s", pth, architecture, args)
    return save_generator(model, card, dst)
