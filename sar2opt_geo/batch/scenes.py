"""Scene discovery and naming: folders of scenes, scene metadata for planning, the scene keys of output names."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyproj import CRS
from shapely.geometry import MultiPoint, box
from shapely.geometry.base import BaseGeometry

from ..errors import (
    GeoreferencingError,
    InputError,
)
from ..io.stamps import file_fingerprint

log = logging.getLogger(__name__)


_SCENE_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2", ".zip"}

def _is_product_dir(path: Path) -> bool:
    """A folder that is one product: Sentinel-1 SAFE, or a PALSAR-2 product (summary.txt)."""
    return path.suffix.upper() == ".SAFE" or (path / "manifest.safe").exists() or (path / "summary.txt").exists()

def expand_scenes(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Scene paths from files, product folders (SAFE, PALSAR-2) and folders of them (not recursive:
    raster files with a known suffix and product folders directly inside), without duplicates."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: scene not found")
        if p.is_dir() and not _is_product_dir(p):
            found = sorted(
                c for c in p.iterdir()
                if (c.is_file() and c.suffix.lower() in _SCENE_SUFFIXES) or (c.is_dir() and _is_product_dir(c))
            )
            if not found:
                raise InputError(f"{p}: folder holds no scene (GeoTIFF, .SAFE or PALSAR-2 product); pass scene files")
            out.extend(found)
        else:
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    return unique

@dataclass(frozen=True)
class SceneInfo:
    """What planning needs from a scene: its CRS (``crs``, a CRS string; for GCP-georeferenced
    products the GCP CRS), its footprint in that CRS, and whether it is SAR."""

    path: Path
    stem: str
    crs: str
    footprint: BaseGeometry
    is_sar: bool
    fingerprint: dict[str, Any]

def scene_info(path: str | os.PathLike) -> SceneInfo:
    """Open a scene's metadata with :func:`sar2opt_geo.sensors.open_scene` (no pixels read)."""
    from rasterio.transform import array_bounds

    from ..sensors import open_scene

    path = Path(path)
    with open_scene(path) as scene:
        if scene.crs is not None and scene.transform is not None and not scene.transform.is_identity:
            left, bottom, right, top = array_bounds(scene.height, scene.width, scene.transform)
            crs, footprint = scene.crs, box(left, bottom, right, top)
        elif scene.gcps and scene.gcps[0]:
            gcps, crs = scene.gcps
            footprint = MultiPoint([(g.x, g.y) for g in gcps]).convex_hull
        else:
            raise GeoreferencingError(f"{path}: scene has neither a CRS with a transform nor GCPs; it cannot be cropped to an AOI")
        is_sar = scene.is_sar
    return SceneInfo(path, path.stem, _crs_string(crs), footprint, is_sar, file_fingerprint(path))

def _crs_string(crs: Any) -> str:
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.to_wkt()

def path_hash(path: str) -> str:
    """8 hex digits identifying a resolved path (SHA-256 prefix)."""
    return hashlib.sha256(path.encode()).hexdigest()[:8]

def _keys_in(output_name: str) -> set[str]:
    """The scene keys an output file name may carry (case-folded, for macOS and Windows):
    ``<key>.tif`` (whole scene) or ``...__<key>.tif`` (AOI crop): the stem and every tail after a ``__``."""
    stem = output_name.casefold().removesuffix(".tif")
    parts = stem.split("__")
    return {"__".join(parts[i:]) for i in range(len(parts))}

def scene_keys(scenes: Sequence[Path], previous: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The scene part of each scene's output names: its stem, or ``<stem>-<8 hex digits>`` (a
    SHA-256 prefix of its resolved path) when stems collide; never dependent on the order of ``scenes``.

    ``previous`` holds the rows of the folder's summary (:func:`read_summary`). A scene keeps its
    plain stem when no other scene's row in the folder uses it and, in this batch, either no other
    scene has the same stem (compared case-insensitively) and the scene was not named with its
    hash before, or its own rows already use the plain stem (it had it first). Otherwise it gets
    the hashed key, so an output of another scene with the same stem (another folder) is never
    replaced, and reruns, in any order, find their outputs under the same names.
    """
    previous = previous or {}
    resolved = [str(Path(p).resolve()) for p in scenes]
    in_batch = Counter(Path(p).stem.casefold() for p in scenes)
    stems = {Path(p).stem.casefold() for p in scenes}
    hashed = {f"{Path(p).stem}-{path_hash(r)}".casefold() for p, r in zip(scenes, resolved)}
    plain_users: dict[str, set[str]] = {}  # stem -> scenes (resolved) whose rows use it as their key
    hashed_used: set[tuple[str, str]] = set()  # (scene resolved, its hashed key) used by its rows
    for output, row in previous.items():
        scene = str(row.get("scene") or "")
        found = _keys_in(Path(output).name) if scene else set()
        for key in found & stems:
            plain_users.setdefault(key, set()).add(os.path.realpath(scene))
        for key in found & hashed:
            hashed_used.add((os.path.realpath(scene), key))
    keys = []
    for p, r in zip(scenes, resolved):
        stem = Path(p).stem
        hashed_key = f"{stem}-{path_hash(r)}"
        users = plain_users.get(stem.casefold(), set())
        alone = in_batch[stem.casefold()] == 1 and (r, hashed_key.casefold()) not in hashed_used
        keys.append(stem if users == {r} or (not users and alone) else hashed_key)
    return keys
