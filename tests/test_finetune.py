"""sar2opt train --init: fine-tune a generator on pairs built by sar2opt pairs (real SEN12MS-CR data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sar2opt_geo.cli.main import main
from sar2opt_geo.data.make_pairs import make_pairs
from sar2opt_geo.models.checkpoint import (
    card_hash,
    default_model_path,
    load_model,
    read_card,
)

ROIS = ("ROIs1970_fall_139_p839", "ROIs2017_winter_112_p797")
QUICK = ["--epochs", "1", "--batch-size", "4", "--crop-size", "64", "--threads", "1", "--device", "cpu",
         "--progress", "none", "--split", "area", "--no-augment"]


@pytest.fixture(scope="module")
def pairs(data_dir, tmp_path_factory):
    """Pairs from both real SEN12MS-CR patches (VH, the bundled model's domain), one dataset, two scene pairs."""
    d = data_dir / "pairs" / "sen12ms_cr"
    out = tmp_path_factory.mktemp("ft") / "pairs"
    for k, roi in enumerate(ROIS):
        make_pairs(d / "s1" / f"{roi}.tif", d / "s2" / f"{roi}.tif", out, tile_size=128, stride=64, append=k > 0)
    return out


def _distance(a: dict, b: dict) -> float:
    keys = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    return float(sum(torch.sum((a[k] - b[k]) ** 2) for k in keys) ** 0.5)


def test_one_epoch_from_the_bundled_sar_model_records_parent_and_pairs_domain(pairs, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(pairs), str(out), "--init", "sar", *QUICK]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1
    ckpt = out / "checkpoints" / "last.safetensors"
    card = read_card(ckpt)
    parent = read_card(default_model_path("sar"))
    assert card.architecture_args["width"] == parent.architecture_args["width"] == 0.25
    info = card.training["parent"]
    assert info["hash"] == card_hash(default_model_path("sar")) and info["name"] == parent.name
    assert info["input"] == {"sensor": "Sentinel-1", "bands": ["VH"], "frequency_band": "C", "pixel_spacing_m": 10.0}
    meta = json.loads((pairs / "metadata.json").read_text())
    d = card.input
    assert (d.sensor, list(d.bands), d.frequency_band, d.pixel_spacing_m) == (
        meta["input"]["sensor"], meta["input"]["bands"], meta["input"]["frequency_band"],
        meta["input"]["pixel_spacing_m"])
    assert (d.normalisation, d.percentile, d.quantize_levels) == ("percentile", 99.0, 255)
    assert card.training["data"]["layout"] == "pairs" and "--init sar" in card.training["command"]
    # started from the parent: after one short epoch much nearer to it than to a fresh initialisation
    tuned, _ = load_model(ckpt)
    start, _ = load_model(default_model_path("sar"))
    torch.manual_seed(0)
    fresh = type(tuned)(**card.architecture_args)
    a, b, c = tuned.state_dict(), start.state_dict(), fresh.state_dict()
    assert 0 < _distance(a, b) < 0.25 * _distance(a, c)  # measured: 0.21 vs 3.43
    assert np.isfinite(card.metrics["validation"]["psnr"])


def test_parent_must_fit_the_pairs(pairs, data_dir, tmp_path, capsys):
    assert main(["train", str(pairs), str(tmp_path / "g"), "--init", "gray", *QUICK]) == 1
    assert "rebuild them with sar2opt pairs --model" in capsys.readouterr().err
    d = data_dir / "pairs" / "sen12ms_cr"
    two = tmp_path / "two"
    make_pairs(d / "s1" / f"{ROIS[0]}.tif", d / "s2" / f"{ROIS[0]}.tif", two, tile_size=128, stride=64,
               sar_bands="VV,VH")
    assert main(["train", str(two), str(tmp_path / "x"), "--init", "sar", *QUICK]) == 1
    assert "pairs have 2 input and 3 output band(s), --init" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() and not (tmp_path / "x").exists()
