"""Self-describing generator checkpoints.

A checkpoint is a ``.safetensors`` file: the generator's CPU state dict plus, in the
safetensors header metadata, ``format = "sar2opt_geo.generator"`` and the model card as
JSON. Loading never unpickles anything. Training state (optimisers, epoch) lives in a
separate ``.pt`` file read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, InputError
from .card import ModelCard

__all__ = [
    "DEFAULT_MODELS",
    "FORMAT",
    "card_hash",
    "default_model_path",
    "load_checkpoint",
    "load_model",
    "read_card",
    "save_generator",
]

FORMAT = "sar2opt_geo.generator"
FORMAT_VERSION = "1"
WEIGHTS_DIR = Path(__file__).with_name("weights")

#: Bundled default generators, by short name.
DEFAULT_MODELS = {
    "sar": "s1vh_to_rgb.safetensors",
    "gray": "gray_to_rgb.safetensors",
}


def default_model_path(kind: str = "sar") -> Path:
    """Path of a bundled generator: ``"sar"`` (Sentinel-1 VH -> RGB) or ``"gray"`` (gray -> RGB)."""
    try:
        return WEIGHTS_DIR / DEFAULT_MODELS[kind]
    except KeyError:
        raise ConfigError(f"unknown default model {kind!r}; choose one of {', '.join(DEFAULT_MODELS)}") from None


def save_generator(model: nn.Module, card: ModelCard, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and ``card`` to ``path`` atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "format_version": FORMAT_VERSION, "card": card.to_json()})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the writer creates 0600 files; give the usual permissions
    os.replace(tmp, path)
    return path


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not path.exists():
        raise InputError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for junk input
        raise CheckpointError(
            f"{path}: not a sar2opt_geo checkpoint (expected a .safetensors file with a model card): {exc}"
        ) from None
    if meta.get("format") != FORMAT or "card" not in meta:
        raise CheckpointError(f"{path}: safetensors file without a sar2opt_geo model card (format={meta.get('format')!r})")
    return meta


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read only the model card of a checkpoint (no weights loaded)."""
    path = Path(path)
    meta = _header(path)
    try:
        return ModelCard.from_json(meta["card"])
    except Exception as exc:  # noqa: BLE001 - any malformed card is one CheckpointError
        raise CheckpointError(f"{path}: model card is malformed: {exc}") from None


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Return ``(state_dict, card)`` from a checkpoint, without unpickling."""
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    return load_file(str(path)), card


def load_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Build the generator a checkpoint describes, load its weights, and put it in eval mode.

    ``path=None`` loads the bundled Sentinel-1 -> RGB generator.
    """
    from . import build_generator

    path = Path(path) if path is not None else default_model_path("sar")
    state, card = load_checkpoint(path)
    try:
        model = build_generator(card.architecture, **card.architecture_args)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any mismatch is one CheckpointError naming the file
        raise CheckpointError(f"{path}: weights do not match the card's architecture {card.architecture!r}: {exc}") from None
    return model.to(device).eval(), card


def card_hash(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of the checkpoint file: identifies weights and card together."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
