"""``sar2opt:translate``: one SAR scene to a georeferenced optical-looking RGB GeoTIFF."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterRasterDestination,
)

from .base import Sar2OptAlgorithm

__all__ = ["TranslateAlgorithm"]


class TranslateAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt translate`` call."""

    _group = ("translation", "Translation")

    def name(self) -> str:
        return "translate"

    def displayName(self) -> str:
        return self.tr("Translate SAR to optical RGB")

    def tags(self) -> list[str]:
        return ["sar", "sentinel-1", "palsar", "alos-2", "pix2pix", "optical", "rgb", "colorize", "translate"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Translates a SAR scene into an optical-looking RGB image with a pix2pix generator and "
            "writes it as a georeferenced 3-band uint8 Cloud Optimized GeoTIFF.\n\n"
            "Input: a raster layer or the path of a GeoTIFF (sigma0 in dB or linear), a Sentinel-1 "
            ".SAFE folder or an ALOS-2 PALSAR-2 product folder. The scene is calibrated to sigma0 and "
            "brought to the model's input domain as the model card says.\n"
            "Model: a .safetensors checkpoint; empty uses the bundled SAR->RGB model.\n"
            "Bands: polarisations fed to the model, e.g. VH or HH (empty: those in the model card).\n"
            "Tile size and overlap are in pixels (multiples of 16; defaults 512 and 128); tiles are "
            "blended, so the result does not depend on the tiling. Device: auto uses CUDA when the "
            "configured environment has it, else CPU.\n"
            "CRS: the output keeps the input's CRS and grid (GCP-georeferenced products are warped "
            "to their GCP CRS) unless a target CRS is set, in which case it is reprojected.\n\n"
            "The work runs in the sar2opt command line of the Python environment set in "
            "Options > Processing > Providers > sar2opt (or SAR2OPT_EXECUTABLE)."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input()
        self.add_model_parameters()
        crs = QgsProcessingParameterCrs(self.TARGET_CRS, self.tr("Target CRS (empty = keep the input CRS)"), optional=True)
        crs.setFlags(crs.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(crs)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Translated RGB")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        dst = self.require_tif(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        args = ["translate", src, dst, *self.model_arguments(parameters, context)]
        t_srs = self.crs_argument(self.parameterAsCrs(parameters, self.TARGET_CRS, context))
        if t_srs:
            args += ["--t-srs", t_srs]
        args += ["--progress", "json"]
        result = self.run_backend(args, feedback, files=[dst])
        return {self.OUTPUT: result.outputs.get("OUTPUT", dst)}
