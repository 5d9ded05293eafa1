"""Generator constructors by architecture name (a checkpoint card's ``architecture``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import CheckpointError
from .generator import UNetGenerator
from .reference import ReferenceResnetGenerator, ReferenceUnetGenerator
from .resnet_lite import ResNetLiteGenerator

__all__ = ["GENERATORS", "build_generator"]

#: Generator constructors by architecture name (the card's ``architecture``), listed here explicitly.
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_article": UNetGenerator,
    "resnet_lite": ResNetLiteGenerator,
    "pix2pix_unet": ReferenceUnetGenerator,
    "pix2pix_resnet": ReferenceResnetGenerator,
}


def build_generator(architecture: str, **kwargs: Any) -> nn.Module:
    """Build a generator by name with the card's ``architecture_args``."""
    if architecture not in GENERATORS:
        raise CheckpointError(f"unknown generator architecture {architecture!r}; known: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[architecture](**kwargs)
