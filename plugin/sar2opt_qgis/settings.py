"""The provider setting that says which ``sar2opt`` to run (Options > Processing > Providers)."""

from __future__ import annotations

from .backend import SETTING_EXECUTABLE

__all__ = ["SETTING_EXECUTABLE", "configured_executable", "register_settings", "unregister_settings"]


def register_settings(group: str, icon=None) -> None:
    """Add the executable setting under the provider's group and read saved values."""
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    if icon is not None:
        ProcessingConfig.settingIcons[group] = icon
    ProcessingConfig.addSetting(
        Setting(
            group,
            SETTING_EXECUTABLE,
            "sar2opt executable or Python interpreter (empty = sar2opt on PATH; "
            "the SAR2OPT_EXECUTABLE environment variable overrides it)",
            "",
            valuetype=Setting.FILE,
            placeholder="/path/to/venv/bin/sar2opt",
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
