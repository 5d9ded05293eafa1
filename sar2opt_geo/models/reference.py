"""Generators compatible with the reference PyTorch CycleGAN-and-pix2pix code.

Many users hold a ``latest_net_G.pth`` trained with that code (``--netG unet_256`` or
``resnet_9blocks``, ``--norm batch``). The classes here rebuild those networks with the
same module tree, so such a state dict loads key for key:

* :class:`ReferenceUnetGenerator` (``unet_256``: ``num_downs=8``; ``unet_128``: 7): nested
  skip blocks, keys ``model.model.0.weight`` (outermost down-conv),
  ``model.model.1.model.1.weight`` (next down-conv), ... Each block's ``model`` is
  ``[LeakyReLU, Conv4x4/2, Norm, <inner block>, ReLU, ConvT4x4/2, Norm (, Dropout)]``;
  the innermost has no inner block and no down-norm; the outermost is
  ``[Conv, <inner>, ReLU, ConvT, Tanh]``. Convs carry a bias only with instance norm,
  except the outermost up-conv which always has one. Input sides must be multiples of
  ``2 ** num_downs`` (256 for unet_256): :attr:`downsampling` tells the tiling engine.
* :class:`ReferenceResnetGenerator` (``resnet_9blocks`` / ``resnet_6blocks``): keys
  ``model.N...`` of one ``Sequential``: reflection pad 3, conv 7x7, norm, ReLU; two
  stride-2 convs; ``n_blocks`` residual blocks (``model.K.conv_block.M``); two transposed
  convs; reflection pad 3, conv 7x7, tanh. Dropout inside the residual blocks shifts the
  second conv from ``conv_block.5`` to ``conv_block.6``, so it is detected from the keys.

Conventions of the reference code kept here: input and output in [-1, 1] (images were
loaded as 8-bit and normalised with mean 0.5, std 0.5), tanh output, batch norm with
affine parameters, instance norm without (``affine=False, track_running_stats=False``;
older checkpoints' instance-norm running statistics are dropped on load, as upstream does).
A model trained on 3-channel copies of a gray SAR image (``--input_nc 3``, the default)
gets ``in_channels=1, input_nc=3``: the one band we feed is repeated to three.

Upstream's ``test.py`` runs the generator in *train* mode unless ``--eval`` is given (batch
statistics, dropout on); this library always runs in eval mode (running statistics), which
is what a tiled, georeferenced product needs; ``stochastic=True`` in the engine re-enables
dropout like the article.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, InputError

__all__ = [
    "REFERENCE_NETS",
    "ReferenceResnetGenerator",
    "ReferenceUnetGenerator",
    "ResnetBlock",
    "UnetSkipConnectionBlock",
    "detect_reference_architecture",
    "load_reference_state_dict",
    "strip_instance_norm_stats",
]

log = logging.getLogger(__name__)

Norm = Literal["batch", "instance"]

#: Upstream ``--netG`` names -> (our architecture name, fixed constructor arguments).
REFERENCE_NETS: dict[str, tuple[str, dict[str, int]]] = {
    "unet_256": ("pix2pix_unet", {"num_downs": 8}),
    "unet_128": ("pix2pix_unet", {"num_downs": 7}),
    "resnet_9blocks": ("pix2pix_resnet", {"n_blocks": 9}),
    "resnet_6blocks": ("pix2pix_resnet", {"n_blocks": 6}),
}

#: Output scaling of a model trained with the reference code on 8-bit images.
REFERENCE_OUTPUT_SCALING = "tanh output y in [-1, 1]; (y + 1) / 2 * 255 = 8-bit value of the training images"


def _norm(name: str) -> Callable[[int], nn.Module]:
    if name == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True)
    if name == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    raise ConfigError(f"unknown norm {name!r} for a reference pix2pix generator; choose batch or instance")


class _InputRepeat(nn.Module):
    """Shared front: repeat a single input band to the ``input_nc`` channels the net was trained on."""

    def _init_input(self, in_channels: int | None, input_nc: int) -> None:
        in_channels = input_nc if in_channels is None else in_channels
        if in_channels != input_nc and in_channels != 1:
            raise ConfigError(f"in_channels={in_channels} cannot feed a network with input_nc={input_nc}; use 1 or {input_nc}")
        self.in_channels = in_channels
        self.input_nc = input_nc

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels != self.input_nc:
            x = x.expand(-1, self.input_nc, -1, -1)
        return x


class UnetSkipConnectionBlock(nn.Module):
    """One level of the reference U-Net: ``x -> cat(x, up(inner(down(x))))`` (outermost: no cat)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: Norm = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        nf = _norm(norm)
        use_bias = norm == "instance"
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers: list[nn.Module] = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, nf(outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nf(inner_nc), submodule, nn.ReLU(True), upconv, nf(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class ReferenceUnetGenerator(_InputRepeat):
    """The reference ``UnetGenerator`` (``unet_256`` with ``num_downs=8``).

    Args:
        in_channels: bands this library feeds (1 may feed a net trained with ``input_nc=3``).
        out_channels: upstream ``output_nc`` (3 for RGB).
        num_downs: number of stride-2 levels; input sides must be multiples of ``2**num_downs``.
        ngf: filters of the outermost level (upstream ``--ngf``, default 64).
        norm: ``"batch"`` (pix2pix default) or ``"instance"``.
        use_dropout: Dropout(0.5) in the ``num_downs - 5`` innermost non-innermost levels.
        input_nc: channels the upstream net was trained with (default ``in_channels``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: Norm = "batch",
        use_dropout: bool = True,
        input_nc: int | None = None,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ConfigError(f"num_downs={num_downs}: the reference U-Net needs at least 5 levels")
        self._init_input(in_channels, in_channels if input_nc is None else input_nc)
        self.downsampling = 2**num_downs  # tile origins and sizes must be multiples of this
        # receptive radius in px (measured by input gradients: 511 for unet_256): the tile margin
        # the engine needs for seamless tiles; it warns when its margin is smaller
        self.receptive_margin = 2 ** (num_downs + 1) - 1
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, input_nc=self.input_nc, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` in [-1, 1] -> ``(N, out, H, W)`` in [-1, 1]; H, W multiples of :attr:`downsampling`."""
        return self.model(self._prepare(x))


class ResnetBlock(nn.Module):
    """The reference residual block: ``x + conv_block(x)``."""

    def __init__(self, dim: int, padding_type: str, norm: Norm, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        nf = _norm(norm)
        pads = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}
        if padding_type not in (*pads, "zero"):
            raise ConfigError(f"padding_type {padding_type!r}: choose reflect, replicate or zero")

        def pad() -> tuple[list[nn.Module], int]:
            return ([pads[padding_type](1)], 0) if padding_type in pads else ([], 1)

        layers, p = pad()
        layers += [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), nf(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        more, p = pad()
        layers += more + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), nf(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ReferenceResnetGenerator(_InputRepeat):
    """The reference ``ResnetGenerator`` (``resnet_9blocks`` with ``n_blocks=9``); sides multiples of 4."""

    downsampling = 4  # two stride-2 convolutions

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        n_blocks: int = 9,
        ngf: int = 64,
        norm: Norm = "batch",
        use_dropout: bool = False,
        padding_type: str = "reflect",
        input_nc: int | None = None,
    ) -> None:
        super().__init__()
        self._init_input(in_channels, in_channels if input_nc is None else input_nc)
        # receptive radius in px: 7x7 stem 3, two stride-2 convs 1 + 2, 8 per residual block
        # (two 3x3 convs at 1/4 resolution), up-convs and 7x7 head ~6 (58 measured for 6 blocks)
        self.receptive_margin = 10 + 8 * n_blocks
        nf = _norm(norm)
        use_bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(self.input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            nf(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                nf(ngf * mult * 2),
                nn.ReLU(True),
            ]
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ngf * 4, padding_type, norm, use_dropout, use_bias))
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias
                ),
                nf(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` in [-1, 1] -> ``(N, out, H, W)`` in [-1, 1]; H, W multiples of 4."""
        return self.model(self._prepare(x))


# -- loading ---------------------------------------------------------------------------------


def load_reference_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a reference ``*_net_G.pth`` without unpickling code (``weights_only=True``).

    Accepts a plain state dict or one nested under ``"state_dict"``; strips a ``module.``
    prefix (DataParallel); drops instance-norm running statistics of old checkpoints.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip/torch raise many types for a foreign file
        raise CheckpointError(f"{path}: not a plain PyTorch state dict (torch.load weights_only=True failed: {exc})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (a *_net_G.pth from CycleGAN-and-pix2pix)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state


def strip_instance_norm_stats(state: dict[str, torch.Tensor], norm: str) -> dict[str, torch.Tensor]:
    if norm != "instance":
        return state
    drop = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state.items() if not k.endswith(drop)}


def detect_reference_architecture(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """Infer ``(architecture, architecture_args)`` from reference state-dict keys and shapes.

    U-Net: ``model.model.0.weight`` is the outermost down-conv ``(ngf, input_nc, 4, 4)``; the
    number of levels is half the number of 4x4 kernels. ResNet: ``model.1.weight`` is the
    7x7 stem ``(ngf, input_nc, 7, 7)``; blocks are counted from ``model.K.conv_block``.
    Norm is ``batch`` when any 1-D ``.weight`` (an affine norm) exists, else ``instance``.
    ``in_channels`` is set to ``input_nc``; override it to feed fewer bands.
    """
    norm = "batch" if any(k.endswith(".weight") and v.ndim == 1 for k, v in state.items()) else "instance"
    w0 = state.get("model.model.0.weight")
    if w0 is not None and w0.ndim == 4 and tuple(w0.shape[2:]) == (4, 4):
        n4 = sum(1 for k, v in state.items() if k.endswith(".weight") and v.ndim == 4 and tuple(v.shape[2:]) == (4, 4))
        out = state["model.model.3.weight"]  # outermost ConvTranspose2d: (in, out, 4, 4)
        args = {
            "in_channels": int(w0.shape[1]),
            "out_channels": int(out.shape[1]),
            "num_downs": n4 // 2,
            "ngf": int(w0.shape[0]),
            "norm": norm,
            "use_dropout": True,  # pix2pix default; dropout has no weights, only matters in stochastic mode
            "input_nc": int(w0.shape[1]),
        }
        return "pix2pix_unet", args
    w1 = state.get("model.1.weight")
    if w1 is not None and w1.ndim == 4 and tuple(w1.shape[2:]) == (7, 7):
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        # with dropout the block's second conv (4-D weight) sits at index 6, else its norm does
        dropout = any(re.match(r"model\.\d+\.conv_block\.6\.weight$", k) and v.ndim == 4 for k, v in state.items())
        last = max(int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.weight$", k)))
        args = {
            "in_channels": int(w1.shape[1]),
            "out_channels": int(state[f"model.{last}.weight"].shape[0]),
            "n_blocks": len(blocks),
            "ngf": int(w1.shape[0]),
            "norm": norm,
            "use_dropout": dropout,
            "input_nc": int(w1.shape[1]),
        }
        return "pix2pix_resnet", args
    raise CheckpointError(
        "state dict matches neither the reference UnetGenerator (model.model.0.weight, 4x4) nor ResnetGenerator "
        "(model.1.weight, 7x7); pass the architecture explicitly"
    )
