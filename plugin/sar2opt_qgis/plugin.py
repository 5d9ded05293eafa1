"""QGIS plugin class: adds the sar2opt Processing provider (also headless, via initProcessing)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import Sar2OptProvider

__all__ = ["Sar2OptPlugin"]


class Sar2OptPlugin:
    """Registers the provider; no GUI of its own (the algorithms live in the Processing toolbox)."""

    def __init__(self, iface=None):
        self.iface = iface
        self.provider: Sar2OptProvider | None = None

    def initProcessing(self) -> None:
        """Called by QGIS (and qgis_process) for plugins with hasProcessingProvider=yes."""
        if self.provider is None:
            self.provider = Sar2OptProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
