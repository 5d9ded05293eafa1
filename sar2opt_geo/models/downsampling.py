"""How much a generator downsamples: input sides must be multiples of it (the tiling engine asks)."""

from __future__ import annotations

from torch import nn

__all__ = ["DEFAULT_DOWNSAMPLING", "model_downsampling"]

DEFAULT_DOWNSAMPLING = 16
"""Total downsampling of a generator that does not say (the article's U-Net: 4 stride-2 stages)."""


def model_downsampling(model: nn.Module) -> int:
    """The model's total downsampling factor: ``model.downsampling`` if present, else 16."""
    value = getattr(model, "downsampling", None)
    return int(value) if value else DEFAULT_DOWNSAMPLING
