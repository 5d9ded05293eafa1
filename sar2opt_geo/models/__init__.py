"""Generators, discriminators, model cards and checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .card import InputDomain, ModelCard, OutputSpec
from .discriminator import PatchDiscriminator
from .generator import UNetGenerator
from .resnet_lite import ResNetLiteGenerator

__all__ = [
    "GENERATORS",
    "InputDomain",
    "ModelCard",
    "OutputSpec",
    "PatchDiscriminator",
    "ResNetLiteGenerator",
    "UNetGenerator",
    "build_generator",
]

#: Generator constructors by architecture name (the card's ``architecture``).
GENERATORS: dict[str, Callable[..., nn.Module]] = {"unet_article": UNetGenerator, "resnet_lite": ResNetLiteGenerator}
from .reference import register as _register_reference; _register_reference(GENERATORS)  # noqa: I001


def build_generator(architecture: str, **kwargs: Any) -> nn.Module:
    """Build a generator by name with the card's ``architecture_args``."""
    if architecture not in GENERATORS:
        raise ValueError(f"unknown generator architecture {architecture!r}; known: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[architecture](**kwargs)
