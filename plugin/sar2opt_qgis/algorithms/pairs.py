"""``sar2opt:makepairs``: two raster layers (SAR, optical) -> a folder of co-registered training pairs."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import RasterOrProductParameter, Sar2OptAlgorithm

__all__ = ["MakePairsAlgorithm"]


class MakePairsAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt pairs`` call."""

    SAR = "SAR"
    OPTICAL = "OPTICAL"
    PIXEL_SPACING = "PIXEL_SPACING"
    TILE = "TILE"
    STRIDE = "STRIDE"
    SAR_BANDS = "SAR_BANDS"
    OPTICAL_BANDS = "OPTICAL_BANDS"
    MAX_NODATA = "MAX_NODATA"
    MAX_CLOUD = "MAX_CLOUD"
    MAX_DAYS = "MAX_DAYS"
    APPEND = "APPEND"

    _group = ("training", "Training")
    _summary = "SAR and optical scene of one area to co-registered training pairs for sar2opt:train."

    def name(self) -> str:
        return "makepairs"

    def displayName(self) -> str:
        return self.tr("Make training pairs from SAR and optical scenes")

    def tags(self) -> list[str]:
        return ["sar", "optical", "training", "pairs", "dataset", "co-registration", "palsar", "sentinel"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Builds training pairs for 'Train a generator' (sar2opt:train) from a SAR scene and an optical "
            "scene of the same area, and writes them into the OUTPUT folder (sar/, opt/, metadata.json).\n\n"
            "SAR: a raster layer or the path of a GeoTIFF, a Sentinel-1 .SAFE or an ALOS-2 PALSAR-2 product "
            "folder. OPTICAL: a raster layer, a GeoTIFF or a Sentinel-2 .SAFE (its SCL band rejects clouds).\n"
            "CRS and grid: both go onto the SAR scene's grid: its projected CRS (lon/lat and GCP scenes: the "
            "UTM zone of the scene centre) at PIXEL_SPACING metres (default 10), cropped to the overlap. SAR is "
            "resampled in linear power, the optical scene with GDAL's warper.\n"
            "Tiles: TILE pixels (multiple of 16, default 256) every STRIDE pixels (0 = TILE), kept where at "
            "most MAX_NODATA of the pixels are nodata on either side and at most MAX_CLOUD are cloud, shadow "
            "or saturated (Sentinel-2 SCL, else a brightness/whiteness test).\n"
            "Bands: SAR_BANDS empty = the band the bundled model takes (VH, or HV of a PALSAR-2 scene); "
            "OPTICAL_BANDS red, green, blue by name or 1-based index (default red,green,blue).\n"
            "MAX_DAYS refuses scenes acquired further apart. APPEND adds this scene pair to an existing "
            "pairs folder. A cancelled run leaves the folder as it was."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(RasterOrProductParameter(self.SAR, self.tr("SAR scene (layer, file, .SAFE or PALSAR-2 folder)")))
        self.addParameter(RasterOrProductParameter(self.OPTICAL, self.tr("Optical scene (layer, file or .SAFE)")))
        self.addParameter(QgsProcessingParameterNumber(
            self.PIXEL_SPACING, self.tr("Pixel spacing of the pairs (metres)"), type=QgsProcessingParameterNumber.Double,
            defaultValue=10.0, minValue=0.1, maxValue=10000.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE, self.tr("Tile size (pixels, multiple of 16)"), type=QgsProcessingParameterNumber.Integer,
            defaultValue=256, minValue=16, maxValue=4096))
        stride = QgsProcessingParameterNumber(
            self.STRIDE, self.tr("Stride between tiles (pixels; 0 = tile size)"), type=QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0, maxValue=4096)
        stride.setFlags(stride.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(stride)
        self.addParameter(QgsProcessingParameterString(
            self.SAR_BANDS, self.tr("SAR bands, comma separated (e.g. HV; empty = the model's)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.OPTICAL_BANDS, self.tr("Optical red, green, blue (names or 1-based indices)"), defaultValue="red,green,blue"))
        for name, label, default in ((self.MAX_NODATA, "Largest nodata fraction of a tile (0..1)", 0.0),
                                     (self.MAX_CLOUD, "Largest cloud fraction of a tile (0..1)", 0.01)):
            p = QgsProcessingParameterNumber(name, self.tr(label), type=QgsProcessingParameterNumber.Double,
                                             defaultValue=default, minValue=0.0, maxValue=1.0)
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        days = QgsProcessingParameterNumber(
            self.MAX_DAYS, self.tr("Largest time between the acquisitions (days; empty = any)"),
            type=QgsProcessingParameterNumber.Double, minValue=0.0, optional=True)
        self.addParameter(days)
        self.addParameter(QgsProcessingParameterBoolean(self.APPEND, self.tr("Append to an existing pairs folder"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Pairs folder")))

    def processAlgorithm(self, parameters, context, feedback):
        sar = self.input_path(parameters, self.SAR, context)
        optical = self.input_path(parameters, self.OPTICAL, context)
        out = self.parameterAsString(parameters, self.OUTPUT, context)
        args = ["pairs", sar, optical, out,
                "--pixel-spacing", repr(self.parameterAsDouble(parameters, self.PIXEL_SPACING, context)),
                "--tile", str(self.parameterAsInt(parameters, self.TILE, context)),
                "--max-nodata", repr(self.parameterAsDouble(parameters, self.MAX_NODATA, context)),
                "--max-cloud", repr(self.parameterAsDouble(parameters, self.MAX_CLOUD, context))]
        stride = self.parameterAsInt(parameters, self.STRIDE, context)
        if stride:
            args += ["--stride", str(stride)]
        for flag, name in (("--sar-bands", self.SAR_BANDS), ("--optical-bands", self.OPTICAL_BANDS)):
            value = (self.parameterAsString(parameters, name, context) or "").strip()
            if value:
                args += [flag, ",".join(b.strip() for b in value.replace(";", ",").split(",") if b.strip())]
        if parameters.get(self.MAX_DAYS) not in (None, ""):
            args += ["--max-days", repr(self.parameterAsDouble(parameters, self.MAX_DAYS, context))]
        if self.parameterAsBool(parameters, self.APPEND, context):
            args += ["--append"]
        args += ["--progress", "json"]
        result = self.run_backend(args, feedback, folders=[out])
        return {self.OUTPUT: result.outputs.get("OUTPUT", out)}
