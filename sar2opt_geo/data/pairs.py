"""Find (condition, target) training pairs on disk, matched by **name**, never by sort order.

Layouts (``layout=`` names):

* ``"sen1-2"``: the SEN1-2 release,
  ``ROIsXXXX_<season>/s1_<n>/ROIsXXXX_<season>_s1_<n>_p<k>.png`` <->
  ``ROIsXXXX_<season>/s2_<n>/ROIsXXXX_<season>_s2_<n>_p<k>.png``. SAR PNGs are sigma0 in
  dB clipped to (-25, 0) and stored as 0..255; optical PNGs are 8-bit RGB.
* ``"article"``: the article's layout, ``root/s1/<class>/NAME.png`` <->
  ``root/s2/<class>/NAME'.png`` where ``NAME'`` is ``NAME`` with ``_s1_`` replaced by ``_s2_``
  (or the same name).
* ``"la"``: the Los Angeles pairs, ``root/sar/NNN.tif`` (VH, 8-bit, linear / scene p99)
  <-> ``root/opt/NNN.tif`` (RGB, 8-bit, same rule), same grid (EPSG:3395, 10 m).
* ``"sen12ms-cr"``: ``root/s1/<id>.tif`` (float32 dB, bands VV, VH) <-> ``root/s2/<id>.tif``
  (uint16 reflectance x 10000, 13 bands; RGB = 4, 3, 2).
* ``"bigearthnet"``: one folder per patch holding ``*_VV.tif``, ``*_VH.tif`` (dB) and
  ``*_B04.tif``, ``*_B03.tif``, ``*_B02.tif`` (reflectance x 10000).
* ``"pairs"``: what ``sar2opt pairs`` builds (:mod:`sar2opt_geo.data.make_pairs`; read by
  :mod:`sar2opt_geo.data.built_pairs`):
  ``root/sar/<name>.tif`` <-> ``root/opt/<name>.tif``, the tiles listed in ``root/metadata.json``
  (``"format": "sar2opt-pairs"``) with their scene pair (the split group), the storage rule
  (uint8 in the scene-percentile domain, or float32 dB + uint16 reflectance x 10000) and the
  pairs' input domain (the card of a model trained on them).
* ``"images"``: colourisation: any RGB image or optical GeoTIFF; the condition is its gray.

Georeferenced pairs must share CRS, transform and size; a mismatch raises
:class:`~sar2opt_geo.errors.DatasetError` naming both files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ..errors import DatasetError
from .built_pairs import find_built_pairs, is_pairs_dataset
from .pair_types import BandSource, Pair, Scaling

__all__ = [
    "LAYOUTS",
    "BandSource",
    "Layout",
    "Pair",
    "Scaling",
    "check_same_grid",
    "detect_layout",
    "find_article_pairs",
    "find_bigearthnet_pairs",
    "find_images",
    "find_la_pairs",
    "find_pairs",
    "find_sen1_2_pairs",
    "find_sen12ms_cr_pairs",
]

log = logging.getLogger(__name__)

Layout = Literal["sen1-2", "article", "la", "sen12ms-cr", "bigearthnet", "pairs", "images"]
LAYOUTS: tuple[str, ...] = ("sen1-2", "article", "la", "sen12ms-cr", "bigearthnet", "pairs", "images")

_SEN12_S1 = re.compile(r"^(?P<roi>ROIs\d+_[A-Za-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.png$")
_SEN12_S2 = re.compile(r"^(?P<roi>ROIs\d+_[A-Za-z]+)_s2_(?P<scene>\d+)_p(?P<patch>\d+)\.png$")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _sorted_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _unmatched(root: Path, what: str, paths: Sequence[Path]) -> DatasetError:
    shown = ", ".join(str(p) for p in list(paths)[:3]) + (" ..." if len(paths) > 3 else "")
    return DatasetError(f"{root}: {len(paths)} {what} without a partner ({shown}); remove them or add the missing files")


def find_sen1_2_pairs(root: str | Path) -> list[Pair]:
    """Pairs of the SEN1-2 release layout under ``root`` (see module docstring)."""
    root = Path(root)
    s1 = [p for p in root.rglob("*_s1_*_p*.png")]
    s2 = {p.name: p for p in root.rglob("*_s2_*_p*.png")}
    if not s1:
        raise DatasetError(f"{root}: no SEN1-2 files ROIsXXXX_<season>_s1_<n>_p<k>.png found; check the path or --layout")
    pairs, lonely = [], []
    used: set[str] = set()
    for p in sorted(s1):
        m = _SEN12_S1.match(p.name)
        if m is None:
            raise DatasetError(f"{p}: name does not follow ROIsXXXX_<season>_s1_<n>_p<k>.png")
        if p.parent.name != f"s1_{m['scene']}":
            raise DatasetError(f"{p}: expected in folder s1_{m['scene']}, found in {p.parent.name}")
        name2 = f"{m['roi']}_s2_{m['scene']}_p{m['patch']}.png"
        partner = p.parent.parent / f"s2_{m['scene']}" / name2
        if not partner.exists():
            lonely.append(p)
            continue
        used.add(name2)
        pairs.append(
            Pair(
                key=f"{m['roi']}_{m['scene']}_p{m['patch']}",
                group=f"{m['roi']}_{m['scene']}",
                condition=BandSource((p,), (1,), "uint8", ("VV",)),
                target=BandSource((partner,), (1, 2, 3), "uint8", ("red", "green", "blue")),
            )
        )
    lonely += [p for n, p in sorted(s2.items()) if n not in used]
    if lonely:
        raise _unmatched(root, "SEN1-2 patches", lonely)
    return pairs


def _article_partner_name(name: str) -> str:
    return name.replace("_s1_", "_s2_")


def find_article_pairs(root: str | Path) -> list[Pair]:
    """Pairs of the article's layout ``root/s1/<class>/*.png`` <-> ``root/s2/<class>/*.png``."""
    root = Path(root)
    d1, d2 = root / "s1", root / "s2"
    if not (d1.is_dir() and d2.is_dir()):
        raise DatasetError(f"{root}: expected folders s1/ and s2/ (article layout); check the path or --layout")
    s1 = _sorted_files(d1, (".png", ".jpg", ".jpeg"))
    s2 = {p.relative_to(d2).as_posix(): p for p in _sorted_files(d2, (".png", ".jpg", ".jpeg"))}
    pairs, lonely, used = [], [], set()
    for p in s1:
        rel = p.relative_to(d1)
        cands = [(rel.parent / _article_partner_name(rel.name)).as_posix(), rel.as_posix()]
        match = next((c for c in cands if c in s2), None)
        if match is None:
            lonely.append(p)
            continue
        used.add(match)
        m = _SEN12_S1.match(p.name)
        scene = f"{m['roi']}_{m['scene']}" if m else p.stem
        klass = rel.parent.as_posix()
        pairs.append(
            Pair(
                key=rel.with_suffix("").as_posix(),
                group=f"{klass}/{scene}",
                condition=BandSource((p,), (1,), "uint8", ("VV",)),
                target=BandSource((s2[match],), (1, 2, 3), "uint8", ("red", "green", "blue")),
            )
        )
    lonely += [p for r, p in sorted(s2.items()) if r not in used]
    if not pairs and not lonely:
        raise DatasetError(f"{root}: no images under s1/ and s2/")
    if lonely:
        raise _unmatched(root, "article-layout images", lonely)
    return pairs


def check_same_grid(a: Path, b: Path) -> None:
    """Raise :class:`DatasetError` unless GeoTIFFs ``a`` and ``b`` share CRS, transform and size."""
    import rasterio

    with rasterio.open(a) as sa, rasterio.open(b) as sb:
        problems = []
        if sa.crs != sb.crs:
            problems.append(f"CRS {sa.crs} vs {sb.crs}")
        if (sa.width, sa.height) != (sb.width, sb.height):
            problems.append(f"size {sa.width}x{sa.height} vs {sb.width}x{sb.height}")
        if not sa.transform.almost_equals(sb.transform, precision=1e-6 * abs(sa.transform.a or 1.0)):
            problems.append(f"transform {tuple(sa.transform)[:6]} vs {tuple(sb.transform)[:6]}")
    if problems:
        raise DatasetError(f"{a} and {b} are not on the same grid ({'; '.join(problems)}); resample one onto the other first")


def _paired_by_stem(root: Path, d1: Path, d2: Path, what: str) -> list[tuple[str, Path, Path]]:
    if not (d1.is_dir() and d2.is_dir()):
        raise DatasetError(f"{root}: expected folders {d1.name}/ and {d2.name}/ ({what}); check the path or --layout")
    a = {p.stem: p for p in _sorted_files(d1, (".tif", ".tiff"))}
    b = {p.stem: p for p in _sorted_files(d2, (".tif", ".tiff"))}
    lonely = [a[k] for k in sorted(a.keys() - b.keys())] + [b[k] for k in sorted(b.keys() - a.keys())]
    if lonely:
        raise _unmatched(root, f"{what} files", lonely)
    if not a:
        raise DatasetError(f"{root}: no GeoTIFFs in {d1.name}/ and {d2.name}/")
    out = []
    for k in sorted(a):
        check_same_grid(a[k], b[k])
        out.append((k, a[k], b[k]))
    return out


def find_la_pairs(root: str | Path) -> list[Pair]:
    """The Los Angeles pairs: ``sar/NNN.tif`` (VH uint8) <-> ``opt/NNN.tif`` (RGB uint8), same grid."""
    root = Path(root)
    scenes = _la_scenes(root / "metadata.json")
    return [
        Pair(
            key=k,
            group=scenes.get(k, "scene"),  # adjacent tiles of one scene: split_by_area() holds out a block
            condition=BandSource((s,), (1,), "uint8", ("VH",)),
            target=BandSource((o,), (1, 2, 3), "uint8", ("red", "green", "blue")),
            georeferenced=True,
        )
        for k, s, o in _paired_by_stem(root, root / "sar", root / "opt", "Los Angeles pairs sar/ opt/")
    ]


def _la_scenes(metadata: Path) -> dict[str, str]:
    """Tile stem -> "<S1 product>|<S2 product>" from the Los Angeles ``metadata.json`` ({} if absent)."""
    import json

    if not metadata.exists():
        return {}
    try:
        entries = json.loads(metadata.read_text())
        return {Path(e["fragment_filename"]).stem: f"{e['sar_tile_name']}|{e['opt_tile_name']}" for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{metadata}: unreadable tile metadata ({exc}); fix or remove the file") from None


_SEN12MS_S1_BANDS = {"VV": 1, "VH": 2}


def find_sen12ms_cr_pairs(root: str | Path, sar_bands: Sequence[str] = ("VH",)) -> list[Pair]:
    """SEN12MS-CR pairs ``s1/<id>.tif`` (dB; 1 = VV, 2 = VH) <-> ``s2/<id>.tif`` (RGB = bands 4, 3, 2)."""
    root = Path(root)
    idx = tuple(_band_index(_SEN12MS_S1_BANDS, b, root) for b in sar_bands)
    return [
        Pair(
            key=k,
            group=k.rsplit("_p", 1)[0],  # ROIsXXXX_<season>_<scene>: patches of one scene stay together
            condition=BandSource((s,), idx, "db_clip", tuple(sar_bands)),
            target=BandSource((o,), (4, 3, 2), "reflectance", ("red", "green", "blue")),
            georeferenced=True,
        )
        for k, s, o in _paired_by_stem(root, root / "s1", root / "s2", "SEN12MS-CR s1/ s2/")
    ]


def _band_index(table: dict[str, int], band: str, root: Path) -> int:
    try:
        return table[band.upper()]
    except KeyError:
        raise DatasetError(f"{root}: band {band!r} not available; choose from {', '.join(table)}") from None


def find_bigearthnet_pairs(root: str | Path, sar_bands: Sequence[str] = ("VH",)) -> list[Pair]:
    """BigEarthNet-MM patches: one folder per patch with ``*_VV.tif``/``*_VH.tif`` and ``*_B04/B03/B02.tif``."""
    root = Path(root)
    pairs = []
    folders = sorted({p.parent for p in root.rglob("*_B04.tif")} | {p.parent for p in root.rglob("*_VH.tif")})
    if not folders:
        raise DatasetError(f"{root}: no BigEarthNet patch folders (*_VH.tif, *_B04.tif) found")
    for d in folders:
        def one(suffix: str, d: Path = d) -> Path:
            hits = sorted(d.glob(f"*_{suffix}.tif"))
            if len(hits) != 1:
                raise DatasetError(f"{d}: expected exactly one *_{suffix}.tif, found {len(hits)}; the patch is incomplete")
            return hits[0]

        s1 = tuple(one(b.upper()) for b in sar_bands)
        s2 = tuple(one(b) for b in ("B04", "B03", "B02"))
        for f in s1[1:] + s2:
            check_same_grid(s1[0], f)
        pairs.append(
            Pair(
                key=d.name,
                group=d.name,
                condition=BandSource(s1, None, "db_clip", tuple(b.upper() for b in sar_bands)),
                target=BandSource(s2, None, "reflectance", ("red", "green", "blue")),
                georeferenced=True,
            )
        )
    return pairs


def find_images(root: str | Path, rgb_bands: tuple[int, int, int] | None = None) -> list[Pair]:
    """Colourisation pairs: every RGB image (PNG/JPEG, 8-bit) or optical GeoTIFF under ``root``.

    GeoTIFFs are brought to [0, 1] band by band with the scene's 99th percentile (the
    "percentile" rule), PNG/JPEG by ``/ 255``. ``rgb_bands`` are the 1-based indexes of
    red, green, blue in GeoTIFFs (default: from band descriptions/colour interpretation,
    else 1, 2, 3).
    """
    root = Path(root)
    files = [root] if root.is_file() else _sorted_files(root, _IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{root}: no images (.png, .jpg, .tif) found")
    pairs = []
    for f in files:
        is_tif = f.suffix.lower() in (".tif", ".tiff")
        bands = rgb_bands or (_rgb_order(f) if is_tif else (1, 2, 3))
        pairs.append(
            Pair(
                key=f.relative_to(root).with_suffix("").as_posix() if root.is_dir() else f.stem,
                group=f.relative_to(root).as_posix() if root.is_dir() else f.name,
                condition=None,
                target=BandSource((f,), bands, "percentile" if is_tif else "uint8", ("red", "green", "blue")),
                georeferenced=is_tif,
            )
        )
    return pairs


def _rgb_order(path: Path) -> tuple[int, int, int]:
    """Red, green, blue band indexes of an optical GeoTIFF, from colour interpretation or descriptions."""
    import rasterio
    from rasterio.enums import ColorInterp

    with rasterio.open(path) as src:
        if src.count < 3:
            raise DatasetError(f"{path}: {src.count} band(s); colourisation needs an RGB image")
        ci = list(src.colorinterp)
        if all(c in ci for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
            return tuple(ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))  # type: ignore[return-value]
        desc = [(d or "").lower() for d in src.descriptions]
        names = (("red", "b4", "b04"), ("green", "b3", "b03"), ("blue", "b2", "b02"))
        found = [next((i + 1 for i, d in enumerate(desc) if d in n), None) for n in names]
        if all(found):
            return tuple(found)  # type: ignore[return-value]
    log.warning("%s: band order not recorded (colour interpretation/descriptions); assuming bands 1, 2, 3 are "
                "red, green, blue; pass rgb_bands (--rgb-bands) if not", path)
    return (1, 2, 3)


def detect_layout(root: str | Path) -> Layout:
    """Guess the layout of ``root`` from its folder names."""
    root = Path(root)
    if root.is_file():
        return "images"
    if is_pairs_dataset(root):
        return "pairs"
    if (root / "sar").is_dir() and (root / "opt").is_dir():
        return "la"
    if (root / "s1").is_dir() and (root / "s2").is_dir():
        if any((root / "s1").glob("*.tif")):
            return "sen12ms-cr"
        return "article"
    if next(root.glob("ROIs*/s1_*"), None) is not None or next(root.glob("s1_*"), None) is not None:
        return "sen1-2"
    if next(root.rglob("*_VH.tif"), None) is not None:
        return "bigearthnet"
    raise DatasetError(
        f"{root}: cannot tell the dataset layout; pass --layout ({', '.join(LAYOUTS)})"
    )


def find_pairs(
    root: str | Path,
    layout: str = "auto",
    mode: Literal["sar", "colorize"] = "sar",
    sar_bands: Sequence[str] | None = None,
    rgb_bands: tuple[int, int, int] | None = None,
) -> list[Pair]:
    """Find the pairs of a dataset folder.

    ``sar_bands``: the SAR bands of GeoTIFF layouts (None: VH; for ``pairs``: every stored band).
    ``mode="colorize"`` turns any layout into (gray, RGB) pairs from its optical side
    (the article's second generator). ``rgb_bands``: 1-based red, green, blue band indexes
    of optical GeoTIFFs in the ``images`` layout (default: from their metadata).
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset path not found")
    if layout == "auto":
        try:
            layout = detect_layout(root)
        except DatasetError:
            if mode != "colorize":
                raise
            layout = "images"  # colourisation: any folder of RGB images / optical GeoTIFFs
    if layout == "images":
        return find_images(root, rgb_bands)
    finders = {
        "sen1-2": lambda: find_sen1_2_pairs(root),
        "article": lambda: find_article_pairs(root),
        "la": lambda: find_la_pairs(root),
        "sen12ms-cr": lambda: find_sen12ms_cr_pairs(root, sar_bands or ("VH",)),
        "bigearthnet": lambda: find_bigearthnet_pairs(root, sar_bands or ("VH",)),
        "pairs": lambda: find_built_pairs(root, sar_bands),
    }
    if layout not in finders:
        raise DatasetError(f"unknown dataset layout {layout!r}; choose one of auto, {', '.join(LAYOUTS)}")
    pairs = finders[layout]()
    if mode == "colorize":
        pairs = [Pair(p.key, p.group, None, p.target, p.georeferenced) for p in pairs]
    return pairs


def pairs_in_card_domain(pairs: Sequence[Pair], normalisation: str, output_scaling: str) -> list[Pair]:
    """``pairs`` read the way a model card says, where the files allow it.

    A model trained on scene-percentile data (``normalisation`` ``"percentile"``; its card's
    output "band value / scene 99th percentile") is scored on dB pairs (SEN12MS-CR,
    BigEarthNet) the way the inference engine feeds it: dB -> linear power -> / the scene's
    99th percentile (``"db_percentile"``), and against optical targets scaled band by band by
    their own 99th percentile. Other combinations are returned unchanged.
    """
    out = []
    pct_out = "percentile" in output_scaling
    for p in pairs:
        cond, target = p.condition, p.target
        if normalisation == "percentile" and cond is not None and cond.scaling == "db_clip":
            cond = replace(cond, scaling="db_percentile")
        if pct_out and target.scaling == "reflectance":
            target = replace(target, scaling="percentile")
        out.append(replace(p, condition=cond, target=target))
    return out
