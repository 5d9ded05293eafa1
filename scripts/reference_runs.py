"""Run a fixed set of reference jobs and print a digest of every output (for refactors).

    python scripts/reference_runs.py OUT_DIR [--compare DIGESTS.json]

Runs, on the bundled real sample and on generated synthetic scenes (all small, about a minute
on 2 cores): translate (plain, with a quicklook, and with --samples 2), batch (whole scene,
split in 2 row bands, with an AOI), composite (plain and with the gray generator, on a
synthetic PALSAR-2 L2.1 product), pairs (sample SAR + optical), samples (synthetic scenes) and
the demo. Writes OUT_DIR/digests.json: one SHA-256 per output file (GeoTIFF, PNG, JSON with
times removed; the batch summary as its rows without times). With --compare, exits 1 and lists
the files whose digest differs from the saved one. Outputs record their own paths (tags, the
pairs command line): compare runs made into the same OUT_DIR, with the saved digests kept
outside it (OUT_DIR is emptied first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the bundled real sample pair, wherever the package keeps it; copied into OUT_DIR/inputs so that
# the paths recorded in the outputs do not depend on the package layout
SAR_NAME = "S1A_IW_GRDH_20201107_VH_la156_512px.tif"
OPT_NAME = "S2A_MSIL1C_20201104_T11SMT_RGB_la156_512px.tif"
CLI = [sys.executable, "-m", "sar2opt_geo.cli.main"]
QUIET = ["--progress", "none", "-q"]
# fields that hold wall-clock times, host names or absolute paths, not results
VOLATILE = re.compile(r"time|date_written|created|started|finished|elapsed|seconds|host|pid|path|version", re.IGNORECASE)


def _run(*args: object) -> None:
    subprocess.run([*CLI, *map(str, args)], check=True, cwd=ROOT)


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _aoi(path: Path, sar: Path) -> Path:
    """A GeoJSON polygon (EPSG:4326) inside the bundled sample scene."""
    _python(
        "import json, rasterio; from rasterio.warp import transform_geom; "
        f"d = rasterio.open({str(sar)!r}); b = d.bounds; "
        "w = (b.right - b.left) / 4; "
        "g = {'type': 'Polygon', 'coordinates': [[(b.left + w, b.bottom + w), (b.right - w, b.bottom + w), "
        "(b.left + 2 * w, b.top - w), (b.left + w, b.bottom + w)]]}; "
        "g = transform_geom(d.crs, 'EPSG:4326', g); "
        "fc = {'type': 'FeatureCollection', 'features': [{'type': 'Feature', 'properties': {'name': 'tri'}, 'geometry': g}]}; "
        f"open({str(path)!r}, 'w').write(json.dumps(fc))"
    )
    return path


def run_all(out: Path) -> None:
    """Write every reference output under ``out`` (emptied first)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "inputs").mkdir()
    sar, opt = out / "inputs" / SAR_NAME, out / "inputs" / OPT_NAME
    for name, dst in ((SAR_NAME, sar), (OPT_NAME, opt)):
        shutil.copyfile(next((ROOT / "sar2opt_geo").rglob(name)), dst)
        os.utime(dst, (1_600_000_000, 1_600_000_000))  # a fixed mtime: batch input hashes include it
    _run("translate", sar, out / "translate" / "t.tif", "--quicklook", *QUIET)
    _run("translate", sar, out / "translate" / "s.tif", "--samples", "2", "--seed", "3", "--tile", "256", *QUIET)
    _run("batch", sar, "--output-dir", out / "batch_whole", "--workers", "0", *QUIET)
    _run("batch", sar, "--output-dir", out / "batch_split", "--workers", "0", "--split", "2", *QUIET)
    _run("batch", sar, "--output-dir", out / "batch_aoi", "--aoi", _aoi(out / "aoi.geojson", sar), "--workers", "0", *QUIET)
    _python(
        "from sar2opt_geo import samples; "
        f"samples.write_synthetic_palsar2_l21({str(out / 'palsar2')!r}, size=256, seed=1); "
        f"samples.write_sample_scene({str(out / 'samples' / 'scene.tif')!r}, size=256, seed=2)"
    )
    _run("composite", out / "palsar2", out / "composite" / "plain.tif", *QUIET)
    _run("composite", out / "palsar2", out / "composite" / "gray.tif", "--model", "gray", "--tile", "256", *QUIET)
    _run("pairs", sar, opt, out / "pairs", "--tile", "128", *QUIET)
    _run("demo", "--output", out / "demo" / "demo_rgb.tif", *QUIET)


def _json_digest(path: Path) -> str:
    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in sorted(value.items()) if not VOLATILE.search(k)}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    data = clean(json.loads(path.read_text()))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _gpkg_digest(path: Path) -> str:
    import geopandas as gpd

    frame = gpd.read_file(path, layer="summary")
    keep = sorted(c for c in frame.columns if not VOLATILE.search(c) or c == "geometry")
    rows = frame[keep].drop(columns="geometry").astype(str).to_csv(index=False)
    wkb = b"".join(g.wkb for g in frame.geometry)
    return hashlib.sha256(rows.encode() + wkb).hexdigest()


def digests(out: Path) -> dict[str, str]:
    """SHA-256 per output file under ``out`` (keys relative to it)."""
    result = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        key = str(path.relative_to(out))
        if path.suffix == ".json":
            result[key] = _json_digest(path)
        elif path.suffix == ".gpkg":
            result[key] = _gpkg_digest(path)
        elif path.suffix in (".log", ".lock") or path.name.startswith("."):
            continue
        else:
            result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, help="digests.json of an earlier run")
    args = parser.parse_args()
    run_all(args.out)
    found = digests(args.out)
    (args.out / "digests.json").write_text(json.dumps(found, indent=1, sort_keys=True))
    print(f"{len(found)} outputs -> {args.out / 'digests.json'}")
    if args.compare is None:
        return 0
    saved = json.loads(args.compare.read_text())
    differ = sorted(k for k in saved.keys() | found.keys() if saved.get(k) != found.get(k))
    for key in differ:
        print(f"differs: {key} ({saved.get(key, 'absent')[:12]} -> {found.get(key, 'absent')[:12]})")
    print("byte-identical" if not differ else f"{len(differ)} of {len(found)} outputs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
