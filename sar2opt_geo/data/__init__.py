"""Training data: pairs on disk, datasets, splits (normalisation: :mod:`sar2opt_geo.normalize`)."""

from __future__ import annotations

from .datasets import PairDataset, read_unit
from .pairs import LAYOUTS, BandSource, Pair, check_same_grid, detect_layout, find_pairs
from .splits import split_by_area, split_by_scene, split_pairs

__all__ = [
    "LAYOUTS",
    "BandSource",
    "Pair",
    "PairDataset",
    "check_same_grid",
    "detect_layout",
    "find_pairs",
    "read_unit",
    "split_by_area",
    "split_by_scene",
    "split_pairs",
]
