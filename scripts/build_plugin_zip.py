#!/usr/bin/env python3
"""Build the QGIS plugin: ``dist/sar2opt_qgis-<version>.zip`` (default) or the plugin folder.

The zip holds one top-level folder ``sar2opt_qgis/`` with the code from
``plugin/sar2opt_qgis/``, ``metadata.txt`` (copied from the repository root) and the icon,
which is what the QGIS plugin manager ("Install from ZIP") and plugins.qgis.org expect.

    python scripts/build_plugin_zip.py                      # -> dist/sar2opt_qgis-0.1.0.zip
    python scripts/build_plugin_zip.py --plugin-dir /tmp/p  # -> /tmp/p/sar2opt_qgis/ (QGIS_PLUGINPATH=/tmp/p)

Standard library only, so any Python (QGIS's included) can run it.
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
import zipfile
from pathlib import Path

__all__ = ["PLUGIN_NAME", "build_folder", "build_zip", "main", "plugin_files", "plugin_version"]

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "sar2opt_qgis"
SOURCE = ROOT / "plugin" / PLUGIN_NAME
METADATA = ROOT / "metadata.txt"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def plugin_version(metadata: Path = METADATA) -> str:
    """``version`` from the ``[general]`` section of metadata.txt."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(metadata, encoding="utf-8")
    return cp["general"]["version"].strip()


def plugin_files(source: Path = SOURCE) -> list[tuple[Path, str]]:
    """``(file, path inside the plugin folder)`` pairs: the code and icon, plus metadata.txt."""
    files: list[tuple[Path, str]] = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_dir() or any(p in _SKIP_DIRS for p in rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        if rel.as_posix() == "metadata.txt":
            continue  # the top-level one wins
        files.append((path, rel.as_posix()))
    files.append((METADATA, "metadata.txt"))
    return files


def build_folder(dest_dir: Path) -> Path:
    """Write ``dest_dir/sar2opt_qgis/`` (replacing an earlier build) and return it."""
    target = Path(dest_dir) / PLUGIN_NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    for src, rel in plugin_files():
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    return target


def build_zip(dist_dir: Path = ROOT / "dist") -> Path:
    """Write ``dist_dir/sar2opt_qgis-<version>.zip`` and return its path."""
    dist_dir = Path(dist_dir)
    dist_dir.mkdir(parents=True, exist_ok=True)
    path = dist_dir / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, rel in plugin_files():
            zf.write(src, f"{PLUGIN_NAME}/{rel}")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist/)")
    parser.add_argument(
        "--plugin-dir", type=Path, help="instead of a zip, write the plugin folder sar2opt_qgis/ into this folder"
    )
    args = parser.parse_args(argv)
    if args.plugin_dir:
        print(build_folder(args.plugin_dir))
    else:
        print(build_zip(args.dist_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
