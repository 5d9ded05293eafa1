"""pix2pix training, losses, metrics, evaluation and plots."""

from __future__ import annotations

from .cards import card_for_dataset
from .evaluate import METRIC_NOTES, constant_baseline, evaluate_generator
from .losses import discriminator_loss, gan_loss, generator_loss
from .metrics import l1, psnr, ssim
from .trainer import TrainConfig, TrainResult, resolve_device, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "resolve_device",
    "card_for_dataset",
    "evaluate_generator",
    "constant_baseline",
    "METRIC_NOTES",
    "gan_loss",
    "generator_loss",
    "discriminator_loss",
    "psnr",
    "ssim",
    "l1",
]
