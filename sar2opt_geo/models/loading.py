"""The one model resolver: checkpoint paths, bundled short names and loaded models -> :class:`LoadedModel`.

Every command that runs a generator (``translate``, ``batch``, ``composite``, ``evaluate``,
``experiment``, ``export-onnx``) resolves its model here, so they all accept the same
things:

* a checkpoint path (``.safetensors`` with a model card);
* a bundled short name: ``"sar"`` (Sentinel-1 VH -> RGB) or ``"gray"`` (gray -> RGB);
* None: the bundled default for the scene type (``kind``);
* an already loaded :class:`LoadedModel` (or the older ``(module, card)`` /
  ``(module, card, card_hash)`` tuples).

``cache=True`` keeps loaded checkpoints per process (keyed by path, device, file size and
modification time), so a batch or a Dask worker loads each model once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError
from . import checkpoint
from .card import ModelCard
from .checkpoint import DEFAULT_MODELS, card_hash, load_model
from .downsampling import model_downsampling

__all__ = ["LoadedModel", "ModelSpec", "file_stamp", "load", "load_model_cached", "resolve_model_path"]

log = logging.getLogger(__name__)

ModelSpec = Any  # str | os.PathLike | LoadedModel | tuple | None (see the module docstring)
Kind = Literal["sar", "gray"]


@dataclass(frozen=True)
class LoadedModel:
    """A generator ready to run, with what identifies it.

    Attributes:
        module: the generator in eval mode.
        card: its model card (input domain, output bands, training, metrics).
        card_hash: 16 hex digits identifying weights and card (the checkpoint file's SHA-256
            prefix, or a hash of the state dict and card for an in-memory model).
        path: the checkpoint file, None for an in-memory model.
    """

    module: nn.Module
    card: ModelCard
    card_hash: str
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def downsampling(self) -> int:
        """Total downsampling factor (tile alignment, pixels): ``module.downsampling``, else 16."""
        return model_downsampling(self.module)

    @property
    def receptive_margin(self) -> int | None:
        """Pixels an output pixel depends on beyond a tile edge, if the architecture declares it."""
        value = getattr(self.module, "receptive_margin", None)
        return int(value) if value is not None else None

    def to(self, device: str | torch.device) -> LoadedModel:
        """The same model on ``device``, in eval mode (moves the module in place, as ``nn.Module.to``)."""
        self.module.to(device).eval()
        return self


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A bundled model's short name (``"sar"``, ``"gray"``) to its path; anything else is taken as a path."""
    return checkpoint.default_model_path(str(model)) if str(model) in DEFAULT_MODELS else Path(model)


def _tensor_hash(module: nn.Module, card: ModelCard) -> str:
    h = hashlib.sha256(card.to_json().encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def file_stamp(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of a file, None if missing: caches keyed by path notice a replaced file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str, stamp: tuple[int, int] | None) -> LoadedModel:
    log.info("loading model %s on %s (pid %d)", path, device, os.getpid())
    return _load_file(Path(path), device)


def _load_file(path: Path, device: str | torch.device) -> LoadedModel:
    module, card = load_model(path, device)
    return LoadedModel(module, card, card_hash(path), path)


def load_model_cached(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """A checkpoint loaded once per process (per Dask worker), keyed by path, device and the file's
    size and mtime. ``cache_info()`` / ``cache_clear()`` as :func:`functools.lru_cache`."""
    path = resolve_model_path(path)
    return _load_cached(str(path), str(device), file_stamp(path))


load_model_cached.cache_info = _load_cached.cache_info  # type: ignore[attr-defined]
load_model_cached.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]


def load(model: ModelSpec = None, device: str | torch.device = "cpu", *, kind: Kind = "sar",
         cache: bool = False) -> LoadedModel:
    """Resolve ``model`` (see the module docstring) to a :class:`LoadedModel` on ``device``.

    Args:
        model: path, bundled short name, None, :class:`LoadedModel` or a ``(module, card[, hash])`` tuple.
        device: torch device for the module.
        kind: the bundled default used when ``model`` is None: ``"sar"`` or ``"gray"``.
        cache: keep the loaded checkpoint for later calls in this process.

    Raises:
        CheckpointError: not a checkpoint, a tuple of the wrong form, tensors that do not match the
            card's architecture, or NaN/Inf weights (naming the file, or the in-memory model's card name).
        InputError: the file does not exist.
    """
    if isinstance(model, LoadedModel):
        return model.to(device)
    if isinstance(model, (tuple, list)):
        if len(model) not in (2, 3) or not isinstance(model[1], ModelCard):
            raise CheckpointError(
                f"model tuple must be (module, ModelCard) or (module, ModelCard, hash), got "
                f"{', '.join(type(m).__name__ for m in model)}")
        module, card = model[0], model[1]
        if isinstance(module, nn.Module):  # NaN/Inf weights are the model's fault, not the input's: say so now
            checkpoint.check_finite(f"in-memory model {card.name!r}", dict(module.state_dict()))
        chash = str(model[2]) if len(model) == 3 else _tensor_hash(module, card)
        return LoadedModel(module.to(device).eval(), card, chash, None)
    if model is None:
        path = checkpoint.default_model_path(kind)
        log.info("model: bundled %s (%s)", path.name, kind)
    else:
        path = resolve_model_path(model)
    return load_model_cached(path, str(device)) if cache else _load_file(path, device)
