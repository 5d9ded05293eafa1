"""The sar2opt Processing algorithms (one module each)."""

from __future__ import annotations

from .composite import CompositeAlgorithm
from .info import InfoAlgorithm
from .pairs import MakePairsAlgorithm
from .setup import SetupAlgorithm
from .train import TrainAlgorithm
from .translate import TranslateAlgorithm
from .translate_aoi import TranslateAoiAlgorithm

__all__ = [
    "ALGORITHMS",
    "CompositeAlgorithm",
    "InfoAlgorithm",
    "MakePairsAlgorithm",
    "SetupAlgorithm",
    "TrainAlgorithm",
    "TranslateAlgorithm",
    "TranslateAoiAlgorithm",
]

ALGORITHMS = (SetupAlgorithm, TranslateAlgorithm, TranslateAoiAlgorithm, CompositeAlgorithm, InfoAlgorithm,
              MakePairsAlgorithm, TrainAlgorithm)
