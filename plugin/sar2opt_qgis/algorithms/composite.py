"""``sar2opt:composite``: the classic dual-polarisation pseudo-colour composite."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination, QgsProcessingParameterString

from .base import Sar2OptAlgorithm

__all__ = ["CompositeAlgorithm"]


class CompositeAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt composite`` call."""

    CO_POL = "CO_POL"
    CROSS_POL = "CROSS_POL"

    _group = ("visualisation", "SAR visualisation")

    def name(self) -> str:
        return "composite"

    def displayName(self) -> str:
        return self.tr("Dual-polarisation colour composite")

    def tags(self) -> list[str]:
        return ["sar", "hh", "hv", "vv", "vh", "composite", "pseudo-colour", "false colour", "db"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Builds the standard dual-polarisation pseudo-colour composite of a SAR scene: "
            "R = co-polarised sigma0 in dB (HH or VV), G = cross-polarised sigma0 in dB (HV or VH), "
            "B = their difference (co - cross, dB). Each channel is stretched to 8 bits over a fixed "
            "dB range and the result is a 3-band uint8 GeoTIFF; no model is involved.\n\n"
            "Input: a raster layer or file with both polarisations as bands, a Sentinel-1 .SAFE "
            "folder or a PALSAR-2 product folder.\n"
            "Polarisations: empty picks HH/HV, else VV/VH, from what the scene has.\n"
            "CRS: the output keeps the input's CRS and grid (GCP-georeferenced products are warped to "
            "their GCP CRS)."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input("Input dual-polarisation SAR raster (layer, file, .SAFE or PALSAR-2 folder)")
        self.addParameter(QgsProcessingParameterString(self.CO_POL, self.tr("Co-polarisation (HH or VV; empty = automatic)"), optional=True))
        self.addParameter(QgsProcessingParameterString(self.CROSS_POL, self.tr("Cross-polarisation (HV or VH; empty = automatic)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Colour composite")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        dst = self.require_tif(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        args = ["composite", src, dst]
        co = (self.parameterAsString(parameters, self.CO_POL, context) or "").strip()
        cross = (self.parameterAsString(parameters, self.CROSS_POL, context) or "").strip()
        if co:
            args += ["--co-pol", co.upper()]
        if cross:
            args += ["--cross-pol", cross.upper()]
        args += ["--progress", "json"]
        result = self.run_backend(args, feedback, files=[dst])
        return {self.OUTPUT: result.outputs.get("OUTPUT", dst)}
