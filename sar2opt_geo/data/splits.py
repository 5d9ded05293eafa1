"""Train/validation splits by scene or by area, never by random patch.

Patches of one SEN1-2 scene overlap, and the Los Angeles pairs are adjacent tiles: a
random split would validate on pixels the model has seen (or their immediate
neighbours). So:

* :func:`split_by_scene` holds out whole scenes (``Pair.group``), chosen by a stable
  hash of their names (independent of file order and of the machine).
* :func:`split_by_area` holds out, inside every scene, a spatially separate block of
  whole tile columns on one side (default: the easternmost ~20 %), from the tiles'
  georeferenced bounds (compared as longitudes, so any CRS works).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from ..errors import DatasetError
from .pairs import Pair

__all__ = ["split_by_area", "split_by_scene", "split_pairs", "tile_centre_lonlat"]

Side = Literal["east", "west", "north", "south"]


def _stable(name: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def split_by_scene(pairs: Sequence[Pair], fraction: float = 0.2, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Hold out whole scenes (``Pair.group``) until about ``fraction`` of the pairs are held out."""
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[p.group].append(p)
    if len(groups) < 2:
        raise DatasetError(f"only one scene ({next(iter(groups), '?')}) in the data: cannot split by scene; use --split area")
    order = sorted(groups, key=lambda g: _stable(g, seed))
    target = fraction * len(pairs)
    val_groups: list[str] = []
    held = 0
    for g in order[:-1]:  # always leave at least one scene for training
        if held >= target:
            break
        val_groups.append(g)
        held += len(groups[g])
    val = set(val_groups)
    return [p for p in pairs if p.group not in val], [p for p in pairs if p.group in val]


def tile_centre_lonlat(pair: Pair) -> tuple[float, float]:
    """Longitude, latitude (degrees, EPSG:4326) of the centre of a georeferenced pair's target raster."""
    import rasterio
    from rasterio.warp import transform as warp_transform

    with rasterio.open(pair.target.files[0]) as src:
        if src.crs is None:
            raise DatasetError(f"{pair.target.files[0]}: no CRS; cannot split by area (use --split scene)")
        b = src.bounds
        xs, ys = warp_transform(src.crs, "EPSG:4326", [(b.left + b.right) / 2], [(b.bottom + b.top) / 2])
    return float(xs[0]), float(ys[0])


def split_by_area(
    pairs: Sequence[Pair], fraction: float = 0.2, side: Side = "east", decimals: int = 4
) -> tuple[list[Pair], list[Pair]]:
    """Inside every scene, hold out the tiles on ``side`` as a block of whole columns (or rows).

    Tile centres are rounded to ``decimals`` degrees to form columns (east/west) or rows
    (north/south). For each scene the number of outermost columns is the one whose tile
    count is closest to ``fraction`` of the scene (at least one column, and at least one
    column left for training). Scenes with a single column are kept for training.
    """
    if not all(p.georeferenced for p in pairs):
        raise DatasetError("split by area needs georeferenced pairs (GeoTIFFs); use --split scene")
    axis = 0 if side in ("east", "west") else 1
    sign = 1.0 if side in ("east", "north") else -1.0
    scenes: dict[str, list[tuple[float, Pair]]] = defaultdict(list)
    for p in pairs:
        scenes[p.group].append((sign * round(tile_centre_lonlat(p)[axis], decimals), p))
    held: set[str] = set()
    for members in scenes.values():
        columns = sorted({c for c, _ in members}, reverse=True)  # outermost first
        if len(columns) < 2:
            continue
        want = fraction * len(members)
        best_n, best_err, count = 1, float("inf"), 0
        for n, col in enumerate(columns[:-1], start=1):
            count += sum(1 for c, _ in members if c == col)
            err = abs(count - want)
            if err < best_err:
                best_n, best_err = n, err
        cut = set(columns[:best_n])
        held |= {p.key for c, p in members if c in cut}
    if not held:
        raise DatasetError("split by area held out nothing: every scene is a single column of tiles; use --split scene")
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]


def split_pairs(
    pairs: Sequence[Pair], method: Literal["auto", "area", "scene", "none"] = "auto", fraction: float = 0.2, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Split by ``method``; ``auto``: by area when every pair is georeferenced and some scene has
    several tiles, else by scene. ``none``: everything is training data, validation empty."""
    if method == "none":
        return list(pairs), []
    if method == "auto":
        many = max((sum(1 for q in pairs if q.group == p.group) for p in pairs), default=0) > 1
        method = "area" if all(p.georeferenced for p in pairs) and many else "scene"
    if method == "area":
        return split_by_area(pairs, fraction)
    if method == "scene":
        return split_by_scene(pairs, fraction, seed)
    raise DatasetError(f"unknown split method {method!r}; choose auto, area, scene or none")
