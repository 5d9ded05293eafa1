"""``sar2opt:composite``: the classic dual-polarisation pseudo-colour composite."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .base import Sar2OptAlgorithm

__all__ = ["CompositeAlgorithm"]

STRETCHES = ("fixed", "percentile")


class CompositeAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt composite`` call."""

    CO_POL = "CO_POL"
    CROSS_POL = "CROSS_POL"
    STRETCH = "STRETCH"

    _group = ("visualisation", "SAR visualisation")
    _summary = "HH/HV (or VV/VH) pseudo-colour composite in dB; no model."

    def name(self) -> str:
        return "composite"

    def displayName(self) -> str:
        return self.tr("Dual-polarisation colour composite")

    def tags(self) -> list[str]:
        return ["sar", "hh", "hv", "vv", "vh", "composite", "pseudo-colour", "false colour", "db"]

    def shortHelpString(self) -> str:
        return self.tr(
            "The standard dual-polarisation pseudo-colour composite: "
            "R = co-polarised sigma0 in dB (HH or VV), G = cross-polarised sigma0 in dB (HV or VH), "
            "B = their difference (co - cross, dB). The result is a 3-band uint8 "
            "Cloud Optimized GeoTIFF with a nodata mask (nodata where either polarisation is).\n\n"
            "Input: a raster layer or file with both polarisations as bands (e.g. a Sentinel-1 VV+VH "
            "GeoTIFF in dB or linear power) or an ALOS-2 PALSAR-2 L2.1 product folder.\n"
            "Polarisations: empty (default) picks HH/HV, else VV/VH, from what the scene has.\n"
            "Stretch: fixed (default) maps R -25..0 dB, G -32..-5 dB, B 0..15 dB to 0..255; "
            "percentile maps each band's 2..98 % of valid pixels.\n"
            "CRS: the output is on the scene's own grid and CRS. Scenes georeferenced only by GCPs "
            "(Sentinel-1 GRD SAFE) must be terrain-corrected first."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input("Input dual-polarisation SAR raster (layer, file or PALSAR-2 folder)")
        self.addParameter(QgsProcessingParameterString(self.CO_POL, self.tr("Co-polarisation (HH or VV; empty = automatic)"), optional=True))
        self.addParameter(QgsProcessingParameterString(self.CROSS_POL, self.tr("Cross-polarisation (HV or VH; empty = automatic)"), optional=True))
        stretch = QgsProcessingParameterEnum(self.STRETCH, self.tr("Stretch to 8 bits"), options=list(STRETCHES), defaultValue=0)
        stretch.setFlags(stretch.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(stretch)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Colour composite")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        dst = self.require_tif(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        args = ["composite", src, dst]
        co = (self.parameterAsString(parameters, self.CO_POL, context) or "").strip()
        cross = (self.parameterAsString(parameters, self.CROSS_POL, context) or "").strip()
        if co:
            args += ["--co", co.upper()]
        if cross:
            args += ["--cross", cross.upper()]
        args += ["--stretch", STRETCHES[self.parameterAsEnum(parameters, self.STRETCH, context)]]
        args += ["--no-quicklook", "--progress", "json"]
        result = self.run_backend(args, feedback, files=[dst])
        return {self.OUTPUT: result.outputs.get("OUTPUT", dst)}
