"""From two layers to a fine-tuned model in QGIS: sar2opt:makepairs -> sar2opt:train -> sar2opt:translate
with SAMPLES (real SEN12MS-CR scenes, real QGIS 3.22, the repository's sar2opt CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import test_qgis_plugin as tq

ROI = "ROIs2017_winter_112_p797"


@pytest.fixture(scope="module")
def qgis(tmp_path_factory) -> tq.Qgis:
    """QGIS with the plugin from the release zip and a throwaway profile (as in test_qgis_plugin)."""
    if tq.QGIS_PROCESS is None:
        tq._missing("qgis_process.bin not found (run scripts/install_qgis.sh)")
    q = tq.Qgis(tmp_path_factory.mktemp("qgis"))
    enabled = q.process("plugins", "enable", "sar2opt_qgis")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return q

_CANCEL_TRAIN = tq._BOOT + """
params = json.loads(sys.argv[2])

class CancelAtFirstEpochProgress(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.seen = []
        self.progressChanged.connect(self.on_progress)
    def on_progress(self, value):
        self.seen.append(value)
        if value > 0 and not self.isCanceled():
            self.cancel()

feedback = CancelAtFirstEpochProgress()
try:
    processing.run("sar2opt:train", params, feedback=feedback, context=QgsProcessingContext())
    result = {"status": "finished"}
except QgsProcessingException as exc:
    result = {"status": "error", "message": str(exc)}
result["progress"] = feedback.seen[:5]
finish(result)
"""


def _run(qgis, alg, **params):
    proc = qgis.process("--json", "run", alg, "--", *(f"{k}={v}" for k, v in params.items()), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)["results"]


@pytest.mark.qgis
def test_two_layers_to_pairs_to_a_fine_tuned_model_to_a_translation_with_spread(qgis, data_dir, tmp_path):
    for command in ("pairs", "train", "translate"):
        tq.require_subcommand(command)
    s1 = data_dir / "pairs" / "sen12ms_cr" / "s1" / f"{ROI}.tif"
    s2 = data_dir / "pairs" / "sen12ms_cr" / "s2" / f"{ROI}.tif"
    pairs = tmp_path / "pairs"
    res = _run(qgis, "sar2opt:makepairs", SAR=s1, OPTICAL=s2, TILE=128, STRIDE=64, OUTPUT=pairs)
    assert res["OUTPUT"] == str(pairs)
    meta = json.loads((pairs / "metadata.json").read_text())
    assert len(meta["tiles"]) == 9 and meta["input"]["bands"] == ["VH"]

    ckpt = tmp_path / "tuned.safetensors"
    res = _run(qgis, "sar2opt:train", PAIRS=pairs, INIT="sar", EPOCHS=1, BATCH_SIZE=4, CROP_SIZE=64, DEVICE=1,
               RUN_FOLDER=tmp_path / "run", OUTPUT=ckpt)
    assert res["OUTPUT"] == str(ckpt) and ckpt.exists()
    from sar2opt_geo.models.checkpoint import card_hash, default_model_path, read_card

    card = read_card(ckpt)
    assert card.training["parent"]["hash"] == card_hash(default_model_path("sar"))
    assert card.name == "tuned"

    out = tmp_path / "rgb.tif"
    res = _run(qgis, "sar2opt:translate", INPUT=s1, OUTPUT=out, MODEL=ckpt, TILE_SIZE=256, OVERLAP=96, DEVICE=1,
               SAMPLES=3)
    spread = tmp_path / "rgb_spread.tif"
    assert res["OUTPUT"] == str(out) and res["SPREAD"] == str(spread)
    with rasterio.open(out) as rgb, rasterio.open(spread) as sp:
        assert (sp.crs, sp.transform, sp.shape) == (rgb.crs, rgb.transform, rgb.shape)
        assert sp.dtypes[0] == "float32" and rgb.tags()["SAR2OPT_MODEL"] == "tuned"
        values = sp.read(1)
        # the runs differ wherever the mean is not clipped: the SAR detail (keep-structure, default)
        # saturates bright objects at 255 in every run, where the spread of the clipped outputs is 0
        unclipped = (rgb.read() < 255).all(0)
        assert np.isfinite(values).all() and unclipped.mean() > 0.5 and (values[unclipped] > 0).mean() > 0.99


@pytest.mark.qgis
def test_cancel_training_keeps_the_run_folder_and_writes_no_checkpoint(qgis, data_dir, tmp_path):
    tq.require_subcommand("train")
    from sar2opt_geo.data.make_pairs import make_pairs

    d = data_dir / "pairs" / "sen12ms_cr"
    pairs = make_pairs(d / "s1" / f"{ROI}.tif", d / "s2" / f"{ROI}.tif", tmp_path / "pairs", tile_size=128).out_dir
    ckpt = tmp_path / "never.safetensors"
    params = {"PAIRS": str(pairs), "INIT": "sar", "EPOCHS": 50, "BATCH_SIZE": 1, "CROP_SIZE": 64, "DEVICE": 1,
              "RUN_FOLDER": str(tmp_path / "run"), "OUTPUT": str(ckpt)}
    result = tq._result(qgis.python(_CANCEL_TRAIN, str(qgis.plugins), json.dumps(params)))
    assert result["status"] == "error" and "cancel" in result["message"].lower(), result
    assert not ckpt.exists() and (tmp_path / "run").is_dir()
