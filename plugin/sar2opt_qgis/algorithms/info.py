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

    _group = ("inspection", "Inspection")

    def name(self) -> str:
        return "info"

    def displayName(self) -> str:
        return self.tr("Scene information")

    def tags(self) -> list[str]:
        return ["sar", "info", "metadata", "sentinel-1", "palsar", "polarisation", "calibration"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Reports what the sar2opt reader sees in a scene, without writing anything: sensor and "
            "product type, polarisations/bands, size in pixels, CRS (or GCP CRS), bounds in that CRS "
            "(left, bottom, right, top), pixel size in CRS units, radiometric quantity and scale "
            "(sigma0 linear/dB, DN) and the calibration applied.\n\n"
            "Input: a raster layer or file, a Sentinel-1 .SAFE folder or a PALSAR-2 product folder.\n"
            "Outputs: the full report as JSON text (INFO), plus CRS, WIDTH and HEIGHT."
        )

    def initAlgorithm(self, config=None) -> None:
        self.add_input()
        self.addOutput(QgsProcessingOutputString(self.INFO, self.tr("Report (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.CRS, self.tr("CRS")))
        self.addOutput(QgsProcessingOutputNumber(self.WIDTH, self.tr("Width (pixels)")))
        self.addOutput(QgsProcessingOutputNumber(self.HEIGHT, self.tr("Height (pixels)")))

    def processAlgorithm(self, parameters, context, feedback):
        src = self.input_path(parameters, self.INPUT, context)
        result = self.run_backend(["info", src, "--json"], feedback, json_document=True)
        doc = result.document if isinstance(result.document, dict) else {"report": result.document}
        for key, value in doc.items():
            feedback.pushInfo(f"{key}: {value if isinstance(value, (str, int, float)) else json.dumps(value)}")
        return {
            self.INFO: json.dumps(doc),
            self.CRS: str(doc.get("crs") or doc.get("gcp_crs") or ""),
            self.WIDTH: doc.get("width"),
            self.HEIGHT: doc.get("height"),
        }
