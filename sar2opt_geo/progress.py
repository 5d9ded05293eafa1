"""Progress and cancel callbacks: one definition for every long operation.

* ``progress(fraction, message)``: ``fraction`` in [0, 1] of the whole operation, ``message``
  one short line (the CLI's bar, QGIS's feedback, the JSON progress events all take it).
* ``cancel()``: returns True to ask the operation to stop; it raises
  :class:`~sar2opt_geo.errors.CancelledError` at its next check.

:func:`sub_range` maps a step's own 0..1 onto its share of the whole.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CancelFn", "ProgressFn", "sub_range"]

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def sub_range(progress: ProgressFn | None, lo: float, hi: float) -> ProgressFn | None:
    """``progress`` for a step that covers ``[lo, hi]`` of the whole (None stays None); the step's
    fraction is clipped to [0, 1]."""
    if progress is None:
        return None

    def step(f: float, msg: str = "") -> None:
        progress(lo + (hi - lo) * min(max(float(f), 0.0), 1.0), msg)

    return step
