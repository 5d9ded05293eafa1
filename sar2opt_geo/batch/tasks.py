"""Running one task in any process (never raises for a failed output): a crop or whole scene, or the plan / band / assembly steps of a scene split into row bands."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    NoValidDataError,
    Sar2OptError,
)
from ..models.loading import load_model_cached
from .records import (
    NO_VALID_DATA,
    NO_VALID_DATA_SCENE,
    CropTask,
    Record,
    Split,
    record_for,
)

log = logging.getLogger(__name__)


def _failure(task: CropTask, exc: BaseException, t0: float) -> Record:
    """The record of a task that raised: skipped for no valid data, else failed with the reason."""
    if isinstance(exc, NoValidDataError):  # the polygon (or scene) covers only nodata (fill)
        what = NO_VALID_DATA_SCENE if task.whole_scene else NO_VALID_DATA
        return record_for(task, "skipped", f"{what}: {exc}", time.perf_counter() - t0)
    if isinstance(exc, Sar2OptError):
        return record_for(task, "failed", str(exc), time.perf_counter() - t0)
    log.debug("output %s failed", task.output, exc_info=exc)
    return record_for(task, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)

def _done(task: CropTask, t0: float, bands: int = 0) -> Record:
    rec = record_for(task, "done", "", time.perf_counter() - t0)
    st = Path(task.output).stat()
    rec.output_size, rec.output_mtime_ns, rec.bands = st.st_size, st.st_mtime_ns, bands
    return rec

def run_task(task: CropTask, translate: Callable[..., Any] | None = None) -> Record:
    """Translate one crop or whole scene; never raises for a failed one (the record says why),
    only on interrupt."""
    from ..translation.api import resolve_device

    if translate is None:
        from ..translation.api import translate as api_translate

        translate = api_translate
    t0 = time.perf_counter()
    try:
        device = resolve_device(getattr(task.options, "device", "auto") or "auto")
        model = load_model_cached(task.model, device)
        Path(task.output).parent.mkdir(parents=True, exist_ok=True)
        if task.whole_scene:
            translate(task.scene, task.output, model, task.options, overwrite=True)
        else:
            translate(
                task.scene, task.output, model, task.options,
                bounds=task.bounds, bounds_crs=task.crs, aoi=task.geometry, aoi_crs=task.crs,
                keep_rectangle=task.keep_rectangle, overwrite=True,
            )
    except Exception as exc:  # noqa: BLE001 - keep the batch going; the summary carries the error
        return _failure(task, exc, t0)
    return _done(task, t0)

def _split_options(task: CropTask) -> Any:
    from ..options import TranslateOptions

    return (task.options or TranslateOptions()).replace(overwrite=True)

def plan_scene_task(task: CropTask, bands: int) -> Any:
    """Plan a whole scene in ``bands`` row bands (:func:`sar2opt_geo.translation.rowbands.plan_scene`): the
    :class:`~sar2opt_geo.translation.rowbands.ScenePlan`, or a failed/skipped :class:`Record`; never raises."""
    from ..translation.rowbands import plan_scene

    t0 = time.perf_counter()
    try:
        return plan_scene(task.scene, task.model, _split_options(task), bands)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        return _failure(task, exc, t0)

def band_task(task: CropTask, plan: Any, k: int) -> Any:
    """Translate band ``k`` of ``plan`` (:func:`sar2opt_geo.translation.rowbands.run_band`): a
    :class:`~sar2opt_geo.translation.rowbands.BandResult`, or a failed :class:`Record`; never raises."""
    from ..translation.rowbands import run_band

    t0 = time.perf_counter()
    try:
        return run_band(plan, k, task.output)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        rec = _failure(task, exc, t0)
        r0, r1 = plan.rows[k]
        rec.reason = f"row band {r0}-{r1}: {rec.reason}"
        return rec

def assemble_task(task: CropTask, plan: Any, t_start: float | None = None) -> Record:
    """Assemble the bands of ``plan`` into the output (:func:`sar2opt_geo.translation.rowbands.assemble`);
    never raises. ``t_start``: ``time.time()`` when the scene's first task started, for the row's seconds."""
    from ..translation.rowbands import assemble

    t0 = time.perf_counter() - (time.time() - t_start if t_start is not None else 0.0)
    try:
        assemble(plan, task.output)
    except Exception as exc:  # noqa: BLE001 - becomes the scene's row
        return _failure(task, exc, t0)
    return _done(task, t0, bands=len(plan.rows))

def bands_per_scene(split: Split, scenes: int, workers: int) -> int:
    """Row bands per whole scene: ``split`` itself, or for ``"auto"`` enough to give every worker
    thread a band when there are fewer scenes than workers (1 otherwise, or when serial)."""
    if split == "auto":
        return max(1, math.ceil(workers / scenes)) if scenes and workers > scenes else 1
    if int(split) < 1:
        raise ConfigError(f"split={split!r} must be a number of row bands >= 1, or 'auto'")
    return int(split)

def bands_for(task: CropTask, bands: int) -> int:
    """The row bands ``task`` runs in: ``bands`` for a whole scene that can be split, else 1."""
    from ..translation.rowbands import splittable

    return bands if task.whole_scene and bands > 1 and splittable(task.options) else 1

def run_split_serial(task: CropTask, bands: int) -> Record:
    t_start = time.time()
    plan = plan_scene_task(task, bands)
    if isinstance(plan, Record):
        return plan
    for k in range(len(plan.rows)):
        band = band_task(task, plan, k)
        if isinstance(band, Record):
            return band
    return assemble_task(task, plan, t_start)
