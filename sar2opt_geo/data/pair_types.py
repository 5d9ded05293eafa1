"""What a training pair is: :class:`Pair` of two :class:`BandSource` (files, bands, scaling to [0, 1])."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["BandSource", "Pair", "Scaling"]

#: How raw values become [0, 1]; see :mod:`sar2opt_geo.normalize`.
Scaling = Literal["uint8", "db_clip", "reflectance", "percentile", "db_percentile"]


@dataclass(frozen=True)
class BandSource:
    """Where one side of a pair comes from: files, band indexes, and how to scale them to [0, 1].

    ``files`` holds one multi-band file (``bands`` = 1-based indexes into it, None = all)
    or one single-band file per band (``bands`` None).
    """

    files: tuple[Path, ...]
    bands: tuple[int, ...] | None
    scaling: Scaling
    names: tuple[str, ...] = ()  # band names, e.g. ("VH",) or ("red", "green", "blue")


@dataclass(frozen=True)
class Pair:
    """One co-registered training pair.

    ``key`` is the name both sides were matched by; ``group`` the scene or area the pair
    belongs to (splits keep groups whole: SEN1-2 patches of one scene overlap).
    ``condition`` None means colourisation: the condition is the gray of ``target``.
    """

    key: str
    group: str
    condition: BandSource | None
    target: BandSource
    georeferenced: bool = False
