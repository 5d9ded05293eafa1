"""Training data: pairs on disk, datasets, splits (normalisation: :mod:`sar2opt_geo.normalize`).

Imports are lazy: the CLI builds its parsers from :mod:`.pairs` without importing torch
(which :mod:`.datasets` needs).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "LAYOUTS",
    "BandSource",
    "Pair",
    "PairDataset",
    "SpeckleAugment",
    "check_same_grid",
    "detect_layout",
    "find_pairs",
    "read_unit",
    "split_by_area",
    "split_by_scene",
    "split_pairs",
]

_WHERE = {
    "PairDataset": "datasets", "SpeckleAugment": "augment", "read_unit": "datasets",
    "LAYOUTS": "pairs", "BandSource": "pairs", "Pair": "pairs", "check_same_grid": "pairs", "detect_layout": "pairs",
    "find_pairs": "pairs",
    "split_by_area": "splits", "split_by_scene": "splits", "split_pairs": "splits",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
