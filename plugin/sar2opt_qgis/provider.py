"""The ``sar2opt`` Processing provider: registers the algorithms and the executable setting."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .icons import ICON_PATH, provider_icon
from .settings import register_settings, unregister_settings

__all__ = ["Sar2OptProvider"]


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
