"""When to offer the backend setup to a QGIS user (standard library only, tested outside QGIS)."""

from __future__ import annotations

import os

from . import backend

__all__ = ["DISMISSED_KEY", "missing_backend", "should_offer_setup"]

DISMISSED_KEY = "sar2opt/setup_prompt_dismissed"
"""QgsSettings key: the user ticked "Don't ask again" in the first-run prompt."""


def missing_backend(configured: str | None, profile_dir: str | os.PathLike | None, environ: dict | None = None) -> str | None:
    """Why no backend can run (the lookup's message), or ``None`` when one is found."""
    try:
        backend.find_backend(configured, profile_dir=profile_dir, environ=environ)
    except backend.BackendError as exc:
        return str(exc)
    return None


def should_offer_setup(has_gui: bool, missing: str | None, dismissed: bool) -> bool:
    """Offer the setup only in the QGIS desktop (never under qgis_process or a script), only when
    no backend is found, and only until the user said not to ask again."""
    return bool(has_gui and missing and not dismissed)
