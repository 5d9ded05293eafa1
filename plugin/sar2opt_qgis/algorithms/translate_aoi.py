"""``sar2opt:translateaoi``: one translated, masked raster per polygon of an AOI layer."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from .base import Sar2OptAlgorithm

__all__ = ["TranslateAoiAlgorithm"]

SUMMARY_NAME = "summary.gpkg"  # written by ``sar2opt batch`` into the output folder
SUMMARY_LAYER = "summary"


class TranslateAoiAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt batch`` call."""

    AOI = "AOI"
    NAME_FIELD = "NAME_FIELD"
    BUFFER = "BUFFER"
    WORKERS = "WORKERS"
    SUMMARY = "SUMMARY"

    _group = ("translation", "Translation")
    _summary = "One translated, masked RGB GeoTIFF per AOI polygon, plus a summary layer."

    def name(self) -> str:
        return "translateaoi"

    def displayName(self) -> str:
        return self.tr("Translate SAR to optical RGB per AOI polygon")

    def tags(self) -> list[str]:
        return ["sar", "aoi", "batch", "polygon", "clip", "mask", "pix2pix", "rgb"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Output folder: one GeoTIFF per polygon, named <AOI file stem>__<name field value>__<scene stem>.tif "
            "(a memory or database layer: its layer name instead of the file stem) "
            "(e.g. fields__Parcel_1__S1A_IW_GRDH_....tif, so batches with other AOI files or scenes never "
            "replace each other's crops), the part of the "
            "scene under the buffered polygon translated as in 'Translate SAR to optical RGB' and masked "
            "to nodata outside it; and summary.gpkg (layer 'summary': each AOI footprint with its output, "
            "status done/skipped/failed and the reason), which is added to the map.\n\n"
            "AOI: any polygon layer, in any CRS (it is reprojected to the scene CRS); memory and "
            "non-file layers are written to a temporary GeoPackage first. Polygons that miss the "
            "scene are reported in the summary, not fatal.\n"
            "Name field: values must be unique (empty = feature index).\n"
            "Buffer: grows (negative: shrinks) each polygon before cropping, in metres (default 0).\n"
            "Model, bands, tile size and overlap (pixels; empty = chosen for the model within the memory "
            "budget), memory budget, backend and device are as in 'Translate SAR to optical RGB'. Outputs keep the "
            "scene CRS (no reprojection). Re-running into the same folder skips crops whose inputs did not "
            "change; after a cancel the finished crops stay, so running again resumes."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input()
        self.addParameter(QgsProcessingParameterVectorLayer(self.AOI, self.tr("AOI polygons"), [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(
            QgsProcessingParameterField(self.NAME_FIELD, self.tr("Name field (empty = feature index)"), parentLayerParameterName=self.AOI, optional=True)
        )
        buffer = QgsProcessingParameterNumber(
            self.BUFFER, self.tr("Buffer around each polygon (metres; negative shrinks)"), type=QgsProcessingParameterNumber.Double, defaultValue=0.0
        )
        buffer.setMetadata({"widget_wrapper": {"decimals": 1}})  # metres: 6 decimals would be micrometres
        self.addParameter(buffer)
        self.add_model_parameters()
        workers = QgsProcessingParameterNumber(
            self.WORKERS, self.tr("Parallel worker processes (0 = one process, serially)"), type=QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0
        )
        workers.setFlags(workers.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(workers)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.SUMMARY, self.tr("AOI summary"), QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        # The CLI needs a file: file-based layers are passed as they are; memory, database and
        # selection-only layers are written to a temporary GeoPackage (QgsVectorFileWriter).
        aoi, layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, self.AOI, context, ["gpkg", "shp", "geojson"], "gpkg", feedback
        )
        out_dir = self.parameterAsString(parameters, self.OUTPUT, context)
        args = ["batch", src, "--aoi", aoi, "--output-dir", out_dir]
        if layer_name:
            args += ["--layer", layer_name]
        layer = self.parameterAsVectorLayer(parameters, self.AOI, context)
        if layer is not None and layer.source().split("|")[0] != aoi:
            # QGIS wrote a temporary GeoPackage (memory layer, selection ...): name crops after the layer, not the temp file
            args += ["--aoi-key", layer.name()]
        name_field = self.parameterAsString(parameters, self.NAME_FIELD, context)
        if name_field:
            args += ["--name-field", name_field]
        args += ["--buffer", repr(self.parameterAsDouble(parameters, self.BUFFER, context))]
        args += self.model_arguments(parameters, context)
        args += ["--workers", str(self.parameterAsInt(parameters, self.WORKERS, context))]
        args += ["--progress", "json"]
        # a cancel keeps finished crops and the summary (the CLI writes it on SIGTERM): a rerun resumes
        result = self.run_backend(args, feedback, folders=[out_dir], keep_finished=True, check=False)
        if result.returncode != 0:
            feedback.reportError(
                self.tr("some AOI crops failed (sar2opt batch exit status {}); the summary layer gives each reason (status = failed)").format(result.returncode),
                False,
            )
        summary = str(result.outputs.get("SUMMARY") or os.path.join(out_dir, SUMMARY_NAME))
        summary_uri = f"{summary}|layername={SUMMARY_LAYER}"
        if os.path.exists(summary) and context.project() is not None:
            details = QgsProcessingContext.LayerDetails(self.tr("sar2opt AOI summary"), context.project(), self.SUMMARY)
            context.addLayerToLoadOnCompletion(summary_uri, details)
        return {self.OUTPUT: out_dir, self.SUMMARY: summary_uri}
