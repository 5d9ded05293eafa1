"""Mixed precision for training: which ``torch.autocast`` dtype ``--amp`` means on this device."""

from __future__ import annotations

import torch

from ..engine.backends import resolve_precision
from ..errors import ConfigError


def autocast_for(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)``. CUDA: bf16 where supported, else fp16 with a
    scaler. CPU: bf16 when asked, and for ``auto`` where the CPU has hardware bfloat16 (AVX-512
    BF16 or AMX, :func:`~sar2opt_geo.engine.backends.resolve_precision`, which
    ``SAR2OPT_PRECISION=fp32|bf16`` pins): a training step of the U-Net 1.5-2x faster on this
    project's Xeon, and the trained model's fp32 validation PSNR within 0.06 dB of a float32 run
    of the same seed (docs/TRAINING.md "Mixed precision on the CPU"); float32 on other CPUs. fp16
    is not offered on CPU."""
    if amp == "none":
        return None, False
    if device.type == "cpu":
        if amp == "fp16":
            raise ConfigError("amp='fp16' (--amp fp16) runs on CUDA only; on the CPU use bf16 or none")
        if amp == "auto":
            amp = resolve_precision("auto", device)
        return (torch.bfloat16 if amp == "bf16" else None), False
    if device.type != "cuda":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True
