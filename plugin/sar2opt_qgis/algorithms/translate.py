"""``sar2opt:translate``: one SAR scene to a georeferenced optical-looking RGB GeoTIFF."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from .. import options
from .base import RasterOrProductParameter, Sar2OptAlgorithm

__all__ = ["TranslateAlgorithm"]


class TranslateAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt translate`` call."""

    MATCH_INPUT_GRID = "MATCH_INPUT_GRID"
    SAMPLES = "SAMPLES"
    KEEP_STRUCTURE = "KEEP_STRUCTURE"
    INPUT_2 = "INPUT_2"
    SENSOR = "SENSOR"
    INPUT_UNITS = "INPUT_UNITS"
    SENSORS = ("detected", "SAR", "Sentinel-1", "ALOS-2", "optical", "Sentinel-2", "Landsat-8")
    SPREAD = "SPREAD"

    _group = ("translation", "Translation")
    _summary = "SAR scene to a georeferenced optical-looking RGB GeoTIFF with a pix2pix generator."

    def name(self) -> str:
        return "translate"

    def displayName(self) -> str:
        return self.tr("Translate SAR to optical RGB")

    def tags(self) -> list[str]:
        return ["sar", "sentinel-1", "palsar", "alos-2", "pix2pix", "optical", "rgb", "colorize", "translate"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Output: a 3-band uint8 Cloud Optimized GeoTIFF (nodata in, nodata out), added to the map.\n\n"
            "Input: a raster layer or the path of a GeoTIFF (sigma0 in dB or linear), a Sentinel-1 "
            ".SAFE folder or zip, or an ALOS-2 PALSAR-2 product folder (in the dialog, pick the product's "
            "manifest.safe or summary.txt with '...', or type the folder path). Calibration, "
            "normalisation and pixel spacing come from the model card.\n"
            "Model: a .safetensors checkpoint; empty (default) uses the bundled SAR->RGB model.\n"
            "Bands: polarisations fed to the model, e.g. VH or HH (default: the model card's bands; a "
            "single-polarisation scene's only band).\n"
            f"Tile size and overlap are in pixels of the model grid, multiples of {options.DOWNSAMPLING} "
            f"(overlap at least {options.OVERLAP_MIN}); left empty (default) they are chosen for the model: "
            "the margin covers its receptive field, so tiles are exact, and the tile is the size that computes "
            f"least within the memory budget (default {options.MAX_MEMORY_MB_DEFAULT:g} MB). Tiles are blended, "
            "so the result does not depend on the tiling. Backend: torch (default), onnxruntime or openvino. "
            "Device: auto (default) uses CUDA when the configured environment has it, else CPU.\n"
            "CRS and grid: by default the output is on the model grid: the model's pixel spacing (10 m "
            "for the bundled models) in the input's projected CRS, covering the input's bounds; lon/lat "
            "and GCP-georeferenced inputs (Sentinel-1 GRD) go to the UTM zone of the scene centre. "
            "MATCH_INPUT_GRID resamples the result back onto the input's pixel grid; TARGET_CRS "
            "reprojects it instead (set one of the two).\n"
            "Uncertainty: SAMPLES > 1 runs the stochastic mode (dropout on) that many times with different "
            "seeds, writes their mean as the RGB output and adds <output>_spread.tif to the map: the "
            "per-pixel standard deviation of the luminance (float32, same grid and CRS). Each run draws its "
            "dropout masks once for the whole scene (channel dropout, as in the bundled models), so mean and "
            "spread have no seams at tile edges.\n"
            "KEEP_STRUCTURE adds the SAR's own 10-80 m detail to the model's colours: what the SAR shows "
            "(fields, roads, buildings) stays visible even where the model, out of its training region, "
            "renders a haze; the result matches the optical image less pixel by pixel (docs/TRAINING.md).\n\n"
            "The work runs in the sar2opt backend that 'Set up the sar2opt backend' installs (or the one "
            "set in Settings > Options > Processing > Providers > sar2opt)."
        )

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        match = ok and self.parameterAsBool(parameters, self.MATCH_INPUT_GRID, context)
        if match and self.parameterAsCrs(parameters, self.TARGET_CRS, context).isValid():
            return False, self.tr("MATCH_INPUT_GRID and TARGET_CRS cannot both be set: keep the input grid or reproject, not both")
        return ok, message

    def initAlgorithm(self, config=None) -> None:
        self.add_input()
        self.addParameter(RasterOrProductParameter(
            self.INPUT_2, self.tr("Second polarisation (optional: one file per polarisation, e.g. the VH file of VV + VH)"),
            optional=True))
        self.add_model_parameters()
        sensor = QgsProcessingParameterEnum(
            self.SENSOR, self.tr("What a plain raster holds (detected = from its name, tags and values)"),
            options=list(self.SENSORS), defaultValue=0)
        sensor.setFlags(sensor.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(sensor)
        units = QgsProcessingParameterEnum(
            self.INPUT_UNITS, self.tr("How a plain raster stores its values (detected = from tags, names and values)"),
            options=["detected", *options.INPUT_UNITS], defaultValue=0)
        units.setFlags(units.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(units)
        crs = QgsProcessingParameterCrs(self.TARGET_CRS, self.tr("Target CRS (empty = the input's projected CRS; lon/lat inputs: their UTM zone, or UPS near a pole)"), optional=True)
        crs.setFlags(crs.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(crs)
        match = QgsProcessingParameterBoolean(self.MATCH_INPUT_GRID, self.tr("Match the input grid (map-projected inputs only)"), defaultValue=False)
        match.setFlags(match.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(match)
        samples = QgsProcessingParameterNumber(
            self.SAMPLES, self.tr("Stochastic samples (1 = one run; N > 1 adds the spread layer)"),
            type=QgsProcessingParameterNumber.Integer, defaultValue=1, minValue=1, maxValue=256)
        samples.setFlags(samples.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(samples)
        keep = QgsProcessingParameterBoolean(
            self.KEEP_STRUCTURE, self.tr("Keep the SAR's structure (add its 10-80 m detail to the colours: fields, roads "
                                         "and buildings stay visible; less like the optical image pixel by pixel)"),
            defaultValue=options.KEEP_STRUCTURE_DEFAULT)
        keep.setFlags(keep.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(keep)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Translated RGB")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.SPREAD, self.tr("Spread (std of luminance)")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        second = parameters.get(self.INPUT_2)
        sources = [src, self.input_path(parameters, self.INPUT_2, context)] if second not in (None, "") else [src]
        dst = self.require_tif(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        args = ["translate", *sources, dst, *self.model_arguments(parameters, context)]
        sensor = self.parameterAsEnum(parameters, self.SENSOR, context)
        if sensor > 0:
            args += ["--sensor", self.SENSORS[sensor]]
        units = self.parameterAsEnum(parameters, self.INPUT_UNITS, context)
        if units > 0:
            args += ["--input-units", options.INPUT_UNITS[units - 1]]
        t_srs = self.crs_argument(self.parameterAsCrs(parameters, self.TARGET_CRS, context))
        if t_srs:
            args += ["--t-srs", t_srs]
        if self.parameterAsBool(parameters, self.MATCH_INPUT_GRID, context):
            args += ["--match-input-grid"]
        keep = self.parameterAsBool(parameters, self.KEEP_STRUCTURE, context)
        args += ["--keep-structure" if keep else "--no-keep-structure"]
        samples = self.parameterAsInt(parameters, self.SAMPLES, context)
        spread = str(Path(dst).with_name(f"{Path(dst).stem}_spread.tif")) if samples > 1 else None
        if spread:
            args += ["--samples", str(samples)]
        args += ["--progress", "json"]
        result = self.run_backend(args, feedback, files=[dst] + ([spread] if spread else []))
        outputs = {self.OUTPUT: result.outputs.get("OUTPUT", dst)}
        # layer names that say what each layer is: source, model, samples (not "Translated RGB")
        model = result.model or Path(self.parameterAsFile(parameters, self.MODEL, context) or "").stem or "bundled model"
        source = Path(src.rstrip("/\\")).stem or src
        what = f"{source} - {model} RGB" + (f" (mean of {samples} samples)" if spread else "")
        if context.willLoadLayerOnCompletion(dst):
            context.layerToLoadOnCompletionDetails(dst).name = what
        if spread:
            outputs[self.SPREAD] = result.outputs.get("SPREAD", spread)
            name = f"{source} - {model} spread (std of luminance, {samples} samples)"
            details = QgsProcessingContext.LayerDetails(name, context.project(), self.SPREAD)
            context.addLayerToLoadOnCompletion(outputs[self.SPREAD], details)
        return outputs
