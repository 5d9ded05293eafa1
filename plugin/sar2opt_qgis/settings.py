"""The provider setting that says which ``sar2opt`` to run (Settings > Options > Processing >
Providers > sar2opt), and the QGIS profile folder where ``sar2opt:setup`` installs one."""

from __future__ import annotations

from .backend import SETTING_EXECUTABLE

__all__ = [
    "SETTING_EXECUTABLE",
    "SETTING_LABEL",
    "configured_executable",
    "profile_dir",
    "register_settings",
    "store_executable",
    "unregister_settings",
]

SETTING_LABEL = "sar2opt executable"
"""Short, so that the Options dialog's value column stays on screen; the lookup order (empty:
the SAR2OPT_EXECUTABLE variable, the environment sar2opt:setup made, PATH) is in the docs and
in the error message when nothing is found."""


def register_settings(group: str, icon=None) -> None:
    """Add the executable setting under the provider's group and read saved values."""
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    if icon is not None:
        ProcessingConfig.settingIcons[group] = icon
    ProcessingConfig.addSetting(
        Setting(
            group,
            SETTING_EXECUTABLE,
            SETTING_LABEL,
            "",
            valuetype=Setting.FILE,
            placeholder="empty: automatic (run sar2opt:setup)",
        )
    )
    ProcessingConfig.readSettings()


def unregister_settings() -> None:
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.removeSetting(SETTING_EXECUTABLE)


def configured_executable() -> str:
    """The saved setting value, or ``""`` when unset (or when Processing is not loaded)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return ""
    value = ProcessingConfig.getSetting(SETTING_EXECUTABLE)
    return str(value or "").strip()


def store_executable(path: str) -> None:
    """Save ``path`` as the provider setting (what sar2opt:setup does when it succeeds)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue(SETTING_EXECUTABLE, str(path))


def profile_dir() -> str:
    """The active QGIS profile folder (``.../QGIS3/profiles/default/``)."""
    from qgis.core import QgsApplication

    return QgsApplication.qgisSettingsDirPath()
