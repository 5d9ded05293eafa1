"""Scene readers: one :class:`Scene` per product, calibrated and georeferenced."""

from __future__ import annotations

from .base import BandInfo, Scene

__all__ = ["BandInfo", "Scene", "open_scene"]


def open_scene(path, bands=None, **kwargs) -> Scene:  # replaced by sensors.open once readers exist
    from .open import open_scene as _open

    return _open(path, bands=bands, **kwargs)
