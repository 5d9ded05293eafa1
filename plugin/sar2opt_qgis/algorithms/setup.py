"""``sar2opt:setup``: install the backend (torch + sar2opt-geo) into a virtual environment in
the QGIS profile and point the provider setting at it. No terminal needed."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .. import backend, installer
from ..settings import profile_dir, store_executable
from .base import Sar2OptAlgorithm

__all__ = ["SetupAlgorithm"]

TORCH_CHOICES = (
    ("cpu", "CPU (works everywhere; about 200 MB download)"),
    ("cuda", "CUDA for an NVIDIA GPU (Linux: PyPI's CUDA build, several GB)"),
)


class SetupAlgorithm(Sar2OptAlgorithm):
    """Creates ``<profile>/sar2opt/venv`` with torch and the bundled sar2opt-geo wheel, checks it,
    then stores its ``sar2opt`` in the provider setting (Settings > Options > Processing)."""

    TORCH = "TORCH"
    PYTHON = "PYTHON"
    TORCH_INDEX_URL = "TORCH_INDEX_URL"
    REINSTALL = "REINSTALL"
    EXECUTABLE = "EXECUTABLE"
    VENV = "VENV"

    _group = ("setup", "Setup")
    _summary = "Installs the sar2opt backend (torch and sar2opt-geo) for this QGIS profile; run it once."

    def name(self) -> str:
        return "setup"

    def displayName(self) -> str:
        return self.tr("Set up the sar2opt backend")

    def tags(self) -> list[str]:
        return ["setup", "install", "torch", "pip", "virtual environment", "venv", "backend", "sar2opt"]

    def canExecute(self):
        return True, ""  # it is what makes the others executable

    def checkParameterValues(self, parameters, context):
        return super(Sar2OptAlgorithm, self).checkParameterValues(parameters, context)

    def shortHelpString(self) -> str:
        target = "/".join(backend.PROFILE_VENV)  # the help panel is HTML: no <profile> placeholder
        return self.tr(
            "Run this once after installing the plugin. It creates a Python virtual environment for the "
            f"sar2opt backend in your QGIS profile folder ({target}), installs torch and the sar2opt-geo package that "
            "comes with the plugin (with its bundled models) from the Python Package Index, translates a small "
            "synthetic scene as a self-check, and stores the environment's sar2opt in Settings > Options > "
            "Processing > Providers > sar2opt > sar2opt executable. The other sar2opt algorithms then work.\n\n"
            "It needs an internet connection the first time (torch CPU about 200 MB, the rest about 150 MB; "
            "pip's cache makes a second run quicker) and takes a few minutes. Nothing is installed into QGIS's "
            "own Python: torch and rasterio stay in their environment, which keeps QGIS's GDAL undisturbed.\n"
            "Torch build: CPU (default) or CUDA for an NVIDIA GPU.\n"
            "Python (advanced): the interpreter that makes the environment, version 3.11 or newer with the venv "
            "module; empty = found automatically (QGIS's own Python, else python3 on PATH). On Debian/Ubuntu "
            "install python3-venv if none is found.\n"
            "Torch index URL (advanced): a pip index to take torch from, e.g. "
            "https://download.pytorch.org/whl/cu128 for a given CUDA version.\n"
            "Reinstall (advanced): rebuild even if an identical setup is already there (it is checked and "
            "kept otherwise).\n\n"
            "If something fails, the message says which step; the unfinished environment is removed and an "
            "earlier working one is left as it was. Cancel stops pip and removes the unfinished environment."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterEnum(self.TORCH, self.tr("Torch build"), options=[self.tr(label) for _, label in TORCH_CHOICES], defaultValue=0)
        )
        python = QgsProcessingParameterFile(
            self.PYTHON, self.tr("Python to create the environment with (empty = automatic)"),
            behavior=QgsProcessingParameterFile.File, optional=True,
            fileFilter="All files (*)",  # the default filter (*.*) refuses names without a dot, such as python3
        )
        python.setFlags(python.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(python)
        index = QgsProcessingParameterString(self.TORCH_INDEX_URL, self.tr("Torch index URL (empty = by build)"), optional=True)
        index.setFlags(index.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(index)
        reinstall = QgsProcessingParameterBoolean(self.REINSTALL, self.tr("Reinstall even if already set up"), defaultValue=False)
        reinstall.setFlags(reinstall.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(reinstall)
        self.addOutput(QgsProcessingOutputString(self.EXECUTABLE, self.tr("sar2opt executable")))
        self.addOutput(QgsProcessingOutputString(self.VENV, self.tr("Virtual environment")))

    def processAlgorithm(self, parameters, context, feedback):
        torch = TORCH_CHOICES[self.parameterAsEnum(parameters, self.TORCH, context)][0]
        python = (self.parameterAsFile(parameters, self.PYTHON, context) or "").strip() or None
        index_url = (self.parameterAsString(parameters, self.TORCH_INDEX_URL, context) or "").strip() or None
        target = backend.profile_venv(profile_dir())
        feedback.pushInfo(f"Setting up the sar2opt backend in {target}")
        try:
            result = installer.setup_backend(
                target, python=python, torch=torch, index_url=index_url,
                reinstall=self.parameterAsBool(parameters, self.REINSTALL, context), feedback=feedback,
            )
        except installer.SetupError as exc:
            raise QgsProcessingException(str(exc)) from None
        what = "checked the existing environment" if result.reused else "installed"
        feedback.pushInfo(f"sar2opt backend {what} in {result.seconds:.0f} s: {result.executable}")
        self._executable = result.executable
        return {self.EXECUTABLE: result.executable, self.VENV: result.venv}

    def postProcessAlgorithm(self, context, feedback):
        # in the main thread (the dialog runs processAlgorithm in a worker thread)
        executable = getattr(self, "_executable", None)
        if executable and os.path.isfile(executable):
            store_executable(executable)
            feedback.pushInfo(f"Stored in Settings > Options > Processing > Providers > sar2opt: {executable}")
        return {}
