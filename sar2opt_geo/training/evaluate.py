"""Validation and evaluation: PSNR / SSIM / L1 / gradient r of a generator and of the constant-colour baseline.

Scale: metrics compare ``(y + 1) / 2`` in [0, 1] (data range 1.0) with the target on the
same scale; SSIM uses an 11 x 11 Gaussian window, sigma 1.5 (see :mod:`.metrics`). Each
metric is computed per image (whole image or the dataset's crop) and averaged over
images. The **constant-colour baseline** predicts one colour everywhere: the mean target
colour of the *training* set. A generator that does not beat it has not learnt anything
a single colour would not give.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..normalize import model_to_unit
from . import metrics

__all__ = ["METRICS", "METRIC_NOTES", "constant_baseline", "evaluate_generator"]

#: The metrics every evaluation reports, in table order.
METRICS = ("psnr", "ssim", "l1", "grad_r")

log = logging.getLogger(__name__)

#: Written beside every set of numbers so that they can be compared.
METRIC_NOTES = {
    "scale": "(y + 1) / 2 in [0, 1], data range 1.0; per image, averaged over images",
    "ssim": "Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, no sample-covariance correction (Wang et al. 2004; "
    "skimage gaussian_weights=True, use_sample_covariance=False)",
    "l1": "mean |prediction - target| on the [0, 1] scale",
    "grad_r": "Pearson r between 3x3 Sobel gradient magnitudes of the BT.601 luminance of prediction and target, "
    "1-px border left out; 0 for an image without gradients (the constant colour: r undefined)",
    "baseline": "constant image of the training set's mean target colour",
}


def _summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"images": len(rows)}
    for k in METRICS:
        vals = [r[k] for r in rows]
        finite = [v for v in vals if math.isfinite(v)]
        out[k] = float(np.mean(vals)) if len(finite) == len(vals) else float("inf") if not finite else float(np.mean(finite))
    return out


def _score(pred01: torch.Tensor, target01: torch.Tensor) -> list[dict[str, float]]:
    p, s, a = metrics.psnr(pred01, target01), metrics.ssim(pred01, target01), metrics.l1(pred01, target01)
    r = metrics.grad_r(pred01, target01)
    return [{"psnr": float(p[i]), "ssim": float(s[i]), "l1": float(a[i]), "grad_r": float(r[i])} for i in range(len(p))]


@torch.no_grad()
def evaluate_generator(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, float]:
    """Mean PSNR (dB), SSIM, L1 and gradient r of ``model`` (eval mode) over ``dataset`` on the [0, 1] scale."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    rows: list[dict[str, float]] = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    try:
        for i, batch in enumerate(loader):
            x = batch["condition"].to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                y = model(x)
            rows += _score(model_to_unit(y.float()).cpu(), model_to_unit(batch["target"].float()))
            if progress:
                progress((i + 1) / len(loader), f"evaluated {len(rows)} images")
    finally:
        model.train(was_training)
    return _summarise(rows)


def constant_baseline(mean_colour: Sequence[float], dataset: Dataset) -> dict[str, float]:
    """Metrics of a constant image of ``mean_colour`` (one [0, 1] value per target band) over ``dataset``."""
    colour = torch.as_tensor(np.asarray(mean_colour, dtype=np.float32)).view(1, -1, 1, 1)
    rows: list[dict[str, float]] = []
    for batch in DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0):
        t = model_to_unit(batch["target"].float())
        rows += _score(colour.expand_as(t).contiguous(), t)
    return _summarise(rows)
