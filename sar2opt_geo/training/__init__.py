"""pix2pix training, losses, metrics, evaluation and plots."""

from __future__ import annotations

from .cards import card_for_dataset
from .evaluate import METRIC_NOTES, METRICS, constant_baseline, evaluate_generator
from .losses import discriminator_loss, gan_loss, generator_loss
from .metrics import grad_r, l1, psnr, ssim
from .trainer import TrainConfig, TrainResult, resolve_device, train

__all__ = [
    "METRICS",
    "METRIC_NOTES",
    "TrainConfig",
    "TrainResult",
    "card_for_dataset",
    "constant_baseline",
    "discriminator_loss",
    "evaluate_generator",
    "gan_loss",
    "generator_loss",
    "grad_r",
    "l1",
    "psnr",
    "resolve_device",
    "ssim",
    "train",
]
