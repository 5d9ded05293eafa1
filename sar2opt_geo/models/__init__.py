"""Generators, discriminators, model cards and checkpoints."""

from __future__ import annotations

from .card import InputDomain, ModelCard, OutputSpec
from .discriminator import PatchDiscriminator
from .generator import UNetGenerator
from .registry import GENERATORS, build_generator
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
