"""Training data: pairs on disk, normalisation (defined once), datasets, splits."""

from __future__ import annotations

from . import normalize
from .augment import SpeckleAugment
from .datasets import PairDataset, read_unit
from .pairs import LAYOUTS, BandSource, Pair, check_same_grid, detect_layout, find_pairs
from .splits import split_by_area, split_by_scene, split_pairs

__all__ = [
    "LAYOUTS",
    "BandSource",
    "Pair",
    "PairDataset",
    "SpeckleAugment",
    "check_same_grid",
    "detect_layout",
    "find_pairs",
    "normalize",
    "read_unit",
    "split_by_area",
    "split_by_scene",
    "split_pairs",
]
