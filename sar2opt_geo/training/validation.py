"""The validation of a training run (:func:`sar2opt_geo.training.trainer.train`), on rank 0.

* before the first epoch: the constant-colour baseline on the validation split (``baseline.json``);
* after each epoch: the validation metrics (:func:`~sar2opt_geo.training.evaluate.evaluate_generator`)
  into the epoch's log row, the sample grid ``samples/epoch_NNNN.png`` (input | generated |
  real), the epoch's log line, and whether it is the best epoch so far.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.datasets import PairDataset
from . import plots
from .evaluate import METRIC_NOTES, METRICS, constant_baseline, evaluate_generator
from .state import LOG_MULTISCALE, write_text_atomic

__all__ = ["better", "log_epoch", "sample_grid", "validate_epoch", "write_baseline"]

log = logging.getLogger(__name__)


def _or_na(v: float | None) -> str:
    """``v`` with 3 decimals, or ``n/a``."""
    return "n/a" if v is None else f"{v:.3f}"


def better(metric: str, new: float, old: float | None) -> bool:
    """True if ``new`` beats ``old`` (None or NaN: nothing to beat) on ``metric`` (lower L1, else higher)."""
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    return new < old if metric == "l1" else new > old


def write_baseline(out: Path, mean_colour: np.ndarray, val_data: PairDataset) -> dict[str, float | None]:
    """Score the constant-colour baseline on ``val_data``, write ``baseline.json`` and log it."""
    baseline = constant_baseline(mean_colour.tolist(), val_data)
    write_text_atomic(out / "baseline.json", json.dumps({"mean_colour": mean_colour.tolist(), **baseline,
                                                          "notes": METRIC_NOTES}, indent=1))
    log.info("constant-colour baseline on validation: PSNR %.2f dB, SSIM %.3f, L1 %.4f, grad r %.3f",
             baseline["psnr"], baseline["ssim"], baseline["l1"], baseline["grad_r"])
    return baseline


def validate_epoch(g: nn.Module, val_data: PairDataset | None, train_data: PairDataset, row: dict[str, Any],
                   samples: Path, device: torch.device, amp_dtype: torch.dtype | None) -> dict[str, Any] | None:
    """Validation metrics of ``g`` (also put in ``row``; None without ``val_data``) and its sample grid."""
    if val_data is not None:
        metrics = evaluate_generator(g, val_data, device, autocast_dtype=amp_dtype)
        row.update({f"val_{k}": metrics.get(k) for k in (*METRICS, *LOG_MULTISCALE)})
        sample_grid(g, val_data, samples, device)
        return metrics
    sample_grid(g, train_data, samples, device)
    return None


def log_epoch(row: dict[str, Any], metrics: dict[str, Any] | None, epochs: int) -> None:
    """Log the epoch's losses, validation metrics and times in one line."""
    parts = ", ".join(f"{k[2:]} {row[k]:.4f}" for k in ("g_adv", "g_l1", "g_ssim", "g_grad") if row[k] is not None)
    log.info(
        "epoch %d/%d: G %.4f (%s)%s%s [%.1f s, %.1f CPU s]", row["epoch"], epochs, row["g_total"], parts,
        f" D {row['d']:.4f}" if row["d"] is not None else "",
        f"; val PSNR {metrics['psnr']:.2f} dB SSIM {metrics['ssim']:.3f} L1 {metrics['l1']:.4f} "
        f"grad r {metrics['grad_r']:.3f}; 160 m SSIM {_or_na(metrics.get('ssim_160m'))}, grad r 2x2 "
        f"{_or_na(metrics.get('grad_r2'))} (input {_or_na(metrics.get('input_grad_r2'))}), contrast "
        f"{_or_na(metrics.get('contrast'))}" if metrics else "", row["seconds"], row["cpu_seconds"],
    )


def _condition_target(item: dict[str, object]) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``condition`` and ``target`` tensors of a :class:`PairDataset` sample."""
    cond, target = item["condition"], item["target"]
    assert isinstance(cond, torch.Tensor) and isinstance(target, torch.Tensor)
    return cond, target


@torch.no_grad()
def sample_grid(gen: nn.Module, data: PairDataset, path: Path, device: torch.device, n: int = 4, size: int = 256) -> None:
    """Input | generated | real for the first ``n`` samples of ``data``, centre crops of ``size`` px."""
    items = [_condition_target(data[i]) for i in range(min(n, len(data)))]
    h, w = items[0][0].shape[1:]
    s = min(size, h - h % 16, w - w % 16)
    r, c = (h - s) // 2, (w - s) // 2
    x = torch.stack([cond[:, r:r + s, c:c + s] for cond, _ in items])
    y = torch.stack([target[:, r:r + s, c:c + s] for _, target in items])
    was = gen.training
    gen.eval()
    try:
        fake = gen(x.to(device)).float().cpu()
    finally:
        gen.train(was)
    plots.save_sample_grid(x, fake, y, path)
