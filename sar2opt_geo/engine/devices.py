"""Choosing the torch device, in one place for inference, training and evaluation."""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> this process's CUDA GPU if torch sees one (``LOCAL_RANK``'s under torchrun), else CPU.

    Other values (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...) are checked: a CUDA device without a
    GPU, or a name torch does not know, raises :class:`~sar2opt_geo.errors.ConfigError`.
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or "auto").strip().lower()
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local_rank)) if local_rank is not None else torch.device("cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
