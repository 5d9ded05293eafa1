"""The QGIS plugin in a real QGIS 3.22 (``qgis_process.bin`` and ``/usr/bin/python3`` with
``qgis.core``), driving the real ``sar2opt`` CLI of this repository's ``.venv``.

The release zip is built and unpacked into a temporary folder (``QGIS_PLUGINPATH``) and QGIS runs with a
temporary ``HOME`` so the user's profile is never touched. Tests skip when QGIS is absent,
except under ``SAR2OPT_REQUIRE_DATA=1`` (CI), where they fail.

The ``backend`` tests at the end exercise the subprocess plumbing (progress, errors,
SIGTERM-then-SIGKILL on cancel, partial-output removal) against a small fake ``sar2opt``
script written by the test: a test double *in addition to* the end-to-end runs above it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAR2OPT = ROOT / ".venv" / "bin" / "sar2opt"
QGIS_PROCESS = shutil.which("qgis_process.bin") or ("/usr/bin/qgis_process.bin" if Path("/usr/bin/qgis_process.bin").exists() else None)
QGIS_PYTHON = "/usr/bin/python3"
REQUIRED = os.environ.get("SAR2OPT_REQUIRE_DATA") == "1"
ALGORITHMS = ("sar2opt:setup", "sar2opt:translate", "sar2opt:translateaoi", "sar2opt:composite", "sar2opt:info",
              "sar2opt:makepairs", "sar2opt:train")

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "plugin"))
import build_plugin_zip
from sar2opt_qgis import backend


def _missing(message: str) -> None:
    if REQUIRED:
        pytest.fail(message + " (SAR2OPT_REQUIRE_DATA=1: CI must have it)")
    pytest.skip(message)


@functools.cache
def _has_subcommand(name: str) -> bool:
    if not SAR2OPT.exists():
        return False
    proc = subprocess.run([str(SAR2OPT), name, "--help"], check=False, capture_output=True, text=True, timeout=120)
    return proc.returncode == 0


def require_subcommand(name: str) -> None:
    if not _has_subcommand(name):
        _missing(f"`{SAR2OPT} {name}` is not available")


class Qgis:
    """Runs ``qgis_process.bin`` and QGIS's Python with the plugin and a throwaway profile."""

    def __init__(self, root: Path):
        self.plugins = root / "plugins"
        # install what users get: the release zip, unpacked as QGIS's "Install from ZIP" does
        with zipfile.ZipFile(build_plugin_zip.build_zip(root / "dist")) as zf:
            zf.extractall(self.plugins)
        self.plugin_dir = self.plugins / build_plugin_zip.PLUGIN_NAME
        home = root / "home"
        (home / "runtime").mkdir(parents=True)
        (home / "runtime").chmod(0o700)
        self.env = dict(os.environ)
        self.env.update(
            QT_QPA_PLATFORM="offscreen",
            QGIS_PLUGINPATH=str(self.plugins),
            HOME=str(home),
            XDG_RUNTIME_DIR=str(home / "runtime"),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            SAR2OPT_EXECUTABLE=str(SAR2OPT),
            PYTHONWARNINGS="ignore",
        )

    def process(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [QGIS_PROCESS, *args], check=False, capture_output=True, text=True, timeout=timeout, env={**self.env, **(env or {})}
        )

    def python(self, script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [QGIS_PYTHON, "-c", script, *args], check=False, capture_output=True, text=True, timeout=timeout, env=self.env
        )


@pytest.fixture(scope="module")
def qgis(tmp_path_factory) -> Qgis:
    if QGIS_PROCESS is None:
        _missing("qgis_process.bin not found (run scripts/install_qgis.sh)")
    q = Qgis(tmp_path_factory.mktemp("qgis"))
    enabled = q.process("plugins", "enable", "sar2opt_qgis")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return q


# -- small real checkpoints (the bundled weights are trained elsewhere) ----------------------------


def _save_model(tiny_generator, path: Path, input_domain: dict, width: float, seed: int = 0) -> Path:
    from sar2opt_geo.models.card import InputDomain, ModelCard
    from sar2opt_geo.models.checkpoint import save_generator

    args = {"in_channels": 1, "out_channels": 3, "width": width}
    card = ModelCard(name=path.stem, architecture="unet_article", architecture_args=args, input=InputDomain(**input_domain))
    return save_generator(tiny_generator(1, 3, width, seed=seed), card, path)


@pytest.fixture
def s1vv_model(tiny_generator, tmp_path_factory) -> Path:
    """Tiny Sentinel-1 VV generator (dB clipped to -25..0, 20 m), for the S1 dB GeoTIFF."""
    domain = {"sensor": "Sentinel-1", "bands": ("VV",), "quantity": "sigma0", "normalisation": "db_clip", "units": "db",
              "db_range": (-25.0, 0.0), "pixel_spacing_m": 20.0, "frequency_band": "C"}
    return _save_model(tiny_generator, tmp_path_factory.mktemp("models") / "s1vv.safetensors", domain, 0.125, seed=1)


@pytest.fixture
def gray_model(tiny_generator, tmp_path_factory) -> Path:
    """Half-width gray -> RGB generator for the Landsat-8 scene: slow enough to cancel mid-way."""
    domain = {"sensor": "optical", "bands": ("gray",), "quantity": "gray", "normalisation": "percentile", "percentile": 99.0,
              "gray_from": ("red", "green", "blue"), "gray_weights": (0.299, 0.587, 0.114), "pixel_spacing_m": 30.0}
    return _save_model(tiny_generator, tmp_path_factory.mktemp("models") / "gray.safetensors", domain, 0.5)


# -- QGIS's Python drives the algorithm (cancel, memory layers) --------------------------------

_BOOT = """
import json, os, sys, time, glob
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
import processing
from processing.core.Processing import Processing
Processing.initialize()
sys.path.insert(0, sys.argv[1])
import sar2opt_qgis
plugin = sar2opt_qgis.classFactory(None)
plugin.initProcessing()

def finish(result):
    sys.stdout.write("RESULT " + json.dumps(result) + "\\n")
    sys.stdout.flush()
    os._exit(0)  # skip QGIS's teardown: the answer is out
"""

_CANCEL = _BOOT + """
from qgis.core import QgsRasterLayer
params = json.loads(sys.argv[2])
out = params["OUTPUT"]
params["INPUT"] = QgsRasterLayer(params["INPUT"], "scene layer")  # a layer, as chosen in the dialog
assert params["INPUT"].isValid()

class CancelAfterFirstProgress(QgsProcessingFeedback):
    '''isCanceled() turns true at the first progress line that comes while the output is
    being written (a hidden temporary or scratch folder of it exists beside OUTPUT).'''
    def __init__(self):
        super().__init__()
        self.cancelled_at = None
        self.temporaries_at_cancel = []
        self.progressChanged.connect(self.on_progress)
    def on_progress(self, value):
        stem = os.path.splitext(os.path.basename(out))[0]
        found = glob.glob(os.path.join(os.path.dirname(out), "." + stem + ".*"))
        if self.cancelled_at is None and (found or value >= 95):
            self.temporaries_at_cancel = [os.path.basename(f) for f in found]
            self.cancelled_at = time.time()
            self.cancel()

feedback = CancelAfterFirstProgress()
t0 = time.time()
try:
    processing.run("sar2opt:translate", params, feedback=feedback, context=QgsProcessingContext())
    result = {"status": "finished"}
except QgsProcessingException as exc:
    result = {"status": "error", "message": str(exc)}
result["seconds_total"] = time.time() - t0
result["seconds_to_stop"] = None if feedback.cancelled_at is None else time.time() - feedback.cancelled_at
result["temporaries_at_cancel"] = feedback.temporaries_at_cancel
finish(result)
"""

_OPEN_RASTER = """
import json, os, sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "result")
e = layer.extent()
colours = [layer.dataProvider().colorInterpretationName(i) for i in range(1, layer.bandCount() + 1)]
print(json.dumps({"valid": layer.isValid(), "bands": layer.bandCount(), "colours": colours, "authid": layer.crs().authid(),
                  "extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()],
                  "width": layer.width(), "height": layer.height()}))
sys.stdout.flush()
os._exit(0)
"""


def _result(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no result from QGIS's Python (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


# -- the provider in qgis_process ----------------------------------------------------------------


@pytest.mark.qgis
def test_plugin_enables_and_lists_the_algorithms(qgis):
    listed = qgis.process("list")
    assert listed.returncode == 0, listed.stderr
    section = listed.stdout.split("\nsar2opt\n", 1)[1].split("\n\n", 1)[0]  # the provider's block
    assert {line.split()[0] for line in section.splitlines() if line.strip()} == set(ALGORITHMS)


_DESCRIBE = _BOOT + """
from qgis.core import QgsApplication, QgsProcessingParameterDefinition as P
out = {}
for alg in QgsApplication.processingRegistry().providerById("sar2opt").algorithms():
    out[alg.id()] = {
        "group": alg.groupId(),
        "help": alg.shortHelpString(),
        "summary": alg.shortDescription(),
        "can_execute": list(alg.canExecute()),
        "can_cancel": bool(alg.flags() & alg.FlagCanCancel),
        "outputs": [o.name() for o in alg.outputDefinitions()],
        "parameters": {p.name(): {"type": p.type(), "description": p.description(), "default": p.defaultValue(),
                                  "advanced": bool(p.flags() & P.FlagAdvanced), "optional": bool(p.flags() & P.FlagOptional),
                                  "minimum": p.minimum() if hasattr(p, "minimum") else None}
                       for p in alg.parameterDefinitions()},
    }
finish(out)
"""


@pytest.mark.qgis
def test_algorithm_parameters_and_help(qgis):
    # the command-line view of one algorithm ...
    proc = qgis.process("--json", "help", "sar2opt:translate")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["algorithm_details"]["can_cancel"] and info["algorithm_details"]["short_description"]
    params = info["parameters"]
    assert params["TILE_SIZE"]["raw_definition"]["default"] is None and "pixels" in params["TILE_SIZE"]["description"]
    assert params["TILE_SIZE"]["optional"] and params["MAX_MEMORY_MB"]["raw_definition"]["default"] == 1500
    assert params["OVERLAP"]["is_advanced"] and params["DEVICE"]["is_advanced"] and params["TARGET_CRS"]["is_advanced"]
    assert params["MODEL"]["optional"] and params["TARGET_CRS"]["optional"] and not params["INPUT"]["optional"]
    assert params["OUTPUT"]["is_destination"] and params["INPUT"]["type"]["id"] == "raster"
    # ... and every algorithm as QGIS's Python sees it (one QGIS start instead of eight)
    algs = _result(qgis.python(_DESCRIBE, str(qgis.plugins)))
    expected = {
        "sar2opt:setup": {"TORCH", "PYTHON", "TORCH_INDEX_URL", "REINSTALL"},
        "sar2opt:translate": {"INPUT", "INPUT_2", "SENSOR", "INPUT_UNITS", "MODEL", "BANDS", "TILE_SIZE", "OVERLAP", "MAX_MEMORY_MB", "BACKEND", "PRECISION", "DEVICE",
                              "TARGET_CRS", "MATCH_INPUT_GRID", "SAMPLES", "KEEP_STRUCTURE", "OUTPUT"},
        "sar2opt:translateaoi": {"INPUT", "AOI", "NAME_FIELD", "BUFFER", "MODEL", "BANDS", "TILE_SIZE", "OVERLAP",
                                 "MAX_MEMORY_MB", "BACKEND", "PRECISION", "DEVICE", "WORKERS", "OUTPUT"},
        "sar2opt:composite": {"INPUT", "CO_POL", "CROSS_POL", "STRETCH", "OUTPUT"},
        "sar2opt:info": {"INPUT"},
        "sar2opt:makepairs": {"SAR", "OPTICAL", "PIXEL_SPACING", "TILE", "STRIDE", "SAR_BANDS", "OPTICAL_BANDS", "MAX_NODATA",
                              "MAX_CLOUD", "MAX_DAYS", "APPEND", "OUTPUT"},
        "sar2opt:train": {"PAIRS", "INIT", "EPOCHS", "BATCH_SIZE", "CROP_SIZE", "MAX_MINUTES", "DEVICE", "RESUME", "RUN_FOLDER",
                          "OUTPUT"},
    }
    assert set(algs) == set(expected)
    for alg_id, names in expected.items():
        alg = algs[alg_id]
        assert set(alg["parameters"]) == names, alg_id
        assert alg["can_cancel"] and alg["group"] in ("setup", "translation", "visualisation", "inspection", "training")
        # a one-line tooltip that the help text does not repeat (qgis_process help prints both)
        assert alg["summary"] and "\n" not in alg["summary"] and alg["summary"] not in alg["help"], alg_id
        assert alg["summary"].split(" ", 3)[:3] != alg["help"].split(" ", 3)[:3], alg_id
        assert alg["can_execute"] == [True, ""], alg_id  # SAR2OPT_EXECUTABLE is set in this profile
        if alg_id != "sar2opt:setup":
            assert "CRS" in alg["help"], f"{alg_id}: the help must say what happens to the CRS"
        for name in names & {"TILE_SIZE", "OVERLAP", "BUFFER"}:
            unit = "metres" if name == "BUFFER" else "pixels"
            assert unit in alg["parameters"][name]["description"] and unit in alg["help"], (alg_id, name)
        if "TILE_SIZE" in names:
            p = alg["parameters"]
            assert (p["TILE_SIZE"]["default"], p["OVERLAP"]["default"]) == (None, None)  # chosen for the model
            assert p["TILE_SIZE"]["optional"] and p["MAX_MEMORY_MB"]["default"] == 1500 and p["BACKEND"]["advanced"]
            assert (p["TILE_SIZE"]["minimum"], p["OVERLAP"]["minimum"]) == (112, 96)  # from the model: 16 px steps, 2 x 48 px margin
            assert p["OVERLAP"]["advanced"] and p["DEVICE"]["advanced"] and not p["TILE_SIZE"]["advanced"]
            assert "default" in alg["help"].lower()
    assert algs["sar2opt:translateaoi"]["outputs"] == ["OUTPUT", "SUMMARY"]
    assert set(algs["sar2opt:translate"]["outputs"]) == {"OUTPUT", "SPREAD"}
    assert {"INFO", "CRS", "WIDTH", "HEIGHT"} <= set(algs["sar2opt:info"]["outputs"])


_LIFECYCLE = _BOOT + """
from qgis.core import QgsApplication
from processing.core.ProcessingConfig import ProcessingConfig
registry = QgsApplication.processingRegistry()
out = {"setting_default": ProcessingConfig.getSetting("SAR2OPT_EXECUTABLE")}
# the provider setting, with no environment override, picks the executable
os.environ.pop("SAR2OPT_EXECUTABLE", None)
ProcessingConfig.setSettingValue("SAR2OPT_EXECUTABLE", sys.argv[2])
os.environ["FAKE_MODE"] = "ok"
res = processing.run("sar2opt:translate", {"INPUT": sys.argv[3], "OUTPUT": sys.argv[4]}, feedback=QgsProcessingFeedback())
out["output"] = res["OUTPUT"]
# run as the dialog does (the output goes onto the map): the layers are named after source, model, samples
from qgis.core import QgsProcessingOutputLayerDefinition, QgsProject
context = QgsProcessingContext()
context.setProject(QgsProject.instance())
named = sys.argv[4].replace(".tif", "_named.tif")
processing.run("sar2opt:translate", {"INPUT": sys.argv[3], "SAMPLES": 3,
                                     "OUTPUT": QgsProcessingOutputLayerDefinition(named, QgsProject.instance())},
               feedback=QgsProcessingFeedback(), context=context)
out["layer_names"] = sorted(context.layerToLoadOnCompletionDetails(p).name for p in context.layersToLoadOnCompletion())
ProcessingConfig.setSettingValue("SAR2OPT_EXECUTABLE", "")  # the setting wins over SAR2OPT_EXECUTABLE: leave the profile as found
# GUI life cycle: unload removes the provider and its setting, initGui brings them back once
plugin.unload()
out["after_unload"] = [registry.providerById("sar2opt") is not None, ProcessingConfig.getSetting("SAR2OPT_EXECUTABLE")]
again = sar2opt_qgis.classFactory(None)
again.initGui()
again.initGui()
out["after_initgui"] = [p.id() for p in registry.providers()].count("sar2opt")
out["algorithms"] = len(registry.providerById("sar2opt").algorithms())
finish(out)
"""


@pytest.mark.qgis
def test_provider_setting_and_plugin_lifecycle(qgis, fake_sar2opt, s1_db_tif, tmp_path):
    out = tmp_path / "via_setting.tif"
    result = _result(qgis.python(_LIFECYCLE, str(qgis.plugins), str(fake_sar2opt), str(s1_db_tif), str(out)))
    assert result["setting_default"] in ("", None)  # default: sar2opt on PATH
    assert result["output"] == str(out)
    assert json.loads(out.read_text())[:3] == ["translate", str(s1_db_tif), str(out)]  # the fake wrote its argv
    stem = s1_db_tif.stem  # issue 24: every result was "Translated RGB", the spread "OUTPUT spread"
    assert result["layer_names"] == [f"{stem} - fake_model RGB (mean of 3 samples)",
                                     f"{stem} - fake_model spread (std of luminance, 3 samples)"]
    assert result["after_unload"] == [False, None]
    assert result["after_initgui"] == 1 and result["algorithms"] == len(ALGORITHMS)


@pytest.mark.qgis
def test_translate_in_qgis_matches_the_library(qgis, s1_db_tif, s1vv_model, tmp_path):
    require_subcommand("translate")
    import rasterio

    out = tmp_path / "qgis_rgb.tif"
    ref = tmp_path / "cli_rgb.tif"
    t0 = time.perf_counter()
    proc = qgis.process(
        "run", "sar2opt:translate", "--", f"INPUT={s1_db_tif}", f"OUTPUT={out}", f"MODEL={s1vv_model}", "TILE_SIZE=256", "OVERLAP=96", "DEVICE=1"
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(out) in proc.stdout  # qgis_process reports the OUTPUT result
    cli = subprocess.run(
        [str(SAR2OPT), "translate", str(s1_db_tif), str(ref), "--model", str(s1vv_model), "--tile", "256", "--overlap", "96", "--device", "cpu", "--progress", "none"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    with rasterio.open(out) as a, rasterio.open(ref) as b, rasterio.open(s1_db_tif) as src:
        assert a.count == 3 and a.dtypes[0] == "uint8"
        assert a.crs == b.crs == src.crs
        assert a.transform.almost_equals(b.transform) and (a.width, a.height) == (b.width, b.height)
        # same arguments reached the library. Two processes (qgis_process's backend, the CLI) may run
        # other vector ISAs or thread splits: float32 sums in another order can move a value across a
        # uint8 rounding boundary, so +-1 on a few values; other arguments would change far more
        diff = np.abs(a.read().astype(int) - b.read().astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
        bounds = b.bounds
    opened = json.loads(qgis.python(_OPEN_RASTER, str(out)).stdout.strip().splitlines()[-1])
    # three colour bands; QGIS shows the GeoTIFF's per-dataset nodata mask as a 4th, alpha band
    assert opened["valid"] and opened["colours"] == ["Red", "Green", "Blue", "Alpha"]
    assert opened["authid"] == f"EPSG:{rasterio.crs.CRS.from_user_input(a.crs).to_epsg()}"
    np.testing.assert_allclose(opened["extent"], list(bounds), atol=1e-6)
    print(f"qgis_process run sar2opt:translate on {s1_db_tif.name}: {seconds:.1f} s")


@pytest.mark.qgis
def test_bad_input_is_a_processing_error_with_the_library_message(qgis, tmp_path):
    require_subcommand("translate")
    bogus = tmp_path / "not_a_raster.tif"
    bogus.write_text("this is not a GeoTIFF\n")
    out = tmp_path / "never.tif"
    proc = qgis.process("run", "sar2opt:translate", "--", f"INPUT={bogus}", f"OUTPUT={out}", "DEVICE=1")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    errors = [ln for ln in text.splitlines() if ln.startswith("ERROR:")]
    assert errors and "not_a_raster.tif" in " ".join(errors), text[-3000:]
    assert "Traceback" not in text  # a Processing error, not a crash
    assert sorted(tmp_path.iterdir()) == [bogus]  # no output, no temporary


@pytest.mark.qgis
def test_cancel_mid_run_removes_partial_output(qgis, landsat8_tif, gray_model, tmp_path):
    require_subcommand("translate")
    out = tmp_path / "cancelled.tif"
    params = {"INPUT": str(landsat8_tif), "OUTPUT": str(out), "MODEL": str(gray_model), "TILE_SIZE": 256, "OVERLAP": 96, "DEVICE": 1}
    result = _result(qgis.python(_CANCEL, str(qgis.plugins), json.dumps(params)))
    assert result["status"] == "error" and "cancel" in result["message"].lower(), result
    assert result["temporaries_at_cancel"], "the cancel must come while the output is being written"
    print(f"cancelled with {result['temporaries_at_cancel']} beside OUTPUT; stopped {result['seconds_to_stop']:.2f} s later")
    assert result["seconds_to_stop"] is not None and result["seconds_to_stop"] < backend.TERMINATE_GRACE_S + 5
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], [p.name for p in tmp_path.iterdir()]


@pytest.mark.qgis
def test_info_reports_what_the_reader_sees(qgis, s1_db_tif, s1_safe):
    require_subcommand("info")
    proc = qgis.process("--json", "run", "sar2opt:info", "--", f"INPUT={s1_db_tif}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout)["results"]
    report = json.loads(results["INFO"])
    import rasterio

    with rasterio.open(s1_db_tif) as src:  # what GDAL sees, independently of the reader
        assert (results["WIDTH"], results["HEIGHT"]) == (src.width, src.height)
        assert results["CRS"] == f"EPSG:{src.crs.to_epsg()}"
        np.testing.assert_allclose(report["bounds"], list(src.bounds))
    assert results["SENSOR"] == "Sentinel-1" and results["BANDS"] == "VV"
    assert "VV" in proc.stdout  # the report is also logged
    # a product folder, which QGIS itself cannot open as a layer, is a valid INPUT too
    proc = qgis.process("--json", "run", "sar2opt:info", "--", f"INPUT={s1_safe}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout)["results"]
    report = json.loads(results["INFO"])
    assert (results["WIDTH"], results["HEIGHT"]) == (26102, 16705)  # the GRDH measurement size
    assert results["CRS"] == "" and report["georeferencing"] == "gcps" and report["gcps"] > 0


@pytest.mark.qgis
def test_composite_in_qgis_is_the_documented_db_stretch(qgis, data_dir, tmp_path):
    require_subcommand("composite")
    import rasterio

    scene = data_dir / "pairs" / "sen12ms_cr" / "s1" / "ROIs1970_fall_139_p839.tif"  # VV, VH in dB
    out = tmp_path / "composite.tif"
    proc = qgis.process("run", "sar2opt:composite", "--", f"INPUT={scene}", f"OUTPUT={out}", "CO_POL=vv", "CROSS_POL=VH")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["composite.tif"]  # --no-quicklook, no leftovers
    with rasterio.open(scene) as src, rasterio.open(out) as comp:
        vv, vh = src.read().astype("float64")
        assert comp.crs == src.crs and comp.transform.almost_equals(src.transform) and comp.count == 3
        rgb = comp.read().astype("float64")
    # the help's promise, computed independently: R -25..0 dB, G -32..-5 dB, B (co - cross) 0..15 dB
    expected = [np.clip((vv + 25) / 25, 0, 1), np.clip((vh + 32) / 27, 0, 1), np.clip((vv - vh) / 15, 0, 1)]
    for band, want in zip(rgb, expected):
        np.testing.assert_allclose(band, 255 * want, atol=0.51)


_AOI = _BOOT + """
from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer
layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=name:string", "aoi in memory", "memory")
features = []
for name, wkt in json.loads(sys.argv[3]).items():
    f = QgsFeature(layer.fields())
    f.setAttribute("name", name)
    f.setGeometry(QgsGeometry.fromWkt(wkt))
    features.append(f)
layer.dataProvider().addFeatures(features)
params = json.loads(sys.argv[2])
params["AOI"] = layer
from qgis.core import QgsProject
context = QgsProcessingContext()
context.setProject(QgsProject.instance())  # as in the QGIS GUI
try:
    results = processing.run("sar2opt:translateaoi", params, feedback=QgsProcessingFeedback(), context=context)
    finish({"status": "ok", "results": results, "to_load": list(context.layersToLoadOnCompletion())})
except QgsProcessingException as exc:
    finish({"status": "error", "message": str(exc)})
"""


@pytest.mark.qgis
def test_translateaoi_with_a_memory_layer(qgis, s1_db_tif, s1vv_model, tmp_path):
    require_subcommand("batch")
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(s1_db_tif) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    # two fields inside the scene, given to QGIS in lon/lat (the AOI CRS differs from the scene's)
    boxes = {"north": box(left + 400, top - 1600, left + 2000, top - 400), "south": box(right - 2400, bottom + 400, right - 800, bottom + 1800)}
    lonlat = gpd.GeoSeries(list(boxes.values()), crs=crs).to_crs(4326)
    aois = {name: geom.wkt for name, geom in zip(boxes, lonlat)}
    out_dir = tmp_path / "aoi_out"
    params = {"INPUT": str(s1_db_tif), "NAME_FIELD": "name", "BUFFER": 40.0, "MODEL": str(s1vv_model),
              "TILE_SIZE": 256, "OVERLAP": 96, "DEVICE": 1, "OUTPUT": str(out_dir)}
    result = _result(qgis.python(_AOI, str(qgis.plugins), json.dumps(params), json.dumps(aois)))
    assert result["status"] == "ok", result
    summary_path = out_dir / "summary.gpkg"
    assert result["results"]["SUMMARY"] == f"{summary_path}|layername=summary"
    assert result["to_load"] == [result["results"]["SUMMARY"]]  # the summary goes onto the map
    summary = gpd.read_file(summary_path, layer="summary")
    assert sorted(summary["status"]) == ["done", "done"]
    for name, geom in boxes.items():
        # a memory layer's crops are named after the layer ("aoi in memory"), not QGIS's temporary GeoPackage
        with rasterio.open(out_dir / f"aoi_in_memory__{name}__{s1_db_tif.stem}.tif") as crop:
            assert crop.count == 3 and crop.crs == crs
            grown = box(*geom.buffer(40.0 + 2 * abs(crop.res[0])).bounds)  # buffered, plus pixel snapping
            assert grown.contains(box(*crop.bounds)) and box(*crop.bounds).contains(geom.buffer(39.0))
            inside = crop.dataset_mask() > 0
            assert 0.8 < inside.mean() < 1  # masked to the buffered polygon (rounded corners are nodata)


@pytest.mark.qgis
def test_fake_backend_through_qgis_process_accepts_a_product_folder(qgis, fake_sar2opt, s1_safe, tmp_path):
    """Plumbing through the real QGIS with the test double: a .SAFE folder (which QGIS cannot
    open as a layer) is accepted as INPUT, progress and a warning come through."""
    out = tmp_path / "fake.tif"
    proc = qgis.process(
        "run", "sar2opt:translate", "--", f"INPUT={s1_safe}", f"OUTPUT={out}", "BANDS=VV,VH", "TARGET_CRS=EPSG:4326",
        env={"SAR2OPT_EXECUTABLE": str(fake_sar2opt), "FAKE_MODE": "ok"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "WARNING:\tfake warning" in proc.stdout
    argv = json.loads(out.read_text())
    assert argv[:3] == ["translate", str(s1_safe), str(out)]
    assert argv[argv.index("--bands") + 1] == "VV,VH" and argv[argv.index("--t-srs") + 1] == "EPSG:4326"
    assert "--tile" not in argv and "--overlap" not in argv  # empty: the backend chooses for the model
    assert argv[argv.index("--max-memory-mb") + 1] == "1500" and argv[argv.index("--backend") + 1] == "torch"
    assert argv[argv.index("--precision") + 1] == "auto"  # the dialog default leaves the choice to the library
    assert argv[argv.index("--device") + 1] == "auto"
    assert argv[-2:] == ["--progress", "json"]


_GUI = """
import json, os, sys
from qgis.core import QgsApplication, QgsProcessingContext, QgsSettings
app = QgsApplication([], True)  # widgets, on the offscreen platform
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
import processing
from processing.core.Processing import Processing
Processing.initialize()
sys.path.insert(0, sys.argv[1])
import sar2opt_qgis
from sar2opt_qgis import plugin as plugin_mod
from processing.gui.AlgorithmDialog import AlgorithmDialog
from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
from qgis.PyQt.QtWidgets import QMessageBox
out = {}
registry = QgsApplication.processingRegistry()

# -- the dialogs' spin boxes ------------------------------------------------------------------
p = sar2opt_qgis.classFactory(None)
p.initProcessing()
for alg_id in ("sar2opt:translate", "sar2opt:translateaoi"):
    dlg = AlgorithmDialog(registry.createAlgorithmById(alg_id))
    wrappers = dlg.mainWidget().wrappers
    for name in ("TILE_SIZE", "OVERLAP", "BUFFER"):
        if name in wrappers:
            w = wrappers[name]
            box = getattr(w, "widget", None) or w.wrappedWidget()
            out[alg_id + " " + name] = [box.singleStep(), box.minimum(), box.maximum(), getattr(box, "decimals", lambda: 0)()]
    # as the dialog opens: "automatic", and the parameters it would run with leave tiling to the planner
    # (ParametersPanel.createProcessingParameters sends a wrapper's value when it differs from the
    # default, None here, and refuses values the parameter does not accept)
    alg = dlg.algorithm()
    out[alg_id + " opened"] = [[wrappers[n].parameterValue(), wrappers[n].widget.text(),
                                alg.parameterDefinition(n).checkValueIsAcceptable(wrappers[n].parameterValue())]
                               for n in ("TILE_SIZE", "OVERLAP")]
    out[alg_id + " first step up"] = [wrappers["TILE_SIZE"].widget.stepBy(1), wrappers["TILE_SIZE"].parameterValue()][1]
    wrappers["TILE_SIZE"].widget.setValue(300)  # typed, not stepped: rounded to a multiple of 16 on leaving the box
    wrappers["TILE_SIZE"].widget.editingFinished.emit()
    out[alg_id + " typed 300"] = wrappers["TILE_SIZE"].parameterValue()
    wrappers["TILE_SIZE"].widget.clear()  # the clear button: back to automatic
    wrappers["TILE_SIZE"].widget.editingFinished.emit()
    out[alg_id + " cleared"] = wrappers["TILE_SIZE"].parameterValue()
    BatchAlgorithmDialog(registry.createAlgorithmById(alg_id))  # the batch dialog builds with the same wrapper

# -- the first-run prompt -----------------------------------------------------------------------
asked = []
opened = []
class FakeBox:
    Question = QMessageBox.Question
    Yes = QMessageBox.Yes
    No = QMessageBox.No
    answer = QMessageBox.Yes
    def __init__(self, parent=None):
        asked.append("asked")
    def __getattr__(self, name):
        return lambda *a, **k: None
    def exec_(self):
        return FakeBox.answer
plugin_mod.QMessageBox = FakeBox
processing.execAlgorithmDialog = lambda alg_id, params: opened.append(alg_id)
class FakeIface:
    def mainWindow(self):
        return None

os.environ.pop("SAR2OPT_EXECUTABLE", None)
os.environ["PATH"] = "/usr/bin:/bin"
p.unload()
headless = sar2opt_qgis.classFactory(None)  # qgis_process and scripts: iface is None
headless.initGui()
app.processEvents()
out["headless_asked"] = len(asked)
gui = sar2opt_qgis.classFactory(FakeIface())
gui.initGui()
out["can_execute_without_backend"] = list(registry.createAlgorithmById("sar2opt:translate").canExecute())
out["setup_can_execute"] = list(registry.createAlgorithmById("sar2opt:setup").canExecute())
out["offered"] = gui.offer_setup()
out["asked_after_offer"] = len(asked)
out["opened"] = list(opened)
FakeBox.answer = QMessageBox.No
out["declined"] = gui.offer_setup()
os.environ["SAR2OPT_EXECUTABLE"] = sys.argv[2]  # a backend is found: no question
out["with_backend"] = [gui.offer_setup(), len(asked)]
os.environ.pop("SAR2OPT_EXECUTABLE")
QgsSettings().setValue("sar2opt/setup_prompt_dismissed", True)  # "Don't ask again"
out["dismissed"] = [gui.offer_setup(), len(asked)]
QgsSettings().remove("sar2opt/setup_prompt_dismissed")
sys.stdout.write("RESULT " + json.dumps(out) + "\\n")
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.qgis
def test_dialog_spin_boxes_and_first_run_prompt(qgis, fake_sar2opt):
    """In the QGIS widgets (offscreen): TILE_SIZE/OVERLAP open as "automatic" (nothing sent: the
    planner chooses, as the CLI without --tile) and step by 16 from the model's minimum,
    BUFFER shows one decimal; the setup prompt appears in the desktop only (never with
    iface None, as under qgis_process), only without a backend, and not after "Don't ask again"."""
    result = _result(qgis.python(_GUI, str(qgis.plugins), str(fake_sar2opt)))
    for alg_id in ("sar2opt:translate", "sar2opt:translateaoi"):
        # one step below the smallest tile (112) / overlap (96) is "automatic"
        assert result[f"{alg_id} TILE_SIZE"][:3] == [16, 112 - 16, 8192]
        assert result[f"{alg_id} OVERLAP"][:2] == [16, 96 - 16]
        # issue 24: the dialog sent --tile 112 --overlap 96 (891 tiles where the planner takes 4); now nothing
        assert result[f"{alg_id} opened"] == [[None, "automatic", True], [None, "automatic", True]]
        assert result[f"{alg_id} first step up"] == 112
        assert result[f"{alg_id} typed 300"] == 304
        assert result[f"{alg_id} cleared"] is None
    assert result["sar2opt:translateaoi BUFFER"][3] == 1
    assert result["headless_asked"] == 0
    ok, message = result["can_execute_without_backend"]
    assert not ok and "sar2opt:setup" in message and "no sar2opt backend" in message
    assert result["setup_can_execute"] == [True, ""]
    assert result["offered"] is True and result["asked_after_offer"] == 1 and result["opened"] == ["sar2opt:setup"]
    assert result["declined"] is False
    assert result["with_backend"] == [False, 2] and result["dismissed"] == [False, 2]


@pytest.mark.qgis
def test_parameter_errors_name_the_qgis_parameters(qgis, s1_db_tif, tmp_path):
    """Checked before the run, in the parameters' own names (not tile_size / dst_crs / --co)."""
    out = tmp_path / "never.tif"
    for extra, expected in (
        (["TILE_SIZE=200"], "TILE_SIZE=200 is not a multiple of 16 pixels; use e.g. 208"),
        (["OVERLAP=112", "TILE_SIZE=112"], "OVERLAP=112 must be smaller than TILE_SIZE=112"),
        (["MATCH_INPUT_GRID=true", "TARGET_CRS=EPSG:4326"], "MATCH_INPUT_GRID and TARGET_CRS cannot both be set"),
    ):
        proc = qgis.process("run", "sar2opt:translate", "--", f"INPUT={s1_db_tif}", f"OUTPUT={out}", *extra)
        assert proc.returncode != 0 and expected in proc.stdout + proc.stderr, (extra, proc.stdout[-2000:] + proc.stderr[-2000:])
        assert "sar2opt translate" not in proc.stdout  # refused before the backend started
    require_subcommand("composite")
    proc = qgis.process("run", "sar2opt:composite", "--", f"INPUT={s1_db_tif}", f"OUTPUT={out}")  # VV only
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "set CO_POL and CROSS_POL" in text and "--co" not in text.split("--progress json", 1)[-1]
    assert not out.exists()


_AOI_CANCEL = _BOOT + """
from qgis.core import QgsProcessingFeedback, QgsProcessingException
os.environ["SAR2OPT_EXECUTABLE"] = sys.argv[2]
os.environ["FAKE_MODE"] = "batch"
class CancelAtProgress(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.progressChanged.connect(lambda value: self.cancel())
params = json.loads(sys.argv[3])
try:
    processing.run("sar2opt:translateaoi", params, feedback=CancelAtProgress(), context=QgsProcessingContext())
    finish({"status": "finished"})
except QgsProcessingException as exc:
    finish({"status": "error", "message": str(exc)})
"""


@pytest.mark.qgis
def test_translateaoi_cancel_keeps_finished_crops(qgis, fake_sar2opt, s1_db_tif, tmp_path):
    """Regression: a cancel deleted the crops finished before it; now only partial ones go."""
    import geopandas as gpd
    from shapely.geometry import box

    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs="EPSG:4326").to_file(aoi)
    out_dir = tmp_path / "aoi_out"
    params = {"INPUT": str(s1_db_tif), "AOI": str(aoi), "NAME_FIELD": "name", "OUTPUT": str(out_dir)}
    result = _result(qgis.python(_AOI_CANCEL, str(qgis.plugins), str(fake_sar2opt), json.dumps(params)))
    assert result["status"] == "error" and "resume" in result["message"], result
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.tif", "summary.gpkg"]  # the partial .b.tmp-*.tif is gone


# -- backend plumbing against a fake sar2opt (test double) -------------------------------------------

_FAKE = '''\
#!{python}
"""Test double for the sar2opt CLI: speaks the --progress json protocol. FAKE_MODE:
ok (writes argv as JSON to OUTPUT), fail, slow (cleans up on SIGTERM), stubborn (ignores it),
noisy (repeated progress text, raw GDAL and Python warnings on stderr, then an error),
batch (an AOI batch: one finished crop and the summary, then a partial crop, ignores SIGTERM)."""
import json, os, signal, sys, time
mode = os.environ.get("FAKE_MODE", "ok")
args = sys.argv[1:]
def emit(**event):
    print(json.dumps(event), flush=True)
if mode == "noisy":
    for text in ("scene statistics", "scene statistics", "scene statistics", "tiles 1/2", "tiles 1/2", "tiles 2/2"):
        emit(event="progress", fraction=0.5, message=text)
    for _ in range(3):
        print("Warning 1: TIFFReadDirectory: Sum of Photometric type-related color channels and ExtraSamples doesn't match SamplesPerPixel.", file=sys.stderr, flush=True)
    print("/venv/lib/python3.11/site-packages/rasterio/__init__.py:356: NotGeoreferencedWarning: Dataset has no geotransform", file=sys.stderr)
    print("  dataset = DatasetReader(path, driver=driver, sharing=sharing, **kwargs)", file=sys.stderr, flush=True)
    for _ in range(2):
        emit(event="log", level="warning", message="model fed VV; choose with --bands")
    message = "tile_size=100 is not a positive multiple of the model's downsampling factor 16; use e.g. 112"
    emit(event="log", level="error", message=message)
    emit(event="error", message=message)
    print(f"sar2opt: error: {{message}}", file=sys.stderr)
    sys.exit(1)
if mode == "batch":
    out_dir = args[args.index("--output-dir") + 1]
    os.makedirs(out_dir, exist_ok=True)
    for name in ("a.tif", "summary.gpkg"):
        with open(os.path.join(out_dir, name), "w") as f:
            f.write("finished")
    open(os.path.join(out_dir, ".b.tmp-" + str(os.getpid()) + ".tif"), "w").write("partial")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(600):
        emit(event="progress", fraction=0.5, message=f"1/2 crops (a: done) {{i}}")
        time.sleep(0.05)
    sys.exit(0)
dst = args[2] if len(args) > 2 else os.path.join(os.getcwd(), "fake.out")
tmp = os.path.join(os.path.dirname(dst), "." + os.path.basename(dst) + ".tmp-" + str(os.getpid()))
if mode == "fail":
    emit(event="error", message=f"{{args[1]}}: not a raster GDAL can read; give a GeoTIFF")
    print(f"sar2opt: error: {{args[1]}}: not a raster GDAL can read; give a GeoTIFF", file=sys.stderr)
    sys.exit(1)
def on_term(signum, frame):
    if mode != "stubborn":
        os.remove(tmp)
        sys.exit(130)
signal.signal(signal.SIGTERM, on_term)
open(tmp, "w").write("partial")
steps = 5 if mode == "ok" else 600
for i in range(steps):
    emit(event="progress", fraction=i / steps, message=f"tiles {{i}}/{{steps}}")
    if i == 2:
        emit(event="log", level="warning", message="fake warning")
    time.sleep(0.05)
with open(tmp, "w") as f:
    json.dump(args, f)
os.replace(tmp, dst)
emit(event="done", outputs={{"OUTPUT": dst}}, model="fake_model")
'''


@pytest.fixture
def fake_sar2opt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fake") / "sar2opt"
    path.write_text(_FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return path


class RecordingFeedback:
    """Duck-typed QgsProcessingFeedback that records what the backend reports."""

    def __init__(self, cancel_after_progress: bool = False):
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.info: list[str] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.commands: list[str] = []
        self._cancel_after_progress = cancel_after_progress
        self._cancelled = False

    def isCanceled(self) -> bool:
        return self._cancelled

    def setProgress(self, value: float) -> None:
        self.progress.append(value)
        if self._cancel_after_progress and value > 0:
            self._cancelled = True

    def setProgressText(self, text: str) -> None:
        self.texts.append(text)

    def pushInfo(self, text: str) -> None:
        self.info.append(text)

    def pushWarning(self, text: str) -> None:
        self.warnings.append(text)

    def reportError(self, text: str, fatal: bool = False) -> None:
        self.errors.append(text)

    def pushDebugInfo(self, text: str) -> None:
        self.info.append(text)

    def pushConsoleInfo(self, text: str) -> None:
        self.console.append(text)

    def pushCommandInfo(self, text: str) -> None:
        self.commands.append(text)


def test_backend_relays_progress_warnings_and_outputs(fake_sar2opt, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "ok")
    dst = tmp_path / "out.tif"
    fb = RecordingFeedback()
    result = backend.run_cli(["translate", "in.tif", str(dst), "--progress", "json"], fb, command=[str(fake_sar2opt)])
    assert result.outputs == {"OUTPUT": str(dst)} and result.returncode == 0 and result.model == "fake_model"
    assert fb.progress == sorted(fb.progress) and fb.progress[0] == 0 and 0 < fb.progress[-1] <= 100
    assert len(fb.progress) == 5 and fb.texts == ["tiles 0/5"]  # the bar moves per tile, the log has the stage once
    assert fb.warnings == ["fake warning"] == result.warnings
    assert fb.commands and str(fake_sar2opt) in fb.commands[0]
    assert json.loads(dst.read_text())[:3] == ["translate", "in.tif", str(dst)]


def test_backend_error_is_the_one_line_library_message(fake_sar2opt, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(backend.BackendError) as info:
        backend.run_cli(["translate", "bad.tif", str(tmp_path / "o.tif")], RecordingFeedback(), command=[str(fake_sar2opt)])
    assert str(info.value) == "bad.tif: not a raster GDAL can read; give a GeoTIFF"
    assert not isinstance(info.value, backend.BackendCancelled)


@pytest.mark.parametrize("mode, grace_s", [("slow", 10.0), ("stubborn", 0.5)])
def test_backend_cancel_terminates_and_leaves_no_partial_output(fake_sar2opt, tmp_path, monkeypatch, mode, grace_s):
    """slow: SIGTERM and the CLI removes its temp file; stubborn: it ignores SIGTERM, is
    SIGKILLed after the grace period and the guard removes what it left."""
    monkeypatch.setenv("FAKE_MODE", mode)
    dst = tmp_path / "out.tif"
    fb = RecordingFeedback(cancel_after_progress=True)
    guard = backend.OutputGuard(files=[dst])
    t0 = time.perf_counter()
    with pytest.raises(backend.BackendCancelled, match="cancelled"):
        backend.run_cli(["translate", "in.tif", str(dst)], fb, command=[str(fake_sar2opt)], guard=guard, grace_s=grace_s)
    assert time.perf_counter() - t0 < grace_s + 5  # the fake alone would run 30 s
    assert list(tmp_path.iterdir()) == []


def test_guard_after_failure_keeps_finished_outputs_and_drops_temporaries(tmp_path):
    folder = tmp_path / "aoi_out"
    folder.mkdir()
    (folder / "earlier.tif").write_text("from an earlier run")
    guard = backend.OutputGuard(folders=[folder])
    (folder / "a.tif").write_text("finished crop")
    (folder / ".b.tif.tmp-123").write_text("partial crop")
    assert guard.cleanup(temporaries_only=True) == [folder / ".b.tif.tmp-123"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "earlier.tif"]
    guard.cleanup()  # cancel: everything this run added goes, what was there stays
    assert [p.name for p in folder.iterdir()] == ["earlier.tif"]


def test_find_backend_order_setting_environment_profile_path(tmp_path, fake_sar2opt):
    """Lookup order: the provider setting, SAR2OPT_EXECUTABLE, <profile>/sar2opt/venv, PATH."""
    profile = tmp_path / "profile"
    venv_sar2opt = backend.venv_executable(backend.profile_venv(profile))
    assert venv_sar2opt == profile / "sar2opt" / "venv" / "bin" / "sar2opt"
    venv_sar2opt.parent.mkdir(parents=True)
    shutil.copy(fake_sar2opt, venv_sar2opt)
    on_path = tmp_path / "bin" / "sar2opt"
    on_path.parent.mkdir()
    shutil.copy(fake_sar2opt, on_path)
    env = {backend.ENV_EXECUTABLE: str(fake_sar2opt), "PATH": str(on_path.parent)}
    find = functools.partial(backend.find_backend, profile_dir=profile)
    assert find(sys.executable, environ=env) == [sys.executable, "-m", "sar2opt_geo.cli.main"]  # 1. the setting
    assert find("", environ=env) == [str(fake_sar2opt)]  # 2. the environment variable
    assert find("", environ={"PATH": env["PATH"]}) == [str(venv_sar2opt)]  # 3. the profile's venv
    assert backend.find_backend("", environ={"PATH": env["PATH"]}) == [str(on_path)]  # 4. PATH
    assert find(str(ROOT / ".venv"), environ={}) == [str(ROOT / ".venv" / "bin" / "sar2opt")]  # a venv folder
    # a setting or variable that points nowhere is an error naming it, not skipped
    with pytest.raises(backend.BackendError, match="provider setting.*does not exist|does not exist.*provider setting"):
        find(str(tmp_path / "nowhere" / "sar2opt"), environ=env)
    with pytest.raises(backend.BackendError, match="SAR2OPT_EXECUTABLE"):
        find("", environ={backend.ENV_EXECUTABLE: str(tmp_path / "gone"), "PATH": ""})
    with pytest.raises(backend.BackendNotFound, match=r"sar2opt:setup") as info:
        backend.find_backend("", profile_dir=tmp_path / "empty", environ={"PATH": str(tmp_path / "nothing")})
    assert str(tmp_path / "empty" / "sar2opt" / "venv") in str(info.value)


def test_backend_progress_text_only_on_change_and_stderr_warnings_once(fake_sar2opt, monkeypatch):
    """QGIS logs every progress text and relayed raw stderr: texts only when the stage changes, GDAL's
    "Warning 1:" and Python's two-line warnings as one warning each, repeats once, the final
    error once (not also as a logged error), option names as QGIS parameter names."""
    sys.path.insert(0, str(ROOT / "plugin"))
    from sar2opt_qgis.options import qgis_message

    monkeypatch.setenv("FAKE_MODE", "noisy")
    fb = RecordingFeedback()
    with pytest.raises(backend.BackendError) as info:
        backend.run_cli(["translate", "in.tif", "out.tif"], fb, command=[str(fake_sar2opt)], translate=qgis_message)
    assert fb.texts == ["scene statistics", "tiles 1/2"]  # one line per stage in the log (issue 24), not per tile
    assert sorted(fb.warnings) == [  # stdout and stderr are two pipes: their order is not fixed
        "GDAL warning: TIFFReadDirectory: Sum of Photometric type-related color channels and ExtraSamples doesn't match SamplesPerPixel.",
        "NotGeoreferencedWarning: Dataset has no geotransform",
        "model fed VV; choose with BANDS",
    ]
    assert fb.console == [] and fb.errors == []
    assert str(info.value) == "TILE_SIZE=100 is not a positive multiple of the model's downsampling factor 16; use e.g. 112"


def test_backend_cancel_of_a_batch_keeps_finished_crops(fake_sar2opt, tmp_path, monkeypatch):
    """Regression: cancelling translateaoi deleted the crops finished before the cancel. With
    keep_finished the finished crop and the summary stay, the partial crop goes: a rerun resumes."""
    monkeypatch.setenv("FAKE_MODE", "batch")
    out_dir = tmp_path / "aoi_out"
    out_dir.mkdir()
    (out_dir / "earlier.tif").write_text("from an earlier run")
    guard = backend.OutputGuard(folders=[out_dir], keep_finished=True)
    with pytest.raises(backend.BackendCancelled, match="kept.*resume"):
        backend.run_cli(["batch", "scene.tif", "--aoi", "a.gpkg", "--output-dir", str(out_dir)], RecordingFeedback(cancel_after_progress=True),
                        command=[str(fake_sar2opt)], guard=guard, grace_s=0.5)
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.tif", "earlier.tif", "summary.gpkg"]


def test_child_environment_drops_qgis_python_and_proj_paths():
    env = backend.child_environment({"PATH": "/usr/bin", "PYTHONPATH": "/usr/share/qgis/python", "PROJ_LIB": "/x", "GDAL_DATA": "/y"})
    assert env["PATH"] == "/usr/bin" and env["PYTHONUNBUFFERED"] == "1"
    assert not {"PYTHONPATH", "PROJ_LIB", "GDAL_DATA"} & set(env)


def test_python_interpreter_form_runs_the_real_cli(monkeypatch):
    """``python -m sar2opt_geo.cli.main`` (the setting pointing at an interpreter) works."""
    monkeypatch.delenv(backend.ENV_EXECUTABLE, raising=False)
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        _missing(f"{python} not found (make venv)")
    with pytest.raises(backend.BackendError) as info:
        backend.run_cli(["no-such-command"], RecordingFeedback(), configured=str(python))
    assert "invalid choice" in str(info.value)


@pytest.mark.qgis
def test_translate_in_qgis_reads_a_url(qgis, s1_db_tif, s1vv_model, tmp_path):
    """Issue 21: INPUT takes a URL (a COG on a web server or object store), read by the backend."""
    require_subcommand("translate")
    import shutil

    import rasterio
    from test_remote_inputs import _serve

    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(s1_db_tif, folder / "scene.tif")
    out = tmp_path / "from_url.tif"
    with _serve(folder) as base:
        proc = qgis.process("run", "sar2opt:translate", "--", f"INPUT={base}/scene.tif", f"OUTPUT={out}",
                            f"MODEL={s1vv_model}", "DEVICE=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with rasterio.open(out) as ds, rasterio.open(s1_db_tif) as src:
        assert ds.count == 3 and ds.crs == src.crs and float(ds.read(masked=True).std()) > 0


@pytest.mark.qgis
def test_translate_in_qgis_with_one_file_per_polarisation(qgis, data_dir, tmp_path):
    """Issue 21: a second polarisation file (INPUT_2) and SENSOR / INPUT_UNITS reach the backend."""
    require_subcommand("translate")
    import rasterio

    folder = data_dir / "pairs" / "bigearthnet" / "36_85"
    vv, vh = next(folder.glob("S1*_VV.tif")), next(folder.glob("S1*_VH.tif"))  # real Sentinel-1 dB patches
    out = tmp_path / "two_files.tif"
    proc = qgis.process("run", "sar2opt:translate", "--", f"INPUT={vv}", f"INPUT_2={vh}", "SENSOR=2", "INPUT_UNITS=1",
                        f"OUTPUT={out}", "DEVICE=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--sensor Sentinel-1 --input-units db" in proc.stdout  # the command QGIS logged
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.tags()["SAR2OPT_INPUT_BANDS"] == "VH"


def _ben_db(data_dir: Path) -> dict[str, tuple[np.ndarray, dict]]:
    import rasterio

    folder = data_dir / "pairs" / "bigearthnet" / "36_85"
    out = {}
    for pol in ("VV", "VH"):
        with rasterio.open(next(folder.glob(f"S1*_{pol}.tif"))) as ds:
            out[pol] = (ds.read(1).astype(np.float64), ds.profile)
    return out


def _write_band(path: Path, values: np.ndarray, profile: dict) -> Path:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **{**profile, "dtype": "float32", "count": 1}) as dst:
        dst.write(values.astype(np.float32), 1)
    return path


@pytest.mark.qgis
@pytest.mark.parametrize("case", ["two-band db, declared", "two-band db, detected", "opera pair", "hyp3 pair",
                                  "planetary computer pair", "palsar-2 mosaic tile", "stac item over http"])
def test_qgis_translate_reads_each_analysis_ready_input(qgis, data_dir, tmp_path, case):
    """Issue 21's matrix, through `qgis_process run sar2opt:translate`: each input gives a 3-band picture.
    The RTC files are **synthetic** (the real BigEarthNet VV/VH dB patches rewritten in each provider's
    naming and units); the mosaic tile is real."""
    require_subcommand("translate")
    import contextlib

    import rasterio
    from test_remote_inputs import _serve

    db = _ben_db(data_dir)
    linear = {pol: 10 ** (v / 10) for pol, (v, _) in db.items()}
    profile = db["VV"][1]
    params: list[str] = []
    server = contextlib.nullcontext(None)
    if case.startswith("two-band"):
        path = tmp_path / "terramind_like.tif"
        with rasterio.open(path, "w", **{**profile, "count": 2, "dtype": "float32"}) as dst:
            dst.write(np.stack([db["VV"][0], db["VH"][0]]).astype(np.float32))
        params = [f"INPUT={path}", "BANDS=2"] + (["SENSOR=2", "INPUT_UNITS=1"] if "declared" in case else [])
    elif case.endswith("pair"):
        names = {"opera pair": "OPERA_L2_RTC-S1_T029-061473-IW1_20170617T064724Z_S1A_30_v1.0_{pol}.tif",
                 "hyp3 pair": "S1A_IW_20170617T064724_DVP_RTC30_G_gpuned_FD6A_{pol}.tif",
                 "planetary computer pair": "{low}.tif"}[case]
        files = [_write_band(tmp_path / "rtc" / names.format(pol=pol, low=pol.lower()), linear[pol], profile)
                 for pol in ("VV", "VH")]
        params = [f"INPUT={files[0]}", f"INPUT_2={files[1]}"]
    elif case == "palsar-2 mosaic tile":
        params = [f"INPUT={data_dir / 'sar' / 'palsar2_mosaic_N23W161_2020'}"]
    else:  # a STAC item over HTTP, relative hrefs to vv.tif / vh.tif
        www = tmp_path / "www"
        for pol in ("VV", "VH"):
            _write_band(www / f"{pol.lower()}.tif", linear[pol], profile)
        (www / "item.json").write_text(json.dumps({"type": "Feature", "stac_version": "1.0.0", "id": "x", "links": [],
                                                   "geometry": None, "properties": {},
                                                   "assets": {"vv": {"href": "vv.tif"}, "vh": {"href": "vh.tif"}}}))
        server = _serve(www)
    out = tmp_path / "rgb.tif"
    with server as base:
        if base is not None:
            params = [f"INPUT={base}/item.json"]
        proc = qgis.process("run", "sar2opt:translate", "--", *params, f"OUTPUT={out}", "DEVICE=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with rasterio.open(out) as ds:
        assert ds.count == 3
        assert ds.tags()["SAR2OPT_INPUT_BANDS"] in ("VH", "HV", "b2")
        window = rasterio.windows.Window(0, 0, min(ds.width, 512), min(ds.height, 512))
        if case == "palsar-2 mosaic tile":  # the swath strip lies at the bottom of the tile
            window = rasterio.windows.Window(0, ds.height - 1200, ds.width, 1200)
        pixels = ds.read(window=window, masked=True)
    assert pixels.count() > 0 and float(pixels.std()) > 0
