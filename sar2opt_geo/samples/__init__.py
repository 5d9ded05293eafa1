"""Sample scenes: generated **synthetic** scenes (:mod:`.synthetic`) and the bundled real pair with
the demo's side-by-side figure (:mod:`.demo`; files in ``samples/data/``)."""

from __future__ import annotations

from .synthetic import (
    SAMPLE_CRS,
    SAMPLE_NODATA,
    synthetic_db,
    write_ceos_leader,
    write_sample_scene,
    write_synthetic_palsar2_l21,
)

__all__ = [
    "SAMPLE_CRS",
    "SAMPLE_NODATA",
    "synthetic_db",
    "write_ceos_leader",
    "write_sample_scene",
    "write_synthetic_palsar2_l21",
]
