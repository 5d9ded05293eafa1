"""One tiny pix2pix training run on real pairs: logs, samples, checkpoints, cards, resume, CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from sar2opt_geo.cli.main import build_parser, main
from sar2opt_geo.data import PairDataset, find_pairs
from sar2opt_geo.models.checkpoint import load_model, read_card
from sar2opt_geo.training import TrainConfig, card_for_dataset, train

TINY = {"width": 0.125, "crop_size": 64, "crops_per_image": 2, "batch_size": 2, "threads": 1, "checkpoint_every": 1,
        "seed": 7}


@pytest.fixture(scope="module")
def tiny_data(la_pairs):
    """3 training and 1 validation real LA pairs; 2 random 64 px crops per pair, 64 px validation crop."""
    pairs = find_pairs(la_pairs)
    train_ds = PairDataset(pairs[:3], crop_size=64, crops_per_image=2, augment=True, seed=7)
    val_ds = PairDataset(pairs[-1:], crop_size=64, random_crops=False)
    return train_ds, val_ds


#: The shipped recipe's options (cheap generator, structure terms, speckle), at test size.
LITE = {**TINY, "arch": "resnet_lite", "width": 0.25, "disc_width": 0.25, "lambda_ssim": 30.0, "lambda_grad": 30.0,
        "speckle_aug": True}


def _run(tiny_data, out, epochs, resume=False, progress=None, **config):
    train_ds, val_ds = tiny_data
    card = card_for_dataset("la", "sar", ("VH",), name="tiny")
    train_ds.speckle = None  # the trainer sets it from the config and the card
    return train(train_ds, val_ds, out, card, TrainConfig(epochs=epochs, **(config or TINY)), resume=resume,
                 command="pytest", progress=progress)


def test_one_epoch_writes_logs_samples_and_checkpoints(tiny_data, tmp_path):
    res = _run(tiny_data, tmp_path, epochs=1)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]
    for k in ("g_total", "g_adv", "g_l1", "d", "val_psnr", "val_ssim", "val_l1", "val_grad_r", "cpu_seconds"):
        assert float(rows[0][k]) == pytest.approx(float(rows[0][k]))  # a number, not NaN
    assert json.loads((tmp_path / "log.json").read_text())[0]["steps"] == 3  # 6 crops / batch 2
    assert (tmp_path / "samples" / "epoch_0001.png").stat().st_size > 0
    assert (tmp_path / "curves.png").exists()
    for name in ("best", "last", "epoch_0001"):
        assert (tmp_path / "checkpoints" / f"{name}.safetensors").exists()
    _, card = load_model(res.best)
    assert card.architecture_args == {"in_channels": 1, "out_channels": 3, "width": 0.125, "norm": "batch", "dropout": 0.5}
    assert card.input.bands == ("VH",) and card.input.pixel_spacing_m == 10.0
    assert card.training["command"] == "pytest" and card.training["recipe"]["lambda_l1"] == 100.0
    assert len(card.training["mean_colour"]) == 3
    assert card.training["autocast"] is None  # amp auto, pinned to float32 on every CPU by conftest
    assert set(card.metrics["validation"]) >= {"psnr", "ssim", "l1", "grad_r"}
    assert set(card.metrics["baseline_constant_colour"]) >= {"psnr", "ssim", "l1", "grad_r"}
    assert card.metrics["baseline_constant_colour"]["grad_r"] == 0.0  # a constant image has no edges
    assert rows[0]["g_ssim"] == rows[0]["g_grad"] == ""  # the article's recipe has no structure terms
    assert card.library_version


def test_resume_continues_exactly(tiny_data, tmp_path):
    straight = _run(tiny_data, tmp_path / "a", epochs=2)
    _run(tiny_data, tmp_path / "b", epochs=1)
    resumed = _run(tiny_data, tmp_path / "b", epochs=2, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    ga, _ = load_model(straight.last)
    gb, cb = load_model(resumed.last)
    assert cb.training["epochs_trained"] == 2
    for (k, va), vb in zip(ga.state_dict().items(), gb.state_dict().values()):
        assert torch.equal(va, vb), k  # same weights as an uninterrupted run


def test_resume_continues_exactly_with_the_shipped_recipe_options(tiny_data, tmp_path):
    """resnet_lite + SSIM + gradient terms + speckle augmentation: still bit-identical after --resume."""
    straight = _run(tiny_data, tmp_path / "a", 2, **LITE)
    _run(tiny_data, tmp_path / "b", 1, **LITE)
    resumed = _run(tiny_data, tmp_path / "b", 2, resume=True, **LITE)
    ga, ca = load_model(straight.last)
    gb, _ = load_model(resumed.last)
    assert ca.architecture == "resnet_lite" and ca.training["recipe"]["lambda_ssim"] == 30.0
    assert ca.training["augmentation"]["speckle"]["domain"] == "linear"
    for (k, va), vb in zip(ga.state_dict().items(), gb.state_dict().values()):
        assert torch.equal(va, vb), k
    row = resumed.history[-1]
    assert row["g_ssim"] > 0 and row["g_grad"] > 0 and row["cpu_seconds_total"] > row["cpu_seconds"] > 0


def test_lr_decay_is_pix2pix_linear_policy():
    from sar2opt_geo.training.trainer import lr_at_epoch

    cfg = TrainConfig(epochs=10, lr=1e-3, lr_decay_epochs=4)
    lrs = [lr_at_epoch(cfg, e) for e in range(1, 11)]
    assert lrs[:6] == [1e-3] * 6  # constant for epochs - N epochs
    assert lrs[6:] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])  # then linear towards 0 over the last 4
    assert lr_at_epoch(TrainConfig(epochs=10, lr=1e-3), 10) == 1e-3  # off by default


class _Interrupted(Exception):
    pass


def test_ema_and_lr_decay_resume_exactly_and_the_average_is_what_is_saved(tiny_data, tmp_path):
    opts = {**LITE, "lambda_gan": 0.0, "ema": 0.9, "lr_decay_epochs": 2}
    straight = _run(tiny_data, tmp_path / "a", 3, **opts)

    def stop_in_epoch_3(fraction, text):
        if text.startswith("epoch 3/"):
            raise _Interrupted  # as if killed: epoch 2's state is the last one saved

    with pytest.raises(_Interrupted):
        _run(tiny_data, tmp_path / "b", 3, progress=stop_in_epoch_3, **opts)
    resumed = _run(tiny_data, tmp_path / "b", 3, resume=True, **opts)
    ga, ca = load_model(straight.last)
    gb, _ = load_model(resumed.last)
    for (k, va), vb in zip(ga.state_dict().items(), gb.state_dict().values()):
        assert torch.equal(va, vb), k
    assert [h["lr"] for h in resumed.history] == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3])
    state = torch.load(tmp_path / "a" / "checkpoints" / "state_last.pt", weights_only=True)
    raw = state["generator"]
    averaged = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    saved = ga.state_dict()
    assert all(torch.equal(saved[k], averaged[k]) for k in saved)  # the checkpoint is the average ...
    assert any(not torch.equal(saved[k], raw[k]) for k in saved if saved[k].is_floating_point())  # ... not G itself
    assert int(state["ema"]["n_averaged"]) == sum(h["steps"] for h in straight.history)
    assert ca.training["recipe"]["ema"] == 0.9 and ca.training["recipe"]["lr_decay_epochs"] == 2


def test_no_gan_trains_no_discriminator_and_cpu_budget_stops(tiny_data, tmp_path):
    res = _run(tiny_data, tmp_path, 50, **{**TINY, "lambda_gan": 0.0, "lambda_ssim": 10.0, "max_cpu_minutes": 1e-4})
    assert len(res.history) == 1 and res.history[0]["steps"] == 1  # stopped after the first step past the budget
    assert res.history[0]["partial"] and res.history[0]["d"] is None and res.history[0]["g_adv"] is None
    state = torch.load(tmp_path / "checkpoints" / "state_last.pt", weights_only=True)
    assert state["opt_d"]["state"] == {}  # the discriminator was never stepped
    with open(tmp_path / "log.csv") as f:
        assert next(csv.DictReader(f))["d"] == ""


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(four_la_tiles, tmp_path):
    """Two processes with DistributedDataParallel over Gloo: the global batch is split across ranks."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "sar2opt_geo.cli.main", "train", str(four_la_tiles), str(out), "--width", "0.125", "--crop-size", "64",
           "--crops-per-image", "4", "--epochs", "1", "--batch-size", "4", "--threads", "1", "--val-crop", "64",
           "--progress", "none"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    history = json.loads((out / "log.json").read_text())
    assert [(h["epoch"], h["steps"]) for h in history] == [(1, 3)]  # 12 crops, 2 per rank per step
    assert read_card(out / "checkpoints" / "last.safetensors").training["distributed_world_size"] == 2


def test_cli_help_states_units_and_defaults():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["train"].format_help()
    for needle in ("(-25, 0) dB", "default: 100", "default: 128", "2e-4", "(y+1)/2", "easternmost"):
        assert needle in text, needle
    assert "11x11" in sub.choices["evaluate"].format_help()


@pytest.fixture
def four_la_tiles(la_pairs, tmp_path):
    """Four real LA tiles of one scene (links into ../shared/data): three columns, 262 is the easternmost."""
    root = tmp_path / "la4"
    for side in ("sar", "opt"):
        (root / side).mkdir(parents=True)
        for k in ("259", "262", "271", "273"):
            (root / side / f"{k}.tif").symlink_to(la_pairs / side / f"{k}.tif")
    return root


def test_cli_train_then_evaluate(four_la_tiles, tmp_path, capsys):
    la_pairs = four_la_tiles
    out = tmp_path / "run"
    rc = main(["train", str(la_pairs), str(out), "--mode", "colorize", "--epochs", "1", "--width", "0.125",
               "--crop-size", "64", "--batch-size", "4", "--val-crop", "64", "--threads", "1", "--progress", "none",
               "--export", str(tmp_path / "g.safetensors")])
    assert rc == 0
    card = read_card(tmp_path / "g.safetensors")
    assert card.input.quantity == "gray" and card.input.gray_weights == (0.299, 0.587, 0.114)
    assert "--mode colorize" in card.training["command"]
    assert card.training["data"]["validation_pairs"] == ["262"]
    capsys.readouterr()
    rc = main(["evaluate", str(tmp_path / "g.safetensors"), str(la_pairs), "--split", "area", "--val-crop", "64",
               "--output", str(tmp_path / "m.json"), "--progress", "none"])
    assert rc == 0
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["images"] == 1 and res["pairs"] == ["262"] and res["data"]["mode"] == "colorize"
    assert res["baseline_colour_source"].startswith("training set")
    # same data, same model as the card's validation numbers: the CLI reproduces them
    for k in ("psnr", "ssim", "l1", "grad_r"):
        assert res["model_metrics"][k] == pytest.approx(card.metrics["validation"][k], rel=1e-4)
        assert res["baseline_constant_colour"][k] == pytest.approx(card.metrics["baseline_constant_colour"][k], rel=1e-4)
    printed = capsys.readouterr().out
    # issue 24: the two baselines (card's training mean vs the data's own mean) were labelled the same
    assert "flat colour (training mean)" in printed and "grad r" in printed
    assert res["baseline_label"] == "flat colour (training mean)"


def test_amp_auto_on_cpu_follows_the_cpus_bfloat16(monkeypatch):
    """Issue 22: --amp bf16 runs on CPU; auto is bf16 where the CPU has hardware bfloat16 and float32
    elsewhere (the CPU's flags faked both ways, so this does not depend on the machine), and
    SAR2OPT_PRECISION pins it (the suite pins fp32 in conftest)."""
    import torch

    from sar2opt_geo.engine import backends
    from sar2opt_geo.training.autocast import autocast_for

    cpu = torch.device("cpu")
    assert autocast_for(cpu, "bf16") == (torch.bfloat16, False) and autocast_for(cpu, "none") == (None, False)
    assert autocast_for(cpu, "auto") == (None, False)  # pinned by conftest
    monkeypatch.delenv(backends.PRECISION_ENV)
    for has_bf16, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(backends, "cpu_has_fast_bf16", lambda has=has_bf16: has)
        assert autocast_for(cpu, "auto") == (expected, False)
        assert autocast_for(cpu, "none") == (None, False)
    monkeypatch.setenv(backends.PRECISION_ENV, "bf16")
    assert autocast_for(cpu, "auto") == (torch.bfloat16, False)
    from sar2opt_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="CUDA only"):
        autocast_for(cpu, "fp16")
