"""One exception hierarchy for sar2opt_geo.

Every message names the file or value at fault and, where there is one, the way out.
Subclasses also inherit the builtin they resemble so that callers catching
``ValueError`` or ``OSError`` keep working (the rasterio habit).
"""

from __future__ import annotations

__all__ = [
    "BandError",
    "CancelledError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "GeoreferencingError",
    "InputError",
    "NoValidDataError",
    "OptionTypeError",
    "OutputExistsError",
    "Sar2OptError",
    "UnsupportedFormatError",
]


class Sar2OptError(Exception):
    """Root of every error this library raises on purpose."""


class InputError(Sar2OptError, OSError):
    """An input file is missing or unreadable."""


class UnsupportedFormatError(Sar2OptError, ValueError):
    """No reader recognises the input."""


class GeoreferencingError(Sar2OptError, ValueError):
    """The input has no usable CRS, transform or GCPs."""


class BandError(Sar2OptError, KeyError):
    """A requested band or polarisation is not in the scene."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class NoValidDataError(Sar2OptError, ValueError):
    """The scene (or the requested area) holds only nodata."""


class CheckpointError(Sar2OptError, ValueError):
    """A model file is not a readable sar2opt_geo checkpoint."""


class OutputExistsError(Sar2OptError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class CancelledError(Sar2OptError):
    """The caller's cancel hook asked the work to stop; nothing was written."""


class DatasetError(Sar2OptError, ValueError):
    """Training or evaluation data is malformed (unmatched or mismatched pairs)."""


class ConfigError(Sar2OptError, ValueError):
    """An option value cannot work (tile size, overlap, margin, device ...); the message gives a valid value."""


class OptionTypeError(ConfigError, TypeError):
    """An option has the wrong type or name (a non-integer tile size, an unknown option)."""
