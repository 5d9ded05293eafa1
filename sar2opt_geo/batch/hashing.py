"""Input hashes and resume: what determines an output's pixels, and whether an earlier run already made it."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from ..models.loading import file_stamp
from ..options import options_with_effect
from .records import NO_VALID_DATA, NO_VALID_DATA_SCENE, Record, RecordBase, utc_now
from .scenes import SceneInfo

log = logging.getLogger(__name__)


#: TranslateOptions fields left out of the input hash: those that cannot change the pixels, and the
#: crop fields, hashed through the prepared polygon instead.
_UNHASHED_OPTIONS = options_with_effect("nothing", "window")

def _card_hash(path: str) -> str:
    """SHA-256 prefix of a checkpoint (``models.checkpoint.card_hash``), cached by path, size and mtime."""
    return _card_hash_stamped(path, file_stamp(path))

@functools.lru_cache(maxsize=16)
def _card_hash_stamped(path: str, stamp: tuple[int, int] | None) -> str:
    from ..models.checkpoint import card_hash

    if stamp is None:
        return "missing"
    return card_hash(path)

def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):  # an instance, not a dataclass class
        d = dataclasses.asdict(options)
    else:
        d = dict(vars(options))
    return {k: v for k, v in d.items() if k not in _UNHASHED_OPTIONS}

def input_hash(scene: SceneInfo, geometry: BaseGeometry | None, model: str, options: Any, keep_rectangle: bool) -> str:
    """SHA-256 (first 16 hex digits) of what determines an output's pixels: the scene's path, size
    and mtime, the prepared polygon's WKB (scene CRS, buffered; None for a whole scene), the model
    card hash, the options. How a whole scene is split into row bands is not in it: the bytes are
    the same."""
    payload = {
        "scene": scene.fingerprint,
        "crs": scene.crs,
        "polygon_wkb": shapely.to_wkb(geometry, hex=True) if geometry is not None else None,
        "model": _card_hash(model),
        "options": _options_dict(options),
        "keep_rectangle": keep_rectangle,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

def _output_matches(prev: dict[str, Any], output: Path) -> bool:
    try:
        st = output.stat()
    except OSError:
        return False
    return int(prev.get("output_size") or 0) == st.st_size and int(prev.get("output_mtime_ns") or 0) == st.st_mtime_ns

def up_to_date(prev: dict[str, Any] | None, h: str, out: Path, redo: bool, base: RecordBase) -> Record | None:
    """The 'skipped' row for an output an earlier run already made with the same inputs, else None."""
    if redo or prev is None or prev.get("input_hash") != h:
        return None
    if prev.get("status") in ("done", "skipped") and _output_matches(prev, out):
        from ..translation.rowbands import band_folder

        stale = band_folder(out)  # band files of a run killed after its assembly
        if stale.is_dir():
            import shutil

            shutil.rmtree(stale, ignore_errors=True)
        return Record(**base, status="skipped", reason="up to date (same inputs as the earlier run)",
                      input_hash=h, output_size=int(prev["output_size"]),
                      output_mtime_ns=int(prev["output_mtime_ns"]), finished=utc_now(), bands=int(prev.get("bands") or 0))
    reason = str(prev.get("reason", ""))
    if prev.get("status") == "skipped" and reason.startswith((NO_VALID_DATA, NO_VALID_DATA_SCENE)):
        return Record(**base, status="skipped", reason=reason, input_hash=h, finished=utc_now())
    return None
