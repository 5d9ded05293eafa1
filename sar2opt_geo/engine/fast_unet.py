"""An inference-only rewrite of the article's U-Net: same function, about 3x fewer FLOPs, 1/8 the memory.

:func:`optimise_for_inference` takes a loaded :class:`~sar2opt_geo.models.UNetGenerator` and
returns a :class:`FastUNet` built from its weights (the original is not changed). For any
other module, or a U-Net it cannot rewrite exactly (instance norm, BatchNorm without running
statistics, a subclass, changed layers), it returns the module unchanged.

What the rewrite does, and why it is exact (to float rounding)
    1. **Eval-mode BatchNorm folded into the convolution** before it:
       ``W' = W * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta`` (computed
       in float64). Dropout is dropped: the rewrite is for eval mode only (the engine keeps the
       original module for ``stochastic=True``).
    2. **Nearest upsampling by s followed by a 3x3 convolution = s*s small convolutions on
       the low-resolution input.** Output row ``y = s*Y + p`` of the convolution reads upsampled
       rows ``y - 1, y, y + 1``, i.e. low-resolution rows ``floor((p - 1)/s) + Y``,
       ``floor(p/s) + Y`` and ``floor((p + 1)/s) + Y``: for each phase ``p`` the three kernel
       rows fall on one or two low-resolution rows, and the kernel rows that fall on the same
       row are summed. For s = 4 the phases 0..3 touch low-res offsets {-1, 0}, {0}, {0},
       {0, +1}; phases 1 and 2 have the same kernel. So per axis 3 distinct patterns (2, 1, 2
       taps) instead of 4 x 3 taps, and the x4 decoder conv (``dec3``: 256 -> 64 channels,
       two thirds of the network's FLOPs) costs 25/144 of the original, as 9 convolutions at
       1/4 resolution whose outputs are interleaved into the full-resolution result; for
       s = 2 (``dec1``, ``dec2``) 4 convolutions with 2 x 2 kernels, 16/36. The zero padding
       of the original (one upsampled pixel outside the tile = one low-resolution pixel) is
       the same zero padding of the low-resolution input: tile borders map exactly too.
    3. **The last convolution over ``cat(dec3, enc1)`` split in two summed convolutions.**
       The ``enc1`` half is computed right after ``enc1``, so the 64-channel full-resolution
       ``enc1`` activation is freed before the decoder runs, and no 128-channel concatenation
       is ever made.

    Per output pixel at width 1: 75 k multiply-adds instead of 228 k; the largest live tensors
    are one 64-channel full-resolution map (256 bytes per pixel) instead of about 2.3 kB per
    pixel (the 256-channel upsampled input of ``dec3``, its output, BatchNorm's copy and the
    128-channel concatenation).

Exactness: ``tests/test_fast_unet.py`` checks max |difference| <= 1e-5 against the original
module on random inputs with random BatchNorm statistics (widths 1 and 0.25, 1 and 3 input
channels), and that tiled output still equals the original's whole-image pass.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..models.generator import UNetGenerator

__all__ = ["FastUNet", "UpsampleConv", "fold_batchnorm", "optimise_for_inference"]

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=nn.Module)


def fold_batchnorm(conv: nn.Conv2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias (float64) of ``norm(conv(x))`` as one convolution; ``norm`` is eval BatchNorm or Identity."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if isinstance(norm, nn.Identity):
        return w, b
    assert isinstance(norm, nn.BatchNorm2d)
    assert norm.running_var is not None and norm.running_mean is not None
    scale = torch.rsqrt(norm.running_var.detach().double() + norm.eps)
    shift = -norm.running_mean.detach().double() * scale
    if norm.affine:
        scale = scale * norm.weight.detach().double()
        shift = shift * norm.weight.detach().double() + norm.bias.detach().double()
    return w * scale[:, None, None, None], b * scale + shift


def _axis_patterns(scale: int) -> list[tuple[tuple[int, ...], int, list[list[int]]]]:
    """Per axis, the distinct phase patterns of a 3-tap kernel after nearest upsampling by ``scale``.

    Returns ``[(phases, first_offset, taps)]``: the output phases sharing the pattern, the
    first low-resolution offset it reads (-1 or 0), and for each low-resolution offset in order
    the kernel indices (0, 1, 2 for -1, 0, +1) that fall on it.
    """
    patterns: dict[tuple[int, tuple[tuple[int, ...], ...]], list[int]] = {}
    for p in range(scale):
        offsets: dict[int, list[int]] = {}
        for k in range(3):
            offsets.setdefault(math.floor((p + k - 1) / scale), []).append(k)
        first = min(offsets)
        key = (first, tuple(tuple(offsets[o]) for o in sorted(offsets)))
        patterns.setdefault(key, []).append(p)
    return [(tuple(ph), first, [list(t) for t in taps]) for (first, taps), ph in patterns.items()]


class UpsampleConv(nn.Module):
    """``act(conv3x3(upsample_nearest(x, scale)))`` computed as phase convolutions at low resolution.

    Built from a 3x3, padding-1 convolution's (BatchNorm-folded) weights. The activation is
    ReLU (``negative_slope=0``) or LeakyReLU, applied to the small outputs before they are
    interleaved.
    """

    bias: torch.Tensor  # registered buffer

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: int, relu: bool = True) -> None:
        super().__init__()
        if weight.shape[2:] != (3, 3):
            raise ConfigError(f"UpsampleConv needs a 3x3 kernel, got {tuple(weight.shape[2:])}")
        self.scale, self.relu = int(scale), relu
        self.out_channels = int(weight.shape[0])
        axis = _axis_patterns(self.scale)
        self.row_phases: list[tuple[int, ...]] = []
        self.col_phases: list[tuple[int, ...]] = []
        self.paddings: list[tuple[int, int]] = []
        self.combo: dict[tuple[int, int], int] = {}  # output phase (row, col) -> index of its convolution
        self.starts: list[tuple[int, int]] = []
        w64 = weight.double()
        for r_ph, r_first, r_taps in axis:
            for c_ph, c_first, c_taps in axis:
                k = torch.stack([
                    torch.stack([w64[:, :, rt][:, :, :, ct].sum(dim=(2, 3)) for ct in c_taps], dim=-1)
                    for rt in r_taps
                ], dim=-2)  # (out, in, rows, cols)
                idx = len(self.row_phases)
                for p in r_ph:
                    for q in c_ph:
                        self.combo[p, q] = idx
                self.register_buffer(f"weight{idx}", k.float().contiguous())
                self.row_phases.append(r_ph)
                self.col_phases.append(c_ph)
                # a 2-tap axis is padded by 1 on both sides (H + 1 outputs; offsets (-1, 0) start at
                # output 0, offsets (0, +1) at output 1); a 1-tap axis needs no padding
                self.paddings.append((len(r_taps) - 1, len(c_taps) - 1))
                self.starts.append((0 if r_first < 0 or len(r_taps) == 1 else 1, 0 if c_first < 0 or len(c_taps) == 1 else 1))
        self.register_buffer("bias", bias.float().contiguous())

    def phases(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The distinct low-resolution phase maps (after the activation), in the order of :attr:`combo`'s indices."""
        _, _, h, w = x.shape
        maps = []
        for idx in range(len(self.row_phases)):
            y = F.conv2d(x, getattr(self, f"weight{idx}"), self.bias, padding=self.paddings[idx])
            r0, c0 = self.starts[idx]
            y = y[:, :, r0 : r0 + h, c0 : c0 + w]
            if self.relu:
                y = F.relu(y) if torch.onnx.is_in_onnx_export() else y.relu_()
            maps.append(y)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s, c = self.scale, self.out_channels
        export = torch.onnx.is_in_onnx_export()
        cl = not export and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        out = None
        if not export:  # interleave by strided assignment into the full-resolution result
            out = x.new_empty((n, h, s, w, s, c)) if cl else x.new_empty((n, c, h, s, w, s))
        phases: dict[tuple[int, int], torch.Tensor] = {}
        for idx, (r_ph, c_ph) in enumerate(zip(self.row_phases, self.col_phases)):
            y = F.conv2d(x, getattr(self, f"weight{idx}"), self.bias, padding=self.paddings[idx])
            r0, c0 = self.starts[idx]
            y = y[:, :, r0 : r0 + h, c0 : c0 + w]
            y = F.relu(y) if self.relu else y
            rs, cs = slice(r_ph[0], r_ph[-1] + 1), slice(c_ph[0], c_ph[-1] + 1)
            if out is None:
                for p in r_ph:
                    for q in c_ph:
                        phases[p, q] = y
            elif cl:
                out[:, :, rs, :, cs, :] = y.permute(0, 2, 3, 1)[:, :, None, :, None, :]
            else:
                out[:, :, :, rs, :, cs] = y[:, :, :, None, :, None]
        if out is None:  # ONNX export: stack + reshape (DepthToSpace-like), no in-place slice assignment
            rows = [torch.stack([phases[p, q] for q in range(s)], dim=-1) for p in range(s)]  # (n, c, h, w, s)
            return torch.stack(rows, dim=3).reshape(n, c, h * s, w * s)
        if cl:
            return out.view(n, h * s, w * s, c).permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
        return out.view(n, c, h * s, w * s)


class PhaseConv(nn.Module):
    """A ``k x k`` convolution (odd ``k``, zero padding ``k // 2``, no bias) over a map given as phase maps.

    The input is a full-resolution map ``d`` known only through :meth:`UpsampleConv.phases`:
    ``d[s*Y + p, s*X + q] = maps[combo[p, q]][Y, X]``. Output phase ``(p, q)`` at low-resolution
    ``(Y, X)`` reads ``d`` at ``s*Y + p + dy`` for ``|dy| <= k // 2``, i.e. map
    ``combo[(p + dy) % s, ...]`` at low-resolution offset ``(p + dy) // s``: one low-resolution
    convolution per phase map, with ``s*s*out`` output channels, summed, then
    ``pixel_shuffle(s)``. Zero padding of ``d`` is zero padding of the maps (``s`` divides the
    tile). For the article's last layer (5x5 over 64 channels to 3, ``s = 4``) this replaces a
    full-resolution 64-channel tensor and a conv with 3 output channels (which runs at a
    fraction of the machine's speed) by nine well-shaped GEMMs at 1/4 resolution.
    """

    def __init__(self, weight: torch.Tensor, combo: dict[tuple[int, int], int], scale: int) -> None:
        super().__init__()
        out, cin, kh, kw = weight.shape
        if kh != kw or kh % 2 == 0:
            raise ConfigError(f"PhaseConv needs an odd square kernel, got {kh}x{kw}")
        s, r = int(scale), kh // 2
        self.scale, self.out_channels = s, int(out)
        n_maps = max(combo.values()) + 1
        w64 = weight.double()
        kernels: dict[int, dict[tuple[int, int], torch.Tensor]] = {}
        for p in range(s):
            for q in range(s):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        k = combo[(p + dy) % s, (q + dx) % s]
                        off = ((p + dy) // s, (q + dx) // s)
                        acc = kernels.setdefault(k, {})
                        if off not in acc:
                            acc[off] = torch.zeros(out * s * s, cin, dtype=torch.float64)
                        acc[off][torch.arange(out) * s * s + p * s + q] += w64[:, :, dy + r, dx + r]
        self.offsets: list[tuple[int, int]] = []  # per map: lowest (row, col) offset read
        self.paddings: list[tuple[int, int]] = []
        for k in range(n_maps):
            offs = kernels[k]
            r_lo, r_hi = min(o[0] for o in offs), max(o[0] for o in offs)
            c_lo, c_hi = min(o[1] for o in offs), max(o[1] for o in offs)
            kern = torch.zeros(out * s * s, cin, r_hi - r_lo + 1, c_hi - c_lo + 1, dtype=torch.float64)
            for (a, b), wk in offs.items():
                kern[:, :, a - r_lo, b - c_lo] = wk
            self.register_buffer(f"weight{k}", kern.float().contiguous())
            self.offsets.append((r_lo, c_lo))
            self.paddings.append((max(-r_lo, r_hi), max(-c_lo, c_hi)))

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        _, _, h, w = maps[0].shape
        z: torch.Tensor | None = None
        for k, m in enumerate(maps):
            y = F.conv2d(m, getattr(self, f"weight{k}"), padding=self.paddings[k])
            r0, c0 = self.offsets[k][0] + self.paddings[k][0], self.offsets[k][1] + self.paddings[k][1]
            y = y[:, :, r0 : r0 + h, c0 : c0 + w]
            z = y if z is None else z + y
        assert z is not None
        return F.pixel_shuffle(z, self.scale)


def _layer(seq: nn.Sequential, index: int, kind: type[_M]) -> _M:
    """Layer ``index`` of ``seq``, known (checked by :func:`_is_article_unet`) to be a ``kind``."""
    layer = seq[index]
    assert isinstance(layer, kind)
    return layer


def _fold(seq: nn.Sequential, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fold_batchnorm` of the convolution at ``index`` of ``seq`` and the norm after it."""
    return fold_batchnorm(_layer(seq, index, nn.Conv2d), seq[index + 1])


class _PresetConv2d(nn.Conv2d):
    """A ``Conv2d`` whose weights the caller sets: no random initialisation, so building the rewrite
    leaves the global random state alone (``torch.nn.utils.skip_init`` does the same through the
    meta device, whose first use imports sympy: a third of a second per process)."""

    def reset_parameters(self) -> None:
        """Nothing: the weights are copied in right after construction."""


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> nn.Conv2d:
    kh, kw = weight.shape[2:]
    conv = _PresetConv2d(weight.shape[1], weight.shape[0], (kh, kw), padding=padding, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        if bias is not None and conv.bias is not None:
            conv.bias.copy_(bias.float())
    return conv.requires_grad_(False)


class FastUNet(nn.Module):
    """Eval-mode equivalent of :class:`~sar2opt_geo.models.UNetGenerator`; build it with :func:`optimise_for_inference`.

    Has the same ``downsampling`` (16) and ``receptive_margin`` (47) as the original, and
    ``in_channels``/``out_channels``; no dropout (deterministic only).
    """

    downsampling = 16
    receptive_margin = 47

    def __init__(self, src: UNetGenerator) -> None:
        super().__init__()
        e1w, e1b = _fold(src.enc1, 0)
        self.enc1 = _conv(e1w, e1b, 2)
        self.slopes = tuple(
            float(_layer(src_enc, -1, nn.LeakyReLU).negative_slope) for src_enc in (src.enc1, src.enc2, src.enc3, src.enc4)
        )
        self.enc2 = _conv(*_fold(src.enc2, 1), 1)
        self.enc3 = _conv(*_fold(src.enc3, 1), 1)
        self.enc4 = _conv(*_fold(src.enc4, 1), 1)
        self.dec1 = UpsampleConv(*_fold(src.dec1, 1), scale=2)
        self.dec2 = UpsampleConv(*_fold(src.dec2, 1), scale=2)
        self.dec3 = UpsampleConv(*_fold(src.dec3, 1), scale=4)
        last = _layer(src.dec4, 0, nn.Conv2d)
        c1 = _layer(src.dec3, 1, nn.Conv2d).out_channels
        w = last.weight.detach()
        b = last.bias.detach() if last.bias is not None else None
        self.out_d3 = PhaseConv(w[:, :c1], self.dec3.combo, 4)  # dec4 over the dec3 half, on dec3's phase maps
        self.out_e1 = _conv(w[:, c1:], b, 2)  # ... and over the enc1 half, with the bias
        self.in_channels = int(e1w.shape[1])
        self.out_channels = int(w.shape[0])
        self.channels_last = False
        self.eval()

    @property
    def activation_bytes_per_pixel(self) -> float:
        """Peak activation memory per input pixel of one forward pass, bytes (for the memory planner).

        The peak is at ``enc1``: input, the full-resolution ``enc1`` map and the two
        out-channel maps (its share of the last conv, the output), plus 25 % for oneDNN
        reorders and the small low-resolution maps. Measured on a 512 x 512 pass: peak RSS
        growth 256 B/px at width 1 and 46 at width 1/4, peak live tensor bytes 327 and 111;
        this gives 371 and 131 (``tests/test_planner.py`` checks it stays above the probe).
        """
        c1 = self.enc1.out_channels
        return 4.0 * (self.in_channels + c1 + 2 * self.out_channels) * 1.25 + 16.0

    def set_channels_last(self, enabled: bool = True) -> FastUNet:
        """Run in channels-last memory format (weights and activations); returns ``self``.

        Faster with oneDNN on CPU (measured 2x for this network on AVX-512: its 3- and
        64-output-channel convolutions are far better served in NHWC); output stays NCHW.
        """
        self.channels_last = bool(enabled)
        # torch's stubs for Module.to list no memory_format overload, though Module.to accepts it
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` in [-1, 1] -> ``(N, out, H, W)``; H, W multiples of 16 (as the original)."""
        s1, s2, s3, s4 = self.slopes
        if self.channels_last and not torch.onnx.is_in_onnx_export():
            x = x.contiguous(memory_format=torch.channels_last)
        e1 = F.leaky_relu(self.enc1(x), s1, inplace=True)
        tail = self.out_e1(e1)  # (N, out, H, W): enc1's share of the last conv; e1 can go now
        e2 = F.leaky_relu(self.enc2(F.avg_pool2d(e1, 4)), s2, inplace=True)
        del e1
        e3 = F.leaky_relu(self.enc3(F.avg_pool2d(e2, 2)), s3, inplace=True)
        e4 = F.leaky_relu(self.enc4(F.avg_pool2d(e3, 2)), s4, inplace=True)
        d1 = self.dec1(e4)
        d2 = self.dec2(torch.cat([d1, e3], 1))
        d3 = self.dec3.phases(torch.cat([d2, e2], 1))  # dec3 never materialised at full resolution
        return torch.tanh(self.out_d3(d3) + tail).contiguous()


def _is_article_unet(module: nn.Module) -> str | None:
    """None if ``module`` is an article U-Net this rewrite reproduces exactly, else the reason it is not."""
    from ..models.generator import UNetGenerator

    if type(module) is not UNetGenerator:
        return f"{type(module).__name__} is not the article's UNetGenerator"

    def norm_ok(m: nn.Module) -> bool:
        if isinstance(m, nn.Identity):
            return True
        return type(m) is nn.BatchNorm2d and m.track_running_stats and m.running_mean is not None

    def conv_ok(m: nn.Module, k: int) -> bool:
        return (type(m) is nn.Conv2d and m.kernel_size == (k, k) and m.stride == (1, 1) and m.padding == (k // 2, k // 2)
                and m.dilation == (1, 1) and m.groups == 1 and m.padding_mode == "zeros")

    for name, k, pool in (("enc1", 5, 1), ("enc2", 3, 4), ("enc3", 3, 2), ("enc4", 3, 2)):
        seq = list(getattr(module, name, []))
        if pool > 1:
            if not seq or type(seq[0]) is not nn.AvgPool2d or seq[0].kernel_size != pool or seq[0].stride != pool \
                    or seq[0].padding != 0 or seq[0].ceil_mode:
                return f"{name} does not start with AvgPool2d({pool})"
            seq = seq[1:]
        if len(seq) != 3 or not conv_ok(seq[0], k) or not norm_ok(seq[1]) or type(seq[2]) is not nn.LeakyReLU:
            return f"{name} is not conv{k} + BatchNorm/Identity + LeakyReLU"
    for name, up in (("dec1", 2), ("dec2", 2), ("dec3", 4)):
        seq = list(getattr(module, name, []))
        if len(seq) < 4 or type(seq[0]) is not nn.Upsample or seq[0].mode != "nearest" or seq[0].size is not None \
                or not isinstance(seq[0].scale_factor, float) or seq[0].scale_factor != up \
                or not conv_ok(seq[1], 3) or not norm_ok(seq[2]):
            return f"{name} is not nearest upsample x{up} + conv3 + BatchNorm/Identity"
        rest = seq[3:]
        if rest and isinstance(rest[0], nn.Dropout2d):
            rest = rest[1:]
        if len(rest) != 1 or type(rest[0]) is not nn.ReLU:
            return f"{name} does not end with (Dropout2d +) ReLU"
    seq = list(getattr(module, "dec4", []))
    if len(seq) != 2 or not conv_ok(seq[0], 5) or type(seq[1]) is not nn.Tanh:
        return "dec4 is not conv5 + Tanh"
    if seq[0].in_channels != 2 * _layer(module.dec3, 1, nn.Conv2d).out_channels:
        return "dec4 does not take cat(dec3, enc1)"
    return None


def optimise_for_inference(module: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """An eval-mode equivalent of ``module`` that runs faster and in less memory, or ``module`` itself.

    The article's :class:`~sar2opt_geo.models.UNetGenerator` becomes a :class:`FastUNet`
    (see the module docstring) on the same device and dtype, in channels-last memory format
    unless ``channels_last=False``; anything else is returned unchanged. Dropout is not part
    of the rewrite: for stochastic inference use the original.
    """
    reason = _is_article_unet(module)  # None: module is exactly a UNetGenerator
    if reason is not None:
        logger.debug("no inference rewrite: %s", reason)
        return module
    p = next(module.parameters())
    with torch.no_grad():
        fast = FastUNet(cast("UNetGenerator", module)).to(device=p.device, dtype=p.dtype).set_channels_last(channels_last)
    return fast.requires_grad_(False)
