"""Shared pieces of the sar2opt algorithms: the backend call with feedback and errors, the
input parameter that takes a raster layer *or* a product path, and common parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication

from .. import backend, options
from ..icons import provider_icon
from ..settings import configured_executable, profile_dir

__all__ = ["DEVICES", "RasterOrProductParameter", "Sar2OptAlgorithm", "find_command", "step_widget"]

DEVICES = ("auto", "cpu", "cuda")


def find_command() -> list[str]:
    """The backend's argv prefix (setting, SAR2OPT_EXECUTABLE, profile venv, PATH); raises
    :class:`~sar2opt_qgis.backend.BackendNotFound` / ``BackendError``."""
    return backend.find_backend(configured_executable(), profile_dir=profile_dir())


def step_widget(step: int) -> dict:
    """Parameter metadata for an integer spin box that steps by ``step`` in the dialogs (QGIS
    3.22's own number widget has no step setting; see ``widgets.py``)."""
    return {"widget_wrapper": {"class": "sar2opt_qgis.algorithms.widgets.StepSpinBoxWrapper", "step": step}}


_URL = re.compile(r"^(https?|s3|gs|az)://|^/vsi[a-z0-9]+/", re.IGNORECASE)


def _is_url(value: str) -> bool:
    """A remote input the backend reads itself (http(s)://, s3://, gs://, az://, /vsi...)."""
    return bool(_URL.match(value.strip()))


class RasterOrProductParameter(QgsProcessingParameterRasterLayer):
    """A raster layer parameter that also accepts the path of a file or product folder
    (Sentinel-1 ``.SAFE``, ALOS-2 PALSAR-2 product folder) that QGIS itself cannot open."""

    def checkValueIsAcceptable(self, value: Any, context: QgsProcessingContext | None = None) -> bool:
        if isinstance(value, str) and value and (os.path.exists(value) or _is_url(value)):
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self) -> RasterOrProductParameter:
        optional = bool(self.flags() & QgsProcessingParameterDefinition.FlagOptional)
        copy = RasterOrProductParameter(self.name(), self.description(), self.defaultValue(), optional)
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        return copy


class Sar2OptAlgorithm(QgsProcessingAlgorithm):
    """Base class: the algorithm files only declare parameters and build the CLI arguments."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    TILE_SIZE = "TILE_SIZE"
    MAX_MEMORY_MB = "MAX_MEMORY_MB"
    BACKEND = "BACKEND"
    PRECISION = "PRECISION"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"
    TARGET_CRS = "TARGET_CRS"
    OUTPUT = "OUTPUT"

    _group = ("translation", "Translation")

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("Sar2Opt", text)

    def createInstance(self) -> Sar2OptAlgorithm:
        return type(self)()

    def group(self) -> str:
        return self.tr(self._group[1])

    def groupId(self) -> str:
        return self._group[0]

    _summary = ""  # one line for the toolbox tooltip; the help text does not repeat it

    def icon(self):
        return provider_icon()

    def shortDescription(self) -> str:
        return self.tr(self._summary)

    def canExecute(self):
        """(False, what is missing) when no backend is found: the toolbox says so before Run."""
        try:
            find_command()
        except backend.BackendError as exc:
            return False, self.tr(str(exc))
        return True, ""

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if ok and self.parameterDefinition(self.TILE_SIZE) is not None:
            problem = options.check_tiling(
                self.optional_int(parameters, self.TILE_SIZE, context), self.optional_int(parameters, self.OVERLAP, context)
            )
            if problem:
                return False, self.tr(problem)
        return ok, message

    def helpUrl(self) -> str:
        return "https://github.com/sar2opt-geo/sar2opt-geo/blob/main/docs/QGIS.md"

    # -- parameters shared by several algorithms -----------------------------------------
    def add_input(self, description: str = "Input SAR raster (layer, file, .SAFE or PALSAR-2 folder)") -> None:
        self.addParameter(RasterOrProductParameter(self.INPUT, self.tr(description)))

    def add_model_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model checkpoint (.safetensors; empty = bundled SAR->RGB model)"),
                behavior=QgsProcessingParameterFile.File,
                fileFilter="Model checkpoints (*.safetensors *.pt *.pth);;All files (*.*)",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.BANDS,
                self.tr("Bands fed to the model, comma separated (e.g. VH; empty = the model card's)"),
                optional=True,
            )
        )
        tile = QgsProcessingParameterNumber(
            self.TILE_SIZE,
            self.tr(f"Tile size (pixels, multiple of {options.DOWNSAMPLING}; automatic or empty = chosen within the memory budget)"),
            type=QgsProcessingParameterNumber.Integer,
            defaultValue=options.TILE_SIZE_DEFAULT,
            optional=True,
            minValue=options.TILE_SIZE_MIN,
            maxValue=options.TILE_SIZE_MAX,
        )
        tile.setMetadata(step_widget(options.DOWNSAMPLING))
        self.addParameter(tile)
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP,
            self.tr(f"Tile overlap (pixels, multiple of {options.DOWNSAMPLING}, at least {options.OVERLAP_MIN}; "
                    "automatic or empty = twice the model's margin)"),
            type=QgsProcessingParameterNumber.Integer,
            defaultValue=options.OVERLAP_DEFAULT,
            optional=True,
            minValue=options.OVERLAP_MIN,
            maxValue=options.OVERLAP_MAX,
        )
        overlap.setMetadata(step_widget(options.DOWNSAMPLING))
        overlap.setFlags(overlap.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(overlap)
        memory = QgsProcessingParameterNumber(
            self.MAX_MEMORY_MB, self.tr("Memory budget (MB of peak memory; sets tile size and batch)"),
            type=QgsProcessingParameterNumber.Integer, defaultValue=int(options.MAX_MEMORY_MB_DEFAULT),
            minValue=256, maxValue=1_000_000,
        )
        memory.setFlags(memory.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(memory)
        engine = QgsProcessingParameterEnum(
            self.BACKEND, self.tr("Inference backend"), options=list(options.BACKENDS), defaultValue=0
        )
        engine.setFlags(engine.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(engine)
        precision = QgsProcessingParameterEnum(
            self.PRECISION,
            self.tr("Arithmetic (auto = bf16 on CPUs with AVX-512 BF16 or AMX, else fp32)"),
            options=list(options.PRECISIONS), defaultValue=0,
        )
        precision.setFlags(precision.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(precision)
        device = QgsProcessingParameterEnum(
            self.DEVICE, self.tr("Torch device"), options=list(DEVICES), defaultValue=0
        )
        device.setFlags(device.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(device)

    def model_arguments(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        args: list[str] = []
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            args += ["--model", model]
        bands = (self.parameterAsString(parameters, self.BANDS, context) or "").strip()
        if bands:
            args += ["--bands", ",".join(b.strip() for b in bands.replace(";", ",").split(",") if b.strip())]
        for name, flag in ((self.TILE_SIZE, "--tile"), (self.OVERLAP, "--overlap")):
            value = self.optional_int(parameters, name, context)
            if value is not None:
                args += [flag, str(value)]
        if self.parameterDefinition(self.MAX_MEMORY_MB) is not None:
            args += ["--max-memory-mb", str(self.parameterAsInt(parameters, self.MAX_MEMORY_MB, context))]
            args += ["--backend", options.BACKENDS[self.parameterAsEnum(parameters, self.BACKEND, context)]]
            if self.parameterDefinition(self.PRECISION) is not None:
                args += ["--precision", options.PRECISIONS[self.parameterAsEnum(parameters, self.PRECISION, context)]]
        args += ["--device", DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]]
        return args

    # -- value conversion ------------------------------------------------------------------
    def optional_int(self, parameters: dict, name: str, context: QgsProcessingContext) -> int | None:
        """An optional integer parameter's value, None when it is not set (empty)."""
        value = parameters.get(name, self.parameterDefinition(name).defaultValue())
        if value is None or value == "":
            return None
        return self.parameterAsInt(parameters, name, context)

    def input_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str:
        """A path the CLI can open: the string itself when it names a file or folder, else
        the file behind the raster layer (GDAL layers only)."""
        value = parameters.get(name)
        if isinstance(value, str) and value and (os.path.exists(value) or _is_url(value)):
            return value.strip()
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.tr(f"input {value!r} is neither a raster layer nor an existing file or folder; choose a GeoTIFF, a .SAFE folder or a PALSAR-2 product folder"))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(self.tr(f"layer {layer.name()!r} is not file based (provider {layer.providerType()}); save it as a GeoTIFF first (Export > Save As)"))
        parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
        return parts.get("path") or layer.source()

    @staticmethod
    def crs_argument(crs: QgsCoordinateReferenceSystem) -> str | None:
        """``EPSG:xxxx`` when the CRS has an EPSG code, else its WKT (what rasterio accepts)."""
        if not crs.isValid():
            return None
        if crs.authid().upper().startswith("EPSG:"):
            return crs.authid()
        return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)

    @staticmethod
    def require_tif(path: str) -> str:
        if Path(path).suffix.lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(f"output {path} must be a GeoTIFF (.tif): sar2opt writes Cloud Optimized GeoTIFFs")
        return path

    # -- running the backend -----------------------------------------------------------------
    def run_backend(
        self,
        args: Sequence[str],
        feedback: QgsProcessingFeedback | None,
        *,
        files: Sequence[str] = (),
        folders: Sequence[str] = (),
        keep_finished: bool = False,
        json_document: bool = False,
        check: bool = True,
    ) -> backend.RunResult:
        """Run ``sar2opt ARGS`` with progress relayed to ``feedback``; library errors become
        :class:`QgsProcessingException` with the CLI's one-line message, option names in it
        replaced by this algorithm's parameter names (``TILE_SIZE``, not ``tile_size``).
        ``keep_finished``: a cancel keeps the complete outputs in ``folders`` (resumable batches)."""
        guard = backend.OutputGuard(files=files, folders=folders, keep_finished=keep_finished)
        try:
            return backend.run_cli(
                args, feedback, command=find_command(), guard=guard, json_document=json_document, check=check,
                translate=options.qgis_message,
            )
        except backend.BackendError as exc:
            raise QgsProcessingException(str(exc)) from None
