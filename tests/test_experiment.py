"""The two-generator experiment end to end on real data with tiny generators: files, tables, determinism."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import rasterio

from sar2opt_geo.cli.experiment import scene_specs
from sar2opt_geo.experiment.run import ExperimentConfig, optical_partner, run_experiment
from sar2opt_geo.models.checkpoint import save_generator
from sar2opt_geo.training.cards import card_for_dataset


@pytest.fixture
def tiny_models(tmp_path, tiny_generator):
    paths = {}
    for kind, mode, seed in (("sar", "sar", 0), ("gray", "colorize", 1)):
        card = card_for_dataset("la", mode, name=f"tiny-{kind}").replace(
            architecture_args={"in_channels": 1, "out_channels": 3, "width": 0.125}
        )
        paths[kind] = save_generator(tiny_generator(1, 3, seed=seed), card, tmp_path / f"tiny_{kind}.safetensors")
    return paths


@pytest.fixture
def la_subset(tmp_path, la_pairs):
    """Ten adjacent Los Angeles pairs (symlinks to the real files) and their metadata: a small paired set."""
    root = tmp_path / "la_subset"
    keys = sorted(p.stem for p in (la_pairs / "sar").glob("*.tif"))[:10]
    for side in ("sar", "opt"):
        (root / side).mkdir(parents=True)
        for k in keys:
            os.symlink(la_pairs / side / f"{k}.tif", root / side / f"{k}.tif")
    os.symlink(la_pairs / "metadata.json", root / "metadata.json")
    return root


def _config(out: Path, models: dict, paired: Path, scene: Path) -> ExperimentConfig:
    return ExperimentConfig(
        out_dir=out, scenes=scene_specs([str(scene)]), sar_model=models["sar"], gray_model=models["gray"],
        paired_data=paired, max_pairs=2, eval_crop=64, panel_pairs=1, scene_crop=128, scene_crops=1,
        tile_size=256, overlap=128, seed=3,
    )


def _numbers(metrics: dict) -> dict:
    return {"paired": metrics["paired"]["table"], "structure": [s["structure"] for s in metrics["scenes"]],
            "ranges": [[s[k]["ranges"] for k in ("plain_percentile", "sar2rgb", "gray2rgb")] for s in metrics["scenes"]]}


def test_experiment_end_to_end_and_deterministic(tmp_path, tiny_models, la_subset, data_dir):
    scene = min((data_dir / "pairs" / "sen12ms_cr" / "s1").glob("*.tif"))
    assert optical_partner(scene) == data_dir / "pairs" / "sen12ms_cr" / "s2" / scene.name

    res = run_experiment(_config(tmp_path / "run1", tiny_models, la_subset, scene))
    out = res.out_dir
    m = json.loads((out / "metrics.json").read_text())
    # paired metrics: three generator rows and the baseline, evaluated on held-out pairs only
    table = m["paired"]["table"]
    assert set(table) == {
        "SAR->RGB (input: SAR)", "gray->RGB (input: gray of the real optical)",
        "gray->RGB (input: SAR, as in the article)", "constant colour (baseline)",
    }
    for row in table.values():
        assert row["images"] == 2 and 0 < row["psnr"] < 60 and -1 <= row["ssim"] <= 1 and 0 <= row["l1"] <= 1
        assert -1 <= row["grad_r"] <= 1
    assert table["constant colour (baseline)"]["grad_r"] == 0.0
    assert table["gray->RGB (input: gray of the real optical)"]["grad_r"] > 0.3  # its input carries the edges
    assert m["paired"]["pairs_training_area"] > 0 and "training-area" in m["paired"]["baseline"]["note"]
    with open(out / "paired_metrics.csv") as f:
        rows = list(csv.DictReader(f))
        assert len(rows) == 4 and all("grad_r" in r for r in rows)
    assert "| gradient r |" in (out / "report.md").read_text()
    # composites: four GeoTIFFs + PNGs per scene, all on the scene grid
    with rasterio.open(scene) as src:
        grid = (src.crs, src.transform, src.shape)
    assert len(res.composites) == 4
    for p in res.composites:
        with rasterio.open(p) as ds:
            assert (ds.crs, ds.transform, ds.shape) == grid and ds.count == 3
        assert p.with_suffix(".png").exists()
    structure = m["scenes"][0]["structure"]
    assert len(structure) == 3 and all(len(bands) == 3 for bands in structure.values())
    yard = structure["plain (fixed dB) vs plain (percentile), yardstick"]
    assert all(b["pearson"] > 0.9 for b in yard)  # same data, different stretch: nearly linear
    for bands in structure.values():
        assert all(-1 <= b["pearson"] <= 1 and not math.isnan(b["ssim"]) for b in bands)
    # figures and report
    assert {f.name for f in res.figures} == {"paired_panels.png", f"scene_{scene.stem}_crop1.png"}
    assert all(f.stat().st_size > 10_000 for f in res.figures)
    report = res.report.read_text()
    for needle in ("tiny-sar", "tiny-gray", "card hash", "| constant colour (baseline) |", "figures/paired_panels.png",
                   "Structure kept", str(la_subset)):
        assert needle in report
    # same inputs, same seed: same numbers
    res2 = run_experiment(_config(tmp_path / "run2", tiny_models, la_subset, scene))
    assert _numbers(res2.metrics) == _numbers(m)


def test_experiment_needs_some_input(tmp_path, tiny_models):
    from sar2opt_geo.errors import DatasetError

    with pytest.raises(DatasetError, match="--scene"):
        run_experiment(ExperimentConfig(out_dir=tmp_path / "x", sar_model=tiny_models["sar"], gray_model=tiny_models["gray"]))


def test_panel_crops_avoid_nodata_and_follow_the_seed():
    import numpy as np

    from sar2opt_geo.experiment.report import choose_crops

    valid = np.ones((512, 640), bool)
    valid[:, :300] = False  # the west half is nodata
    crops = choose_crops(valid, 128, 3, seed=5)
    assert len(crops) == 3 and crops == choose_crops(valid, 128, 3, seed=5)
    for w in crops:
        assert w.col_off >= 300 and w.width == w.height == 128
    assert choose_crops(np.ones((100, 90), bool), 128, 2, 0)[0].width == 90  # small scene: itself
