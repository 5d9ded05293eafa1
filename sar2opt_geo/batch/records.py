"""Tasks and rows of a batch: :class:`CropTask` (one output to make), :class:`Record` (one summary row), :class:`BatchSummary`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)


Status = Literal["done", "skipped", "failed"]

Split = int | Literal["auto"]

NO_VALID_DATA = "no valid data in the polygon"

NO_VALID_DATA_SCENE = "no valid data in the scene"

class RecordBase(TypedDict):
    """The fields of a :class:`Record` fixed at planning, before its status is known (``Record(**base, status=...)``)."""

    order: int
    name: str
    fid: int
    scene: str
    output: str
    geometry: BaseGeometry | None
    aoi: NotRequired[str]
    aoi_layer: NotRequired[str]

@dataclass(frozen=True)
class CropTask:
    """One output to make: a scene x AOI crop, or a whole scene (``geometry`` and ``bounds`` None);
    picklable (sent to Dask workers)."""

    order: int  # position in the summary (scene-major)
    name: str
    fid: int  # AOI feature id; -1 for a whole scene
    scene: str
    output: str
    geometry: BaseGeometry | None  # buffered AOI in ``crs`` (the scene CRS); None for a whole scene
    crs: str
    bounds: tuple[float, float, float, float] | None  # crop bounds in ``crs``: polygon bounds within the scene
    keep_rectangle: bool
    model: str  # checkpoint path
    options: Any  # TranslateOptions | None
    input_hash: str
    aoi_geometry: BaseGeometry | None  # summary footprint: the feature as read (AOI CRS), or the scene's (lon/lat)
    aoi: str = ""  # the AOI file (resolved path); "" for a whole scene
    aoi_layer: str = ""  # its layer

    @property
    def whole_scene(self) -> bool:
        return self.geometry is None and self.bounds is None

@dataclass
class Record:
    """One row of the summary."""

    order: int
    name: str
    fid: int
    scene: str
    output: str
    status: Status
    reason: str = ""
    seconds: float = 0.0
    input_hash: str = ""
    output_size: int = 0  # bytes, 0 when there is no output
    output_mtime_ns: int = 0
    finished: str = ""  # UTC ISO time
    geometry: BaseGeometry | None = None
    bands: int = 0  # row bands the output was assembled from (0: one pass)
    aoi: str = ""  # the AOI file (resolved path); "" for a whole scene
    aoi_layer: str = ""  # its layer

def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - datetime.UTC needs 3.11

def record_for(task: CropTask, status: Status, reason: str = "", seconds: float = 0.0) -> Record:
    return Record(task.order, task.name, task.fid, task.scene, task.output, status, reason, round(seconds, 3),
                  task.input_hash, finished=utc_now(), geometry=task.aoi_geometry, aoi=task.aoi, aoi_layer=task.aoi_layer)

@dataclass
class BatchSummary:
    """Outcome of a batch: one :class:`Record` per output, in plan order."""

    records: list[Record]
    output_dir: Path
    summary_path: Path
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]

    def table(self) -> str:
        """Plain-text table: name, scene, status, reason, seconds."""
        rows = [("name", "scene", "status", "reason", "seconds")]
        rows += [(r.name, Path(r.scene).name, r.status, r.reason, f"{r.seconds:.2f}") for r in self.records]
        widths = [min(max(len(row[i]) for row in rows), 60) for i in range(4)]
        lines = ["  ".join(c[:w].ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
        return "\n".join(lines)
