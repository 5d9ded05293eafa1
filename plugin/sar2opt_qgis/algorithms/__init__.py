"""The sar2opt Processing algorithms (one module each)."""

from __future__ import annotations

from .composite import CompositeAlgorithm
from .info import InfoAlgorithm
from .setup import SetupAlgorithm
from .translate import TranslateAlgorithm
from .translate_aoi import TranslateAoiAlgorithm

__all__ = ["ALGORITHMS", "CompositeAlgorithm", "InfoAlgorithm", "SetupAlgorithm", "TranslateAlgorithm", "TranslateAoiAlgorithm"]

ALGORITHMS = (SetupAlgorithm, TranslateAlgorithm, TranslateAoiAlgorithm, CompositeAlgorithm, InfoAlgorithm)
