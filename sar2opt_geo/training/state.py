"""What a training run (:func:`sar2opt_geo.training.trainer.train`) keeps between epochs and runs.

* the logs, ``log.json`` and ``log.csv`` (:func:`write_logs`, columns :data:`LOG_FIELDS`);
* the training state ``checkpoints/state_last.pt`` for ``--resume`` (:func:`save_state`,
  :func:`load_state`, :func:`restore_rng`): both networks, the EMA, both optimisers, the
  scaler, the random streams, the history and the best epoch;
* the run's progress (:class:`RunProgress`) and clock and budget (:class:`Clock`).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io.atomic import atomic_file
from .evaluate import MULTISCALE

__all__ = [
    "LOG_FIELDS",
    "LOG_MULTISCALE",
    "STATE_FILE",
    "Clock",
    "RunProgress",
    "load_state",
    "restore_rng",
    "save_state",
    "unwrap",
    "write_logs",
    "write_text_atomic",
]

log = logging.getLogger(__name__)

STATE_FILE = "state_last.pt"
#: The multi-scale validation metrics logged beside METRICS (see evaluate.MULTISCALE).
LOG_MULTISCALE = tuple(k for k in MULTISCALE if k != "input_db_grad_r2")
LOG_FIELDS = ("epoch", "steps", "g_total", "g_adv", "g_l1", "g_ssim", "g_grad", "d", "val_psnr", "val_ssim", "val_l1",
              "val_grad_r", *(f"val_{k}" for k in LOG_MULTISCALE), "seconds", "cpu_seconds", "lr")


def unwrap(m: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``m`` itself)."""
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    """``log.json`` (every field) and ``log.csv`` (:data:`LOG_FIELDS`) of the epochs so far."""
    write_text_atomic(out / "log.json", json.dumps(history, indent=1))
    with atomic_file(out / "log.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_FIELDS})


@dataclass
class RunProgress:
    """Where a run stands: its log rows, first epoch to train, best epoch so far and steps taken."""

    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1
    best_value: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, float] | None = None
    steps_total: int = 0
    resumed: dict[str, Any] | None = None  # the loaded training state (its random streams are restored last)


def load_state(state_path: Path, gen: nn.Module, disc: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler, ema: nn.Module | None) -> RunProgress:
    """Load ``state_path`` into the networks, optimisers, scaler and EMA; the progress it records."""
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
    progress = RunProgress(history=list(state["history"]), start_epoch=int(state["epoch"]) + 1,
                           best_value=state.get("best_value"), best_epoch=state.get("best_epoch"),
                           best_metrics=state.get("best_metrics"), resumed=state)
    log.info("resuming from %s at epoch %d", state_path, progress.start_epoch)
    return progress


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Set the random streams saved in a training state (CPU, and this device's on CUDA)."""
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)


def save_state(path: Path, gen: nn.Module, disc: nn.Module, ema: nn.Module | None, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, scaler: torch.amp.GradScaler, *, epoch: int, device: torch.device,
               progress: RunProgress, config: dict[str, Any]) -> None:
    """Write the training state after ``epoch`` to ``path`` (atomically), for ``--resume``."""
    state = {
        "generator": unwrap(gen).state_dict(), "ema": ema.state_dict() if ema is not None else None,
        "discriminator": unwrap(disc).state_dict(),
        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "scaler": scaler.state_dict(),
        "epoch": epoch, "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": progress.history, "best_value": progress.best_value, "best_epoch": progress.best_epoch,
        "best_metrics": progress.best_metrics,
        "config": {k: v for k, v in config.items() if v is not None},
    }
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


@dataclass
class Clock:
    """Wall-clock and CPU time of a run, counting what the run it resumes had spent, and its budget."""

    max_minutes: float | None
    max_cpu_minutes: float | None
    seconds_before: float = 0.0
    cpu_before: float = 0.0
    t_start: float = 0.0
    cpu_start: float = 0.0

    @classmethod
    def start(cls, max_minutes: float | None, max_cpu_minutes: float | None,
              history: list[dict[str, Any]]) -> Clock:
        """A clock started now, continuing from the totals in the last row of ``history``."""
        clock = cls(max_minutes, max_cpu_minutes)
        clock.t_start, clock.cpu_start = time.monotonic(), time.process_time()
        clock.seconds_before = float(history[-1].get("seconds_total", 0.0)) if history else 0.0
        clock.cpu_before = float(history[-1].get("cpu_seconds_total", 0.0) or 0.0) if history else 0.0
        return clock

    def over_budget(self) -> bool:
        """True once the wall-clock or CPU budget of this run is spent."""
        wall = self.max_minutes is not None and (time.monotonic() - self.t_start) / 60 >= self.max_minutes
        cpu = self.max_cpu_minutes is not None and (time.process_time() - self.cpu_start) / 60 >= self.max_cpu_minutes
        return wall or cpu

    def seconds_total(self) -> float:
        """Wall-clock seconds of this run and the ones it resumes."""
        return self.seconds_before + time.monotonic() - self.t_start

    def cpu_seconds_total(self) -> float:
        """CPU seconds of this run and the ones it resumes."""
        return self.cpu_before + time.process_time() - self.cpu_start
