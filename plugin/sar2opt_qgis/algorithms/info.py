"""``sar2opt:info``: what the sar2opt reader sees in a scene (read-only)."""

from __future__ import annotations

import json

from qgis.core import QgsProcessingOutputNumber, QgsProcessingOutputString

from .base import Sar2OptAlgorithm

__all__ = ["InfoAlgorithm"]


class InfoAlgorithm(Sar2OptAlgorithm):
    """Runs ``sar2opt info INPUT --json`` and reports it; writes nothing."""

    INFO = "INFO"
    CRS = "CRS"
    WIDTH = "WIDTH"
    HEIGHT = "HEIGHT"
    SENSOR = "SENSOR"
    BANDS_OUT = "BANDS"

    _group = ("inspection", "Inspection")
    _summary = "What the sar2opt reader sees in a scene: sensor, bands, calibration, CRS (read-only)."

    def name(self) -> str:
        return "info"

    def displayName(self) -> str:
        return self.tr("Scene information")

    def tags(self) -> list[str]:
        return ["sar", "info", "metadata", "sentinel-1", "palsar", "polarisation", "calibration"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Writes nothing. Reported: sensor and "
            "product type, polarisations/bands, size in pixels, CRS (or GCP CRS), bounds in that CRS "
            "(left, bottom, right, top), pixel size in CRS units, radiometric quantity and scale "
            "(sigma0 linear/dB, DN) and the calibration applied.\n\n"
            "Input: a raster layer or file, a Sentinel-1 .SAFE folder or a PALSAR-2 product folder.\n"
            "Outputs: the full report as JSON text (INFO), plus SENSOR, BANDS (comma separated), CRS "
            "(empty for GCP-only products), WIDTH and HEIGHT (pixels)."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input()
        self.addOutput(QgsProcessingOutputString(self.INFO, self.tr("Report (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.CRS, self.tr("CRS")))
        self.addOutput(QgsProcessingOutputNumber(self.WIDTH, self.tr("Width (pixels)")))
        self.addOutput(QgsProcessingOutputNumber(self.HEIGHT, self.tr("Height (pixels)")))
        self.addOutput(QgsProcessingOutputString(self.SENSOR, self.tr("Sensor")))
        self.addOutput(QgsProcessingOutputString(self.BANDS_OUT, self.tr("Bands")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        result = self.run_backend(["info", src, "--json"], feedback, json_document=True)
        doc = result.document if isinstance(result.document, dict) else {"report": result.document}
        for key, value in doc.items():
            if key == "bands" and isinstance(value, dict):
                for band, props in value.items():
                    feedback.pushInfo(f"band {band}: {json.dumps(props) if not isinstance(props, str) else props}")
            else:
                feedback.pushInfo(f"{key}: {value if isinstance(value, (str, int, float)) else json.dumps(value)}")
        size = doc.get("size") or [None, None]  # [width, height] in pixels
        bands = doc.get("bands") or {}
        return {
            self.INFO: json.dumps(doc),
            self.SENSOR: str(doc.get("sensor") or ""),
            self.BANDS_OUT: ",".join(bands) if isinstance(bands, (dict, list)) else str(bands),
            self.CRS: str(doc.get("crs") or ""),
            self.WIDTH: size[0],
            self.HEIGHT: size[1],
        }
