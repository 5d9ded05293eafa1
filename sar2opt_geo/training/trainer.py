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

import dataclasses
import datetime as _dt
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..data.augment import SpeckleAugment
from ..data.datasets import PairDataset
from ..engine.devices import resolve_device
from ..errors import CheckpointError, ConfigError
from ..models import GENERATORS, PatchDiscriminator
from ..models.card import ModelCard
from ..models.checkpoint import save_generator
from ..version import __version__
from . import plots
from .autocast import autocast_for
from .evaluate import METRIC_NOTES
from .losses import GeneratorLoss, discriminator_loss, generator_loss
from .state import (
    STATE_FILE,
    Clock,
    RunProgress,
    load_state,
    restore_rng,
    save_state,
    unwrap,
    write_logs,
)
from .validation import better, log_epoch, validate_epoch, write_baseline

__all__ = ["STATE_FILE", "TrainConfig", "TrainResult", "resolve_device", "train"]

log = logging.getLogger(__name__)

#: Loss parts summed per epoch (None for terms the recipe leaves out).
_LOSS_KEYS = ("g_total", "g_adv", "g_l1", "g_ssim", "g_grad", "d")
#: Architecture arguments the trainer passes, by architecture.
_ARCH_ARGS = {"unet_article": ("width", "norm", "dropout"), "resnet_lite": ("width", "norm")}
#: Generator architectures this trainer builds (and ``--init`` can fine-tune).
TRAINABLE_ARCHITECTURES: tuple[str, ...] = tuple(_ARCH_ARGS)


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
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # autocast ("auto": CUDA bf16 if supported, else fp16; CPU bf16 where the CPU has it)
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
    baseline: dict[str, float | None] | None
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class _Env:
    """Where this process trains: DDP world size and rank, its device, and whether it started the process group."""

    world: int
    rank: int
    device: torch.device
    own_group: bool

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one rank."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, which validates and writes files."""
        return self.rank == 0


@dataclass
class _Nets:
    """The generator, its EMA (or None), the discriminator, their optimisers and the mixed-precision settings."""

    gen: nn.Module
    ema: torch.optim.swa_utils.AveragedModel | None
    disc: nn.Module
    use_gan: bool
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


@dataclass
class _Training:
    """Everything the epoch loop of one :func:`train` call reads and updates."""

    config: TrainConfig
    env: _Env
    nets: _Nets
    train_data: PairDataset
    val_data: PairDataset | None
    out: Path
    sampler: DistributedSampler
    loader: DataLoader
    run: RunProgress
    clock: Clock
    card: ModelCard
    arch_args: dict[str, Any]
    command: str
    data_description: dict[str, Any] | None
    mean_colour: np.ndarray
    baseline: dict[str, float | None] | None
    progress: Callable[[float, str], None] | None


def train(
    train_data: PairDataset,
    val_data: PairDataset | None,
    out_dir: str | os.PathLike,
    card: ModelCard,
    config: TrainConfig = TrainConfig(),
    *,
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
    env = _setup(config)
    ckpt_dir = out / "checkpoints"
    if env.is_main:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    arch_args = _check_config(config, train_data, card)
    torch.manual_seed(config.seed)
    nets = _build_networks(config, arch_args, env.device, init, resume)
    run = (load_state(ckpt_dir / STATE_FILE, nets.gen, nets.disc, nets.opt_g, nets.opt_d, nets.scaler, nets.ema)
           if resume else RunProgress())
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        nets.gen = nn.parallel.DistributedDataParallel(nets.gen, device_ids=ids)
        nets.disc = nn.parallel.DistributedDataParallel(nets.disc, device_ids=ids)

    per_rank_batch = max(1, config.batch_size // env.world)
    sampler: DistributedSampler = DistributedSampler(train_data, num_replicas=env.world, rank=env.rank, shuffle=True, seed=config.seed)
    loader = DataLoader(train_data, batch_size=per_rank_batch, sampler=sampler, num_workers=config.workers,
                        drop_last=False, pin_memory=env.device.type == "cuda")
    mean_colour = train_data.mean_target()
    baseline = write_baseline(out, mean_colour, val_data) if env.is_main and val_data is not None else None
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    clock = Clock.start(config.max_minutes, config.max_cpu_minutes, run.history)
    run.steps_total = int(run.history[-1].get("steps_total", 0)) if run.history else 0
    t = _Training(config, env, nets, train_data, val_data, out, sampler, loader, run, clock, card, arch_args, command,
                  data_description, mean_colour, baseline, progress)
    if run.resumed is not None:  # restore the random streams last, so that nothing above draws from them
        restore_rng(run.resumed, env.device)
    epoch = _epoch_loop(t)
    if env.is_main and run.history:
        plots.plot_curves(run.history, out / "curves.png", baseline)
    if env.own_group:
        # every rank leaves together and tears the group down: a rank that exits with Gloo's threads
        # still alive can die of SIGABRT in static destructors (seen as a flaky failure in CI)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return TrainResult(out, (ckpt_dir / "best.safetensors") if run.best_epoch else None, ckpt_dir / "last.safetensors",
                       epoch, run.best_epoch, run.best_metrics, baseline, run.history)


def _setup(config: TrainConfig) -> _Env:
    """Read the torchrun environment, choose the device, start the process group if needed, set the threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(config.device)
    own_group = world > 1 and not torch.distributed.is_initialized()
    if own_group:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and device.index is not None:  # torchrun: this rank's GPU
        torch.cuda.set_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    return _Env(world, rank, device, own_group)


def _check_config(config: TrainConfig, train_data: PairDataset, card: ModelCard) -> dict[str, Any]:
    """Refuse options that cannot train; the generator's arguments. Sets the speckle augmentation if asked."""
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
    return arch_args


def _build_networks(config: TrainConfig, arch_args: dict[str, Any], device: torch.device, init: nn.Module | None,
                    resume: bool) -> _Nets:
    """Generator (from ``init`` when fine-tuning), its EMA, the discriminator, their optimisers, the AMP settings."""
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
    disc = PatchDiscriminator(arch_args["in_channels"] + arch_args["out_channels"],
                              width=config.disc_width or config.width, norm=config.norm).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    amp_dtype, use_scaler = autocast_for(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    return _Nets(gen, ema, disc, config.lambda_gan > 0, opt_g, opt_d, amp_dtype, scaler)


def _any_rank(flag: bool, env: _Env) -> bool:
    """``flag`` on any rank (every rank takes part under DDP); ``flag`` itself in one process."""
    if not env.distributed:
        return flag
    t = torch.tensor([float(flag)], device=env.device)
    torch.distributed.all_reduce(t)
    return bool(t.item())


def _epoch_loop(t: _Training) -> int:
    """Train, validate and save epoch after epoch until the last or the budget; the last epoch trained."""
    config = t.config
    epoch = t.run.start_epoch - 1
    for epoch in range(t.run.start_epoch, config.epochs + 1):
        t0, cpu_epoch0 = time.monotonic(), time.process_time()
        row = _train_epoch(t, epoch)
        if t.env.is_main:
            _end_epoch(t, epoch, row, t0, cpu_epoch0)
        if t.env.distributed:
            torch.distributed.barrier()
        # every rank stops after the same epoch (rank 0 spent extra CPU time validating)
        if _any_rank(t.clock.over_budget(), t.env):
            log.info("stopping after epoch %d: budget reached (wall-clock %s min, CPU %s min)", epoch,
                     config.max_minutes, config.max_cpu_minutes)
            break
    return epoch


def _train_epoch(t: _Training, epoch: int) -> dict[str, Any]:
    """One epoch of training steps (fewer once the budget is spent); its log row of mean losses (all ranks)."""
    config, env, nets, loader = t.config, t.env, t.nets, t.loader
    t.train_data.set_epoch(epoch)
    t.sampler.set_epoch(epoch)
    lr = lr_at_epoch(config, epoch)
    for group in nets.opt_g.param_groups + nets.opt_d.param_groups:
        group["lr"] = lr
    nets.gen.train()
    nets.disc.train()
    sums: dict[str, float | None] = dict.fromkeys(_LOSS_KEYS, 0.0)
    n = 0
    for i, batch in enumerate(loader):
        x = batch["condition"].to(env.device, non_blocking=True)
        y = batch["target"].to(env.device, non_blocking=True)
        gl, d_loss = _train_step(t, x, y)
        for k, v in zip(_LOSS_KEYS, (gl.total, gl.adv, gl.l1, gl.ssim, gl.grad, d_loss)):
            sums[k] = None if v is None else sums[k] + float(v.detach())  # type: ignore[operator]
        n += 1
        t.run.steps_total += 1
        if _any_rank(t.clock.over_budget(), env) and i + 1 < len(loader):  # every rank stops at the same step
            log.info("budget reached after step %d of epoch %d; validating and stopping", i + 1, epoch)
            break
        if t.progress and env.is_main:
            d_text = f" D {float(d_loss.detach()):.3f}" if d_loss is not None else ""
            t.progress(((epoch - 1) + (i + 1) / len(loader)) / config.epochs,
                       f"epoch {epoch}/{config.epochs} step {i + 1}/{len(loader)} G {float(gl.total.detach()):.3f}{d_text}")
    row: dict[str, Any] = {"epoch": epoch, "steps": n,
                           **{k: (None if v is None else v / max(n, 1)) for k, v in sums.items()},
                           "lr": lr, "partial": n < len(loader)}
    if env.distributed:
        keys = [k for k in _LOSS_KEYS if row[k] is not None]
        vals = torch.tensor([row[k] for k in keys], device=env.device)
        torch.distributed.all_reduce(vals)
        row.update({k: float(v) / env.world for k, v in zip(keys, vals)})
    return row


def _train_step(t: _Training, x: torch.Tensor, y: torch.Tensor) -> tuple[GeneratorLoss, torch.Tensor | None]:
    """A generator step, then a discriminator step on the detached fake; the losses."""
    config, nets, device = t.config, t.nets, t.env.device
    amp_dtype = nets.amp_dtype
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        fake = nets.gen(x)
    # generator step: D judges the fake as if real; D's weights are not updated here
    d_plain = unwrap(nets.disc)
    d_plain.requires_grad_(False)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        gl = generator_loss(d_plain(x, fake) if nets.use_gan else None, fake, y, config.lambda_l1,
                            config.lambda_gan, config.lambda_ssim, config.lambda_grad)
    nets.opt_g.zero_grad(set_to_none=True)
    nets.scaler.scale(gl.total).backward()
    nets.scaler.step(nets.opt_g)
    d_plain.requires_grad_(True)
    d_loss = None
    if nets.use_gan:  # discriminator step on the detached fake
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            if t.env.distributed:  # one DDP forward per backward
                logits = nets.disc(torch.cat([x, x]), torch.cat([y, fake.detach()]))
                real_logits, fake_logits = logits.chunk(2)
            else:
                real_logits, fake_logits = nets.disc(x, y), nets.disc(x, fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
        nets.opt_d.zero_grad(set_to_none=True)
        nets.scaler.scale(d_loss).backward()
        nets.scaler.step(nets.opt_d)
    nets.scaler.update()
    if nets.ema is not None:
        nets.ema.update_parameters(unwrap(nets.gen))
    return gl, d_loss


def _end_epoch(t: _Training, epoch: int, row: dict[str, Any], t0: float, cpu_epoch0: float) -> None:
    """Rank 0 after an epoch: validate, log, save the best, last and periodic generators and the training state."""
    config, nets, run = t.config, t.nets, t.run
    ckpt_dir = t.out / "checkpoints"
    g = nets.ema.module if nets.ema is not None else unwrap(nets.gen)  # what is validated and saved
    metrics = validate_epoch(g, t.val_data, t.train_data, row, t.out / "samples" / f"epoch_{epoch:04d}.png",
                             t.env.device, nets.amp_dtype)
    row["seconds"] = round(time.monotonic() - t0, 2)
    row["seconds_total"] = round(t.clock.seconds_total(), 2)
    row["cpu_seconds"] = round(time.process_time() - cpu_epoch0, 2)
    row["cpu_seconds_total"] = round(t.clock.cpu_seconds_total(), 2)
    row["steps_total"] = run.steps_total
    run.history.append(row)
    write_logs(t.out, run.history)
    log_epoch(row, metrics, config.epochs)
    if metrics is not None and better(config.best_metric, metrics[config.best_metric], run.best_value):
        run.best_value, run.best_epoch, run.best_metrics = metrics[config.best_metric], epoch, metrics
        save_generator(g, _card(t, metrics, epoch), ckpt_dir / "best.safetensors")
    save_generator(g, _card(t, metrics, epoch), ckpt_dir / "last.safetensors")
    if config.checkpoint_every and epoch % config.checkpoint_every == 0:
        save_generator(g, _card(t, metrics, epoch), ckpt_dir / f"epoch_{epoch:04d}.safetensors")
    save_state(ckpt_dir / STATE_FILE, nets.gen, nets.disc, nets.ema, nets.opt_g, nets.opt_d, nets.scaler,
               epoch=epoch, device=t.env.device, progress=run, config=config.to_dict())


def _card(t: _Training, metrics: dict[str, Any] | None, epoch: int) -> ModelCard:
    """The run's template card filled in: architecture, recipe, data, timing and the metrics of ``epoch``."""
    config, train_data = t.config, t.train_data
    training = dict(t.card.training)
    training.update({
        "data": t.data_description or {"train": train_data.describe(),
                                       "validation": t.val_data.describe() if t.val_data else None},
        "recipe": config.to_dict(),
        "command": t.command,
        "epochs_trained": epoch,
        "steps": t.run.steps_total,
        "seconds": round(t.clock.seconds_total(), 1),
        "cpu_seconds": round(t.clock.cpu_seconds_total(), 1),
        "augmentation": {"flips_rot90": config.augment,
                         "speckle": train_data.speckle.to_dict() if train_data.speckle is not None else None},
        "mean_colour": [round(float(v), 6) for v in t.mean_colour],
        "distributed_world_size": t.env.world,
        "device": str(t.env.device),
        "autocast": str(t.nets.amp_dtype).removeprefix("torch.") if t.nets.amp_dtype is not None else None,
    })
    m = dict(t.card.metrics)
    if metrics is not None:
        m.update({"validation": metrics, "epoch": epoch, "baseline_constant_colour": t.baseline, "notes": METRIC_NOTES})
    return t.card.replace(architecture=config.arch, architecture_args=t.arch_args, training=training, metrics=m,
                          library_version=__version__,
                          created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
