"""QGIS plugin class: adds the sar2opt Processing provider (also headless, via initProcessing)
and, in the QGIS desktop, offers the backend setup when no backend is found."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QCheckBox, QMessageBox

from .firstrun import DISMISSED_KEY, missing_backend, should_offer_setup
from .provider import Sar2OptProvider
from .settings import configured_executable, profile_dir

__all__ = ["SETUP_ALGORITHM", "Sar2OptPlugin", "setup_prompt"]

SETUP_ALGORITHM = "sar2opt:setup"


def setup_prompt(parent=None) -> tuple[QMessageBox, QCheckBox]:
    """The first-run question (also used for the screenshot in docs/QGIS.md)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("sar2opt")
    box.setText("The sar2opt algorithms need their backend: torch and sar2opt-geo in a Python environment of their own.")
    box.setInformativeText(
        "Install it now into this QGIS profile? It takes a few minutes and about 350 MB of downloads; "
        "QGIS's own Python is not changed. You can also run it later: Processing Toolbox > sar2opt > "
        "Setup > Set up the sar2opt backend."
    )
    box.setStandardButtons(QMessageBox.Yes | QMessageBox.No)
    box.setDefaultButton(QMessageBox.Yes)
    again = QCheckBox("Don't ask again")
    box.setCheckBox(again)
    return box, again


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
        """Called by the QGIS desktop only (qgis_process calls initProcessing)."""
        self.initProcessing()
        if self.iface is not None:
            QTimer.singleShot(0, self.offer_setup)  # once the main window is up, not in the middle of start-up

    def offer_setup(self) -> bool:
        """Ask whether to run the setup when no backend is found; True if its dialog was opened."""
        settings = QgsSettings()
        missing = missing_backend(configured_executable(), profile_dir())
        dismissed = settings.value(DISMISSED_KEY, False, type=bool)
        if not should_offer_setup(self.iface is not None, missing, dismissed):
            return False
        parent = self.iface.mainWindow() if hasattr(self.iface, "mainWindow") else None
        box, again = setup_prompt(parent)
        answer = box.exec_()
        if again.isChecked():
            settings.setValue(DISMISSED_KEY, True)
        if answer != QMessageBox.Yes:
            return False
        import processing

        processing.execAlgorithmDialog(SETUP_ALGORITHM, {})
        return True

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
