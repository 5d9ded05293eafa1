"""Pictures of a training run: sample grids (input | generated | real) and loss/metric curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_file
from ..normalize import model_to_unit

__all__ = ["plot_curves", "save_sample_grid"]


def _to_rgb8(t: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` model-domain tensor -> ``(H, W, 3)`` uint8 (1 band repeated as gray)."""
    u = model_to_unit(t.detach().float().cpu()).numpy()
    if u.shape[0] == 1:
        u = np.repeat(u, 3, 0)
    return np.round(np.moveaxis(u[:3], 0, -1) * 255).astype(np.uint8)


def _atomic_png(img: np.ndarray, path: Path) -> Path:
    from PIL import Image

    with atomic_file(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path


def save_sample_grid(
    condition: torch.Tensor, generated: torch.Tensor, target: torch.Tensor, path: str | os.PathLike, max_rows: int = 4
) -> Path:
    """One row per sample: input | generated | real, 8-bit PNG; tensors ``(N, C, H, W)`` in [-1, 1]."""
    rows = []
    for i in range(min(max_rows, condition.shape[0])):
        cells = [_to_rgb8(condition[i]), _to_rgb8(generated[i]), _to_rgb8(target[i])]
        sep = np.full((cells[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([cells[0], sep, cells[1], sep, cells[2]], 1))
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([x for r in rows for x in (r, sep)][:-1], 0)
    return _atomic_png(grid, Path(path))


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, baseline: dict[str, float | None] | None = None) -> Path:
    """Losses (G total and its terms, D) and validation PSNR/SSIM/gradient r per epoch, baseline dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for k in ("g_total", "g_adv", "g_l1", "g_ssim", "g_grad", "d"):
        vals = [h.get(k) for h in history]
        if any(v is not None for v in vals):  # terms the recipe leaves out are None
            axes[0].plot(ep, [np.nan if v is None else v for v in vals], label=k)
    axes[0].set_yscale("log")
    axes[0].set_title("training losses (unweighted; g_l1 in [-1,1] units)")
    for ax, k in ((axes[1], "val_psnr"), (axes[2], "val_ssim"), (axes[3], "val_grad_r")):
        vals = [h.get(k) for h in history]
        if any(v is not None for v in vals):
            ax.plot(ep, [np.nan if v is None else v for v in vals], "o-", label=k)
        if baseline and k[4:] in baseline:
            ax.axhline(baseline[k[4:]], ls="--", c="gray", label="constant-colour baseline")
        ax.set_title(k)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(fig)
    return path
