"""The article's pix2pix training loop, on CPU, one GPU, or several GPUs with DDP (torchrun).

Recipe (defaults of :class:`TrainConfig`, from the article): 100 epochs, batch 128, Adam
lr 2e-4, betas (0.5, 0.999); generator loss ``BCEWithLogits(D(x, G(x)) -> real) + 100 x
L1``; each step updates the generator, then the discriminator on the detached fake.
Options beyond the article (off by default): the generator architecture (``arch``, e.g. the
cheap ``resnet_lite``), SSIM and gradient-magnitude loss terms (:mod:`.losses`), the GAN
weight (0 trains no discriminator), random gain + speckle on the SAR input
(:class:`~sar2opt_geo.data.augment.SpeckleAugment`), and a budget in process CPU time
(comparable between runs on a shared machine, unlike wall-clock minutes), pix2pix's linear
learning-rate decay over the last epochs (``lr_decay_epochs``) and an exponential moving
average of the generator's weights (``ema``, ``torch.optim.swa_utils.AveragedModel``), which
is what validation, samples and checkpoints then use.

Output folder::

    log.csv, log.json            one row per epoch: losses, validation metrics (PSNR, SSIM, L1,
                                 gradient r), wall-clock and CPU seconds
    samples/epoch_NNNN.png       input | generated | real, validation crops
    checkpoints/epoch_NNNN.safetensors  every ``checkpoint_every`` epochs
    checkpoints/last.safetensors, best.safetensors   generators with full model cards
    checkpoints/state_last.pt    training state for --resume (torch.load(weights_only=True))
    curves.png                   losses and validation metrics vs the constant-colour baseline
    baseline.json                constant-colour baseline on the validation split

Distributed: launched by ``torchrun``, the loop reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``,
wraps both networks in ``DistributedDataParallel`` (NCCL on CUDA, Gloo on CPU), splits each
epoch with ``DistributedSampler`` (``batch_size`` is the global batch) and lets rank 0
validate and write files.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..data.augment import SpeckleAugment
from ..data.datasets import PairDataset
from ..engine.devices import resolve_device
from ..errors import CheckpointError, ConfigError
from ..io.atomic import atomic_file
from ..models import GENERATORS, PatchDiscriminator
from ..models.card import ModelCard
from ..models.checkpoint import save_generator
from ..version import __version__
from . import plots
from .evaluate import (
    METRIC_NOTES,
    METRICS,
    MULTISCALE,
    constant_baseline,
    evaluate_generator,
)
from .losses import discriminator_loss, generator_loss

__all__ = ["STATE_FILE", "TrainConfig", "TrainResult", "resolve_device", "train"]

log = logging.getLogger(__name__)

STATE_FILE = "state_last.pt"
#: The multi-scale validation metrics logged beside METRICS (see evaluate.MULTISCALE).
LOG_MULTISCALE = tuple(k for k in MULTISCALE if k != "input_db_grad_r2")
LOG_FIELDS = ("epoch", "steps", "g_total", "g_adv", "g_l1", "g_ssim", "g_grad", "d", "val_psnr", "val_ssim", "val_l1",
              "val_grad_r", *(f"val_{k}" for k in LOG_MULTISCALE), "seconds", "cpu_seconds", "lr")
#: Loss parts summed per epoch (None for terms the recipe leaves out).
_LOSS_KEYS = ("g_total", "g_adv", "g_l1", "g_ssim", "g_grad", "d")
#: Architecture arguments the trainer passes, by architecture.
_ARCH_ARGS = {"unet_article": ("width", "norm", "dropout"), "resnet_lite": ("width", "norm")}
#: Generator architectures this trainer builds (and ``--init`` can fine-tune).
TRAINABLE_ARCHITECTURES: tuple[str, ...] = tuple(_ARCH_ARGS)


def _or_na(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and run options; defaults are the article's recipe."""

    epochs: int = 100
    batch_size: int = 128  # global batch (split across DDP ranks)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    lambda_gan: float = 1.0  # weight of the adversarial term; 0: no discriminator is trained
    lambda_ssim: float = 0.0  # weight of 1 - SSIM (unit scale)
    lambda_grad: float = 0.0  # weight of the L1 between Sobel gradient magnitudes (unit scale)
    arch: str = "unet_article"  # generator architecture (models.GENERATORS key)
    width: float = 1.0  # channel multiplier of generator and discriminator
    disc_width: float | None = None  # channel multiplier of the discriminator (None: width)
    norm: str = "batch"
    dropout: float = 0.5
    crop_size: int = 256  # pixels
    crops_per_image: int = 1  # random crops per pair per epoch
    augment: bool = True  # flips and 90-degree rotations
    speckle_aug: bool = False  # random gain (+-2 dB) and gamma speckle (3..30 looks, p 0.5) on the SAR input
    aug_gain_db: float = 2.0  # half-width of the random gain of speckle_aug, dB
    aug_db_gamma: tuple[float, float] = (1.0, 1.0)  # speckle_aug: contrast on the dB scale, drawn log-uniformly
    workers: int = 0  # DataLoader worker processes
    threads: int | None = None  # torch intra-op threads (None: torch default)
    seed: int = 0
    checkpoint_every: int = 10  # epochs
    best_metric: Literal["psnr", "ssim", "l1", "grad_r"] = "psnr"
    device: str = "auto"
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # autocast on CUDA ("auto": bf16 if supported, else fp16)
    max_minutes: float | None = None  # wall-clock budget: stop at the first step past it, then validate and save
    max_cpu_minutes: float | None = None  # the same in CPU time of this process (all its threads; per DDP rank)
    lr_decay_epochs: int = 0  # pix2pix 'linear' policy: lr falls linearly to 0 over the last N of `epochs` epochs
    ema: float = 0.0  # decay per step of an exponential moving average of G's weights and buffers (0: none)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lr_at_epoch(config: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (1-based): constant, then over the last ``lr_decay_epochs``
    epochs falling linearly towards 0 (pix2pix's 'linear' policy; the last epoch trains at
    ``lr / (lr_decay_epochs + 1)``)."""
    k = config.lr_decay_epochs
    into = epoch - (config.epochs - k)  # 1 .. k inside the decay (never, with k = 0)
    return config.lr if into <= 0 else config.lr * (1.0 - into / (k + 1))


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    best: Path | None
    last: Path
    epochs_done: int
    best_epoch: int | None
    best_metrics: dict[str, float] | None
    baseline: dict[str, float] | None
    history: list[dict[str, Any]]


def _autocast(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)``. CUDA: bf16 where supported, else fp16 with a
    scaler. CPU: bf16 only when asked (``amp="bf16"``: a training step of the U-Net 1.9-2.2x faster
    on a CPU with AMX, measured; what it does to the trained model's validation metrics is not
    measured yet, so ``auto`` stays float32 on CPU); fp16 is not offered on CPU."""
    if amp == "none":
        return None, False
    if device.type == "cpu":
        if amp == "fp16":
            from ..errors import ConfigError

            raise ConfigError("amp='fp16' (--amp fp16) runs on CUDA only; on the CPU use bf16 or none")
        return (torch.bfloat16 if amp == "bf16" else None), False
    if device.type != "cuda":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def _better(metric: str, new: float, old: float | None) -> bool:
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    return new < old if metric == "l1" else new > old


def _write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    _atomic_write_text(out / "log.json", json.dumps(history, indent=1))
    with atomic_file(out / "log.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_FIELDS})


def train(
    train_data: PairDataset,
    val_data: PairDataset | None,
    out_dir: str | os.PathLike,
    card: ModelCard,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    command: str | None = None,
    data_description: dict[str, Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
    init: nn.Module | None = None,
) -> TrainResult:
    """Train a generator/discriminator pair and write logs, samples and checkpoints to ``out_dir``.

    Args:
        train_data, val_data: datasets in the model domain (random crops for training;
            deterministic whole images or centre crops for validation; ``val_data`` None
            skips validation and ``best``).
        card: template card (name, input domain, output spec, description); architecture,
            training and metrics fields are filled in here.
        resume: continue from ``checkpoints/state_last.pt`` (same config expected).
        command: the exact command line, recorded in the card (default: ``sys.argv``).
        data_description: recorded in the card's ``training["data"]``.
        init: fine-tuning: a generator of the same architecture (``config.width``, ``norm``,
            ``dropout``, channels) whose weights the generator starts from; the discriminator
            starts fresh (checkpoints hold generators only). Record the parent in
            ``card.training["parent"]``. Ignored with ``resume`` (the state holds the weights).
    """
    out = Path(out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    device = resolve_device(config.device)
    own_group = distributed and not torch.distributed.is_initialized()
    if own_group:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and device.index is not None:  # torchrun: this rank's GPU
        torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    is_main = rank == 0
    ckpt_dir = out / "checkpoints"
    if is_main:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    in_ch, out_ch = train_data.in_channels, train_data.out_channels
    if config.arch not in _ARCH_ARGS or config.arch not in GENERATORS:
        raise ConfigError(f"unknown or untrainable generator architecture {config.arch!r}; "
                          f"choose one of {', '.join(a for a in _ARCH_ARGS if a in GENERATORS)}")
    if not 0.0 <= config.ema < 1.0:
        raise ConfigError(f"ema must be in [0, 1) (a decay per step, e.g. 0.995), got {config.ema}")
    if not 0 <= config.lr_decay_epochs <= config.epochs:
        raise ConfigError(f"lr_decay_epochs must be between 0 and epochs ({config.epochs}), got {config.lr_decay_epochs}")
    arch_args = {"in_channels": in_ch, "out_channels": out_ch,
                 **{k: getattr(config, k) for k in _ARCH_ARGS[config.arch]}}
    if config.speckle_aug and getattr(train_data, "speckle", None) is None:
        if card.input.quantity == "gray":
            raise ConfigError("speckle augmentation is for SAR inputs; drop --speckle-aug for colourisation")
        train_data.speckle = SpeckleAugment.for_input(card.input, gain_db=config.aug_gain_db,
                                                        db_gamma=tuple(config.aug_db_gamma))
    torch.manual_seed(config.seed)
    gen = GENERATORS[config.arch](**arch_args)
    if init is not None and not resume:
        try:
            gen.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise CheckpointError(f"the initial generator does not fit {config.arch} {arch_args} "
                                  f"({str(exc).splitlines()[0]}); train with the parent's architecture and width") from None
        log.info("generator initialised from the parent model (fine-tuning)")
    gen = gen.to(device)
    ema = (torch.optim.swa_utils.AveragedModel(gen, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema),
                                               use_buffers=True) if config.ema else None)
    disc = PatchDiscriminator(in_ch + out_ch, width=config.disc_width or config.width, norm=config.norm).to(device)
    use_gan = config.lambda_gan > 0
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    amp_dtype, use_scaler = _autocast(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    history: list[dict[str, Any]] = []
    start_epoch, best_value, best_epoch, best_metrics = 1, None, None, None
    state_path = ckpt_dir / STATE_FILE
    if resume:
        if not state_path.exists():
            raise CheckpointError(f"{state_path}: no training state to resume from; start without --resume")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or unsafe pickle
            raise CheckpointError(f"{state_path}: unreadable training state ({exc}); start without --resume") from None
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"{state_path}: the run was trained without --ema; resume without it")
            ema.load_state_dict(state["ema"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_value, best_epoch = state.get("best_value"), state.get("best_epoch")
        best_metrics = state.get("best_metrics")
        log.info("resuming from %s at epoch %d", state_path, start_epoch)

    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        gen = nn.parallel.DistributedDataParallel(gen, device_ids=ids)
        disc = nn.parallel.DistributedDataParallel(disc, device_ids=ids)

    per_rank_batch = max(1, config.batch_size // world)
    sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    loader = DataLoader(train_data, batch_size=per_rank_batch, sampler=sampler, num_workers=config.workers,
                        drop_last=False, pin_memory=device.type == "cuda")

    mean_colour = train_data.mean_target()
    baseline = None
    if is_main and val_data is not None:
        baseline = constant_baseline(mean_colour, val_data)
        _atomic_write_text(out / "baseline.json", json.dumps({"mean_colour": mean_colour.tolist(), **baseline,
                                                               "notes": METRIC_NOTES}, indent=1))
        log.info("constant-colour baseline on validation: PSNR %.2f dB, SSIM %.3f, L1 %.4f, grad r %.3f",
                 baseline["psnr"], baseline["ssim"], baseline["l1"], baseline["grad_r"])
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    t_start, cpu_start = time.monotonic(), time.process_time()
    seconds_before = float(history[-1].get("seconds_total", 0.0)) if history else 0.0
    cpu_before = float(history[-1].get("cpu_seconds_total", 0.0) or 0.0) if history else 0.0

    def over_budget() -> bool:
        wall = config.max_minutes is not None and (time.monotonic() - t_start) / 60 >= config.max_minutes
        cpu = config.max_cpu_minutes is not None and (time.process_time() - cpu_start) / 60 >= config.max_cpu_minutes
        return wall or cpu
    steps_total = int(history[-1].get("steps_total", 0)) if history else 0

    def make_card(metrics: dict[str, Any] | None, epoch: int) -> ModelCard:
        training = dict(card.training)
        training.update({
            "data": data_description or {"train": train_data.describe(),
                                         "validation": val_data.describe() if val_data else None},
            "recipe": config.to_dict(),
            "command": command,
            "epochs_trained": epoch,
            "steps": steps_total,
            "seconds": round(seconds_before + time.monotonic() - t_start, 1),
            "cpu_seconds": round(cpu_before + time.process_time() - cpu_start, 1),
            "augmentation": {"flips_rot90": config.augment,
                             "speckle": train_data.speckle.to_dict() if getattr(train_data, "speckle", None) else None},
            "mean_colour": [round(float(v), 6) for v in mean_colour],
            "distributed_world_size": world,
            "device": str(device),
        })
        m = dict(card.metrics)
        if metrics is not None:
            m.update({"validation": metrics, "epoch": epoch, "baseline_constant_colour": baseline, "notes": METRIC_NOTES})
        return card.replace(architecture=config.arch, architecture_args=arch_args, training=training, metrics=m,
                            library_version=__version__,
                            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    if resume:  # restore the random streams last, so that nothing above draws from them
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        t0, cpu_epoch0 = time.monotonic(), time.process_time()
        train_data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        lr = lr_at_epoch(config, epoch)
        for group in opt_g.param_groups + opt_d.param_groups:
            group["lr"] = lr
        gen.train()
        disc.train()
        sums: dict[str, float | None] = dict.fromkeys(_LOSS_KEYS, 0.0)
        n = 0
        for i, batch in enumerate(loader):
            x = batch["condition"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                fake = gen(x)
            # generator step: D judges the fake as if real; D's weights are not updated here
            d_plain = _unwrap(disc)
            d_plain.requires_grad_(False)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                gl = generator_loss(d_plain(x, fake) if use_gan else None, fake, y, config.lambda_l1,
                                    config.lambda_gan, config.lambda_ssim, config.lambda_grad)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(gl.total).backward()
            scaler.step(opt_g)
            d_plain.requires_grad_(True)
            d_loss = None
            if use_gan:  # discriminator step on the detached fake
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    if distributed:  # one DDP forward per backward
                        logits = disc(torch.cat([x, x]), torch.cat([y, fake.detach()]))
                        real_logits, fake_logits = logits.chunk(2)
                    else:
                        real_logits, fake_logits = disc(x, y), disc(x, fake.detach())
                    d_loss = discriminator_loss(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                scaler.scale(d_loss).backward()
                scaler.step(opt_d)
            scaler.update()
            if ema is not None:
                ema.update_parameters(_unwrap(gen))
            for k, v in zip(_LOSS_KEYS, (gl.total, gl.adv, gl.l1, gl.ssim, gl.grad, d_loss)):
                sums[k] = None if v is None else sums[k] + float(v.detach())  # type: ignore[operator]
            n += 1
            steps_total += 1
            out_of_time = over_budget()
            if distributed:  # every rank stops at the same step
                flag = torch.tensor([float(out_of_time)], device=device)
                torch.distributed.all_reduce(flag)
                out_of_time = bool(flag.item())
            if out_of_time and i + 1 < len(loader):
                log.info("budget reached after step %d of epoch %d; validating and stopping", i + 1, epoch)
                break
            if progress and is_main:
                d_text = f" D {float(d_loss.detach()):.3f}" if d_loss is not None else ""
                progress(((epoch - 1) + (i + 1) / len(loader)) / config.epochs,
                         f"epoch {epoch}/{config.epochs} step {i + 1}/{len(loader)} G {float(gl.total.detach()):.3f}{d_text}")
        row: dict[str, Any] = {"epoch": epoch, "steps": n,
                               **{k: (None if v is None else v / max(n, 1)) for k, v in sums.items()},
                               "lr": lr, "partial": n < len(loader)}
        if distributed:
            keys = [k for k in _LOSS_KEYS if row[k] is not None]
            vals = torch.tensor([row[k] for k in keys], device=device)
            torch.distributed.all_reduce(vals)
            row.update({k: float(v) / world for k, v in zip(keys, vals)})
        if is_main:
            g = ema.module if ema is not None else _unwrap(gen)  # what is validated and saved
            if val_data is not None:
                metrics = evaluate_generator(g, val_data, device, autocast_dtype=amp_dtype)
                row.update({f"val_{k}": metrics.get(k) for k in (*METRICS, *LOG_MULTISCALE)})
                _sample_grid(g, val_data, out / "samples" / f"epoch_{epoch:04d}.png", device)
            else:
                metrics = None
                _sample_grid(g, train_data, out / "samples" / f"epoch_{epoch:04d}.png", device)
            row["seconds"] = round(time.monotonic() - t0, 2)
            row["seconds_total"] = round(seconds_before + time.monotonic() - t_start, 2)
            row["cpu_seconds"] = round(time.process_time() - cpu_epoch0, 2)
            row["cpu_seconds_total"] = round(cpu_before + time.process_time() - cpu_start, 2)
            row["steps_total"] = steps_total
            history.append(row)
            _write_logs(out, history)
            parts = ", ".join(f"{k[2:]} {row[k]:.4f}" for k in ("g_adv", "g_l1", "g_ssim", "g_grad") if row[k] is not None)
            log.info(
                "epoch %d/%d: G %.4f (%s)%s%s [%.1f s, %.1f CPU s]", epoch, config.epochs, row["g_total"], parts,
                f" D {row['d']:.4f}" if row["d"] is not None else "",
                f"; val PSNR {metrics['psnr']:.2f} dB SSIM {metrics['ssim']:.3f} L1 {metrics['l1']:.4f} "
                f"grad r {metrics['grad_r']:.3f}; 160 m SSIM {_or_na(metrics.get('ssim_160m'))}, grad r 2x2 "
                f"{_or_na(metrics.get('grad_r2'))} (input {_or_na(metrics.get('input_grad_r2'))}), contrast "
                f"{_or_na(metrics.get('contrast'))}" if metrics else "", row["seconds"], row["cpu_seconds"],
            )
            if metrics is not None and _better(config.best_metric, metrics[config.best_metric], best_value):
                best_value, best_epoch, best_metrics = metrics[config.best_metric], epoch, metrics
                save_generator(g, make_card(metrics, epoch), ckpt_dir / "best.safetensors")
            save_generator(g, make_card(metrics, epoch), ckpt_dir / "last.safetensors")
            if config.checkpoint_every and epoch % config.checkpoint_every == 0:
                save_generator(g, make_card(metrics, epoch), ckpt_dir / f"epoch_{epoch:04d}.safetensors")
            _atomic_torch_save({
                "generator": _unwrap(gen).state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "discriminator": _unwrap(disc).state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "history": history, "best_value": best_value, "best_epoch": best_epoch, "best_metrics": best_metrics,
                "config": {k: v for k, v in config.to_dict().items() if v is not None},
            }, state_path)
        if distributed:
            torch.distributed.barrier()
        stop = over_budget()
        if distributed:  # every rank stops after the same epoch (rank 0 spent extra CPU time validating)
            flag = torch.tensor([float(stop)], device=device)
            torch.distributed.all_reduce(flag)
            stop = bool(flag.item())
        if stop:
            log.info("stopping after epoch %d: budget reached (wall-clock %s min, CPU %s min)", epoch,
                     config.max_minutes, config.max_cpu_minutes)
            break
    if is_main and history:
        plots.plot_curves(history, out / "curves.png", baseline)
    if own_group:
        # every rank leaves together and tears the group down: a rank that exits with Gloo's threads
        # still alive can die of SIGABRT in static destructors (seen as a flaky failure in CI)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return TrainResult(out, (ckpt_dir / "best.safetensors") if best_epoch else None, ckpt_dir / "last.safetensors",
                       epoch, best_epoch, best_metrics, baseline, history)


@torch.no_grad()
def _sample_grid(gen: nn.Module, data: PairDataset, path: Path, device: torch.device, n: int = 4, size: int = 256) -> None:
    """Input | generated | real for the first ``n`` samples of ``data``, centre crops of ``size`` px."""
    items = [data[i] for i in range(min(n, len(data)))]
    h, w = items[0]["condition"].shape[1:]
    s = min(size, h - h % 16, w - w % 16)
    r, c = (h - s) // 2, (w - s) // 2
    x = torch.stack([it["condition"][:, r:r + s, c:c + s] for it in items])
    y = torch.stack([it["target"][:, r:r + s, c:c + s] for it in items])
    was = gen.training
    gen.eval()
    try:
        fake = gen(x.to(device)).float().cpu()
    finally:
        gen.train(was)
    plots.save_sample_grid(x, fake, y, path)
