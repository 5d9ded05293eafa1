"""The ``sar2opt`` Processing provider: registers the algorithms and the executable setting."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .settings import register_settings, unregister_settings

__all__ = ["ICON_PATH", "Sar2OptProvider", "provider_icon"]

ICON_PATH = Path(__file__).with_name("icon.svg")


def provider_icon() -> QIcon:
    return QIcon(str(ICON_PATH))


class Sar2OptProvider(QgsProcessingProvider):
    """Provider id ``sar2opt``; algorithms run the ``sar2opt`` CLI in a subprocess."""

    def id(self) -> str:
        return "sar2opt"

    def name(self) -> str:
        return "sar2opt"

    def longName(self) -> str:
        return "sar2opt - SAR to optical translation"

    def icon(self) -> QIcon:
        return provider_icon()

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def load(self) -> bool:
        register_settings(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        unregister_settings()

    def loadAlgorithms(self) -> None:
        for alg in ALGORITHMS:
            self.addAlgorithm(alg())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"
