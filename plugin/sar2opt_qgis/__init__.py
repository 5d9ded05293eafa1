"""sar2opt QGIS plugin: a Processing provider that drives the ``sar2opt`` command line of a
configured Python environment (torch + rasterio live there, not in QGIS's Python)."""

from __future__ import annotations

__all__ = ["classFactory"]


def classFactory(iface):
    """Entry point QGIS calls with its ``QgisInterface`` (``None`` under qgis_process)."""
    from .plugin import Sar2OptPlugin

    return Sar2OptPlugin(iface)
