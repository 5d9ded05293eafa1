"""Self-describing generator checkpoints.

A checkpoint is a ``.safetensors`` file: the generator's CPU state dict plus, in the
safetensors header metadata, ``format = "sar2opt_geo.generator"`` and the model card as
JSON. Loading never unpickles anything. Training state (optimisers, epoch) lives in a
separate ``.pt`` file read with ``torch.load(weights_only=True)``.

Loading checks, each failure one :class:`~sar2opt_geo.errors.CheckpointError` naming the file:

1. the header: a safetensors file with ``format`` and a valid card;
2. the tensors' names and shapes (read from the header, no weights loaded) against the state
   dict the card's architecture implies, built on the ``meta`` device (no memory): a card
   whose ``architecture_args`` were edited (say ``width`` 64 over width-1/8 weights) is refused
   before any module is allocated;
3. every floating-point tensor is finite: NaN/Inf weights (a diverged training run, a damaged
   file) are blamed on the checkpoint, not on the input the model would be run on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, InputError
from .card import ModelCard
from .registry import build_generator

__all__ = [
    "DEFAULT_MODELS",
    "FORMAT",
    "card_hash",
    "check_finite",
    "check_tensor_shapes",
    "default_model_path",
    "expected_shapes",
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

    from ..io.atomic import atomic_file

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "format_version": FORMAT_VERSION, "card": card.to_json()})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the writer creates 0600 files; give the usual permissions
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


def _file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header (no tensor data read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(int(n) for n in f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - no dict
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged header
        raise CheckpointError(f"{path}: the tensor table cannot be read ({exc}); the file is damaged: "
                              "copy or export it again") from None


def expected_shapes(card: ModelCard, source: str | os.PathLike = "") -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes the card's architecture implies, from a module built on the ``meta``
    device (no memory is allocated, whatever ``architecture_args`` say)."""
    where = f"{source}: " if source else ""
    try:
        with torch.device("meta"):
            module = build_generator(card.architecture, **card.architecture_args)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}{exc}") from None
    except Exception as exc:  # noqa: BLE001 - any constructor failure is one CheckpointError naming the file
        raise CheckpointError(f"{where}the card's architecture {card.architecture!r} with architecture_args "
                              f"{_args_text(card)} cannot be built: {exc}") from None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _args_text(card: ModelCard) -> str:
    return json.dumps(card.architecture_args, sort_keys=True, default=str)


def _values(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())


def check_tensor_shapes(path: str | os.PathLike, card: ModelCard) -> None:
    """:class:`CheckpointError` unless the file's tensors have the names and shapes the card's
    architecture implies; reads the header only and builds nothing but a ``meta`` module."""
    path = Path(path)
    expected = expected_shapes(card, path)
    found = _file_shapes(path)
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    if not (missing or unexpected or wrong):
        return
    details = []
    if wrong:
        k = wrong[0]
        details.append(f"{len(wrong)} tensor(s) of another shape, e.g. {k} is {list(found[k])} where the card "
                       f"implies {list(expected[k])}")
    if missing:
        details.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if unexpected:
        details.append(f"{len(unexpected)} not in the architecture, e.g. {unexpected[0]}")
    raise CheckpointError(
        f"{path}: weights do not match the card's architecture {card.architecture!r} {_args_text(card)}: the card "
        f"implies {len(expected)} tensors of {_values(expected):,} values, the file holds {len(found)} of "
        f"{_values(found):,} ({'; '.join(details)}); the card or the weights were changed after saving: use the "
        "checkpoint as training wrote it (or save_generator the right module with its card)"
    )


def check_finite(path: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """:class:`CheckpointError` naming ``path`` (a file, or any name for the weights) and the first
    tensor of ``state`` holding NaN or Inf values."""
    bad = []
    for name, t in state.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad.append(name)
    if bad:
        t = state[bad[0]]
        n = int((~torch.isfinite(t)).sum())
        more = f" (and {len(bad) - 1} more tensor(s))" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{path}: tensor {bad[0]} holds {n} NaN/Inf value(s) of {t.numel()}{more}; the weights are corrupt "
            "(a diverged training run or a damaged file), not the input: use an earlier checkpoint or retrain"
        )


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Return ``(state_dict, card)`` from a checkpoint, without unpickling.

    The tensors' names and shapes are checked against the card's architecture before any
    tensor is read, and every floating-point tensor must be finite (see the module docstring).
    """
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    check_tensor_shapes(path, card)
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated file fails here with safetensors' own types
        raise CheckpointError(f"{path}: the weights cannot be read ({exc}); the file is truncated or damaged: "
                              "copy or export it again") from None
    check_finite(path, state)
    return state, card


def load_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Build the generator a checkpoint describes, load its weights, and put it in eval mode.

    ``path=None`` loads the bundled Sentinel-1 -> RGB generator.
    """
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
