"""The provider's icon, in a module of its own so that the algorithms and the provider can
both use it without importing each other."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

__all__ = ["ICON_PATH", "provider_icon"]

ICON_PATH = Path(__file__).with_name("icon.svg")


def provider_icon() -> QIcon:
    return QIcon(str(ICON_PATH))
