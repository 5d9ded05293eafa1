"""Validation and evaluation: PSNR / SSIM / L1 / gradient r of a generator and of the constant-colour baseline.

Scale: metrics compare ``(y + 1) / 2`` in [0, 1] (data range 1.0) with the target on the
same scale; SSIM uses an 11 x 11 Gaussian window, sigma 1.5 (see :mod:`.metrics`). Each
metric is computed per image (whole image or the dataset's crop) and averaged over
images. The **constant-colour baseline** predicts one colour everywhere: the mean target
colour of the *training* set. A generator that does not beat it has not learnt anything
a single colour would not give.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..normalize import model_to_unit
from . import metrics

__all__ = ["METRICS", "METRIC_NOTES", "MULTISCALE", "SCALES_M", "constant_baseline", "evaluate_generator", "score_images"]

#: The metrics every evaluation reports, in table order.
METRICS = ("psnr", "ssim", "l1", "grad_r")
#: Block sizes of the coarse-scale PSNR/SSIM, metres (blocks of ``scale / pixel spacing`` px).
SCALES_M = (80, 160)
#: The multi-scale metrics reported beside :data:`METRICS`: PSNR/SSIM of block means, gradient r
#: of 2x2-averaged luminances, luminance contrast ratio, and the input's own gradient r.
MULTISCALE = ("psnr_80m", "ssim_80m", "psnr_160m", "ssim_160m", "grad_r2", "contrast", "input_grad_r2",
              "input_db_grad_r2")

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
    "psnr_80m, ssim_80m, psnr_160m, ssim_160m": "PSNR/SSIM of both images averaged over blocks of 80 m / 160 m "
    "(8 / 16 px at 10 m): the land-cover layout; NaN where the image is under 11 blocks wide (SSIM's window)",
    "grad_r2": "grad_r of both luminances averaged over 2x2 px blocks (20 m at 10 m pixels)",
    "contrast": "std of the prediction's BT.601 luminance / std of the target's (below 1: a haze; 0: flat)",
    "input_grad_r2": "grad_r2 of the model's input itself (the SAR as the model sees it; mean of its bands if "
    "not 1 or 3) against the target: the structure the input carries; input_db_grad_r2: the same input in dB "
    "(10 log10 of the unit value, floored at 1/255), as a dB file shows it",
}


def _summarise(rows: list[dict[str, float]]) -> dict[str, float | None]:
    """Mean of every metric over images; NaN (undefined for an image, e.g. SSIM of a too small block mean) left
    out; None where no image defines it."""
    out: dict[str, float | None] = {"images": len(rows)}
    for k in rows[0] if rows else ():
        vals = [r[k] for r in rows]
        finite = [v for v in vals if math.isfinite(v)]
        if len(finite) == len(vals):
            out[k] = float(np.mean(vals))
        elif any(v == math.inf for v in vals) and k.startswith("psnr"):
            out[k] = float("inf") if not finite else float(np.mean(finite))
        else:  # None (JSON null) where no image defines it, e.g. SSIM at 160 m of 120 px patches
            out[k] = float(np.mean(finite)) if finite else None
    return out


def _or_nan(f: Callable[[], torch.Tensor], n: int) -> torch.Tensor:
    try:
        return f()
    except ConfigError:  # the image is too small for this scale
        return torch.full((n,), float("nan"))


def score_images(pred01: torch.Tensor, target01: torch.Tensor, input01: torch.Tensor | None = None,
                 pixel_m: float = 10.0) -> list[dict[str, float]]:
    """Every metric of :data:`METRICS` and :data:`MULTISCALE` per image, on ``(N, C, H, W)`` tensors in [0, 1].

    ``input01``: the model's input on the same grid (its own gradient r is reported); None
    leaves ``input_grad_r2`` out. ``pixel_m``: ground spacing, metres, for the block sizes.
    """
    n = len(pred01)
    cols = {"psnr": metrics.psnr(pred01, target01), "ssim": metrics.ssim(pred01, target01),
            "l1": metrics.l1(pred01, target01), "grad_r": metrics.grad_r(pred01, target01)}
    nan = torch.full((n,), float("nan"))
    for scale in SCALES_M:
        k = max(1, round(scale / pixel_m))
        if min(pred01.shape[2:]) < k:  # not one whole block
            cols[f"psnr_{scale}m"] = cols[f"ssim_{scale}m"] = nan
            continue
        bp, bt = metrics.block_mean(pred01, k), metrics.block_mean(target01, k)
        cols[f"psnr_{scale}m"] = metrics.psnr(bp, bt)
        cols[f"ssim_{scale}m"] = _or_nan(functools.partial(metrics.ssim, bp, bt), n)
    cols["grad_r2"] = _or_nan(functools.partial(metrics.grad_r, pred01, target01, pool=2), n)
    cols["contrast"] = metrics.contrast_ratio(pred01, target01)
    if input01 is not None:
        x = input01.float() if input01.shape[1] in (1, 3) else input01.float().mean(1, keepdim=True)
        cols["input_grad_r2"] = _or_nan(lambda: metrics.grad_r(x, target01, pool=2), n)
        db = 10.0 * torch.log10(x.clamp(min=1.0 / 255.0))
        cols["input_db_grad_r2"] = _or_nan(lambda: metrics.grad_r(db, target01, pool=2), n)
    return [{k: float(v[i]) for k, v in cols.items()} for i in range(n)]  # NaN: undefined for that image


@torch.no_grad()
def evaluate_generator(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    *,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[float, str], None] | None = None,
    pixel_m: float = 10.0,
    rows_out: list[dict[str, float]] | None = None,
    postprocess: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, float | None]:
    """Mean PSNR (dB), SSIM, L1, gradient r and the multi-scale metrics (:func:`score_images`) of
    ``model`` (eval mode) over ``dataset`` on the [0, 1] scale; ``pixel_m``: ground spacing, metres.
    ``rows_out``: a list that receives every image's metrics, in dataset order. ``postprocess``:
    ``postprocess(inputs, outputs)`` on the model domain, as the engine applies it (e.g.
    :func:`sar2opt_geo.engine.structure.structure_step` for ``--keep-structure``)."""
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
            if postprocess is not None:
                y = torch.from_numpy(postprocess(x.float().cpu().numpy(), y.float().cpu().numpy()))
            rows += score_images(model_to_unit(y.float()).cpu(), model_to_unit(batch["target"].float()),
                                 model_to_unit(batch["condition"].float()), pixel_m)
            if progress:
                progress((i + 1) / len(loader), f"evaluated {len(rows)} images")
    finally:
        model.train(was_training)
    if rows_out is not None:
        rows_out.extend(rows)
    return _summarise(rows)


def constant_baseline(mean_colour: Sequence[float], dataset: Dataset, pixel_m: float = 10.0) -> dict[str, float | None]:
    """Metrics of a constant image of ``mean_colour`` (one [0, 1] value per target band) over ``dataset``."""
    colour = torch.as_tensor(np.asarray(mean_colour, dtype=np.float32)).view(1, -1, 1, 1)
    rows: list[dict[str, float]] = []
    for batch in DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0):
        t = model_to_unit(batch["target"].float())
        rows += score_images(colour.expand_as(t).contiguous(), t, None, pixel_m)
    return _summarise(rows)
