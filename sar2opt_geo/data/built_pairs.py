"""Reading the pairs datasets ``sar2opt pairs`` builds (layout ``"pairs"``).

``root/sar/<name>.tif`` <-> ``root/opt/<name>.tif``, the tiles listed in ``root/metadata.json``
(``"format": "sar2opt-pairs"``) with their scene pair, the storage rule and the pairs' input
domain (written by :mod:`sar2opt_geo.data.make_pairs` and :mod:`sar2opt_geo.data.pairs_store`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import DatasetError
from .pair_types import BandSource, Pair, Scaling

__all__ = ["PAIRS_FORMAT", "PAIRS_VERSION", "find_built_pairs", "is_pairs_dataset", "read_pairs_metadata"]

log = logging.getLogger(__name__)

#: ``metadata.json`` marker of the datasets ``sar2opt pairs`` writes, and its version.
PAIRS_FORMAT = "sar2opt-pairs"
PAIRS_VERSION = 1


def is_pairs_dataset(root: str | Path) -> bool:
    """True if ``root/metadata.json`` is a ``sar2opt pairs`` dataset's."""
    import json

    meta = Path(root) / "metadata.json"
    try:
        return meta.is_file() and json.loads(meta.read_text()).get("format") == PAIRS_FORMAT
    except (ValueError, AttributeError, OSError):
        return False


def read_pairs_metadata(root: str | os.PathLike) -> dict:
    """The ``metadata.json`` of a ``sar2opt pairs`` dataset, checked; :class:`DatasetError` naming the file otherwise."""
    import json

    meta = Path(root) / "metadata.json"
    try:
        data = json.loads(meta.read_text())
    except OSError:
        raise DatasetError(f"{meta}: no pairs metadata; build the dataset with sar2opt pairs") from None
    except ValueError as exc:
        raise DatasetError(f"{meta}: not valid JSON ({exc}); restore it or rebuild the dataset") from None
    if not isinstance(data, dict) or data.get("format") != PAIRS_FORMAT:
        raise DatasetError(f"{meta}: not a sar2opt pairs dataset (no \"format\": \"{PAIRS_FORMAT}\")")
    if int(data.get("version", 0)) > PAIRS_VERSION:
        raise DatasetError(f"{meta}: pairs format version {data.get('version')} is newer than this library's "
                           f"({PAIRS_VERSION}); upgrade sar2opt-geo")
    missing = [k for k in ("storage", "input", "output", "tile_size", "scene_pairs", "tiles") if k not in data]
    if missing:
        raise DatasetError(f"{meta}: pairs metadata lacks {', '.join(missing)}; rebuild the dataset")
    return data


def find_built_pairs(root: str | Path, sar_bands: Sequence[str] | None = None) -> list[Pair]:
    """The pairs of a ``sar2opt pairs`` dataset (layout ``"pairs"``), in the order ``metadata.json`` lists them.

    ``sar_bands``: a subset of the stored SAR bands to use (default: all). Tiles missing on
    disk are an error; files on disk that ``metadata.json`` does not list (left by an
    interrupted ``--append``) are ignored with a warning.
    """
    root = Path(root)
    meta = read_pairs_metadata(root)
    stored = [str(b) for b in meta["input"]["bands"]]
    if sar_bands:
        upper = [b.upper() for b in stored]
        try:
            picked = tuple(upper.index(b.upper()) + 1 for b in sar_bands)
        except ValueError:
            raise DatasetError(f"{root}: SAR band(s) {', '.join(sar_bands)} not stored; the pairs hold "
                               f"{', '.join(stored)}") from None
        idx: tuple[int, ...] | None = picked
        names = tuple(stored[i - 1] for i in picked)
    else:
        idx, names = None, tuple(stored)
    rule = meta["storage"].get("rule")
    if rule not in ("percentile", "db"):
        raise DatasetError(f"{root}/metadata.json: unknown storage rule {rule!r}; rebuild the dataset")
    sar_scaling: Scaling = "uint8" if rule == "percentile" else "db_clip"
    opt_scaling: Scaling = "uint8" if rule == "percentile" else "reflectance"
    pairs, missing = [], []
    listed = set()
    for t in meta["tiles"]:
        s, o = root / "sar" / f"{t['name']}.tif", root / "opt" / f"{t['name']}.tif"
        listed.add(t["name"])
        if not (s.is_file() and o.is_file()):
            missing.append(s if not s.is_file() else o)
            continue
        pairs.append(Pair(key=t["name"], group=t["pair"], condition=BandSource((s,), idx, sar_scaling, names),
                          target=BandSource((o,), (1, 2, 3), opt_scaling, ("red", "green", "blue")),
                          georeferenced=True))
    if missing:
        raise DatasetError(f"{root}: {len(missing)} tile file(s) listed in metadata.json are missing "
                           f"({', '.join(str(p) for p in missing[:3])}); restore them or rebuild the dataset")
    extra = [p for p in (root / "sar").glob("*.tif") if p.stem not in listed] if (root / "sar").is_dir() else []
    if extra:
        log.warning("%s: %d tile file(s) not listed in metadata.json are ignored (e.g. %s)", root, len(extra),
                    extra[0].name)
    if not pairs:
        raise DatasetError(f"{root}: the pairs dataset lists no tiles")
    return pairs
