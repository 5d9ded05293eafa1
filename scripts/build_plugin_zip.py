#!/usr/bin/env python3
"""Build the QGIS plugin: ``dist/sar2opt_qgis-<version>.zip`` (default) or the plugin folder.

The zip holds one top-level folder ``sar2opt_qgis/`` with the code from
``plugin/sar2opt_qgis/``, ``metadata.txt`` (copied from the repository root), the icon, and
``wheels/sar2opt_geo-<version>-py3-none-any.whl`` (and ``wheels/constraints.txt``, the torch pin): the backend (this repository's package with
its bundled weights), which the plugin's *Setup* algorithm installs into a virtual environment
in the QGIS profile. That is what the QGIS plugin manager ("Install from ZIP") and
plugins.qgis.org expect.

    python3 scripts/build_plugin_zip.py                      # -> dist/sar2opt_qgis-0.1.0.zip
    python3 scripts/build_plugin_zip.py --plugin-dir /tmp/p  # -> /tmp/p/sar2opt_qgis/ (QGIS_PLUGINPATH=/tmp/p)
    python3 scripts/build_plugin_zip.py --wheel-only         # -> dist/sar2opt_geo-0.1.0-py3-none-any.whl

Standard library only, so any Python >= 3.8 (QGIS's included) can run it, without the
project's virtual environment: the wheel is written with :mod:`zipfile` from ``setup.cfg``
(a wheel is a zip with a fixed layout, PEP 427 / 376 / 566), byte for byte the same for the
same sources (fixed timestamps and permissions, sorted entries).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import fnmatch
import hashlib
import io
import re
import shutil
import sys
import zipfile
from pathlib import Path

__all__ = [
    "PLUGIN_NAME",
    "build_folder",
    "build_wheel",
    "build_zip",
    "main",
    "package_metadata",
    "plugin_files",
    "plugin_version",
    "wheel_files",
]

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "sar2opt_qgis"
SOURCE = ROOT / "plugin" / PLUGIN_NAME
METADATA = ROOT / "metadata.txt"
SETUP_CFG = ROOT / "setup.cfg"
CONSTRAINTS = ROOT / "constraints.txt"
WHEELS_DIR = "wheels"  # inside the plugin folder
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same bytes


def plugin_version(metadata: Path = METADATA) -> str:
    """``version`` from the ``[general]`` section of metadata.txt."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(metadata, encoding="utf-8")
    return cp["general"]["version"].strip()


# -- the backend wheel ---------------------------------------------------------------------------


def _lines(value: str) -> list[str]:
    """A setup.cfg list as setuptools reads it: one item per line when the value spans lines
    (so ``numpy>=1.24,<3`` stays one requirement), else comma separated; comments dropped."""
    lines = [line.split(" #", 1)[0].strip() for line in value.strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if len(lines) == 1:
        return [part.strip() for part in lines[0].split(",") if part.strip()]
    return lines


def package_metadata(setup_cfg: Path = SETUP_CFG) -> dict:
    """What the wheel needs from ``setup.cfg``: name, version, summary, requirements, extras,
    package_data patterns and console scripts (``version = attr: pkg.mod.__version__`` is read
    from ``pkg/mod.py`` or ``pkg/mod/__init__.py`` without importing it)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(setup_cfg, encoding="utf-8")
    meta = cp["metadata"]
    opts = cp["options"]
    root = setup_cfg.parent
    version = meta["version"].strip()
    if version.startswith("attr:"):
        module, _, attr = version[len("attr:"):].strip().rpartition(".")
        base = root.joinpath(*module.split("."))
        init = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        found = re.search(rf"^{re.escape(attr)}\s*=\s*['\"]([^'\"]+)['\"]", init.read_text(encoding="utf-8"), re.MULTILINE)
        if not found:
            raise SystemExit(f"{init}: no {attr} = '...' line (setup.cfg reads the version from it)")
        version = found.group(1)
    find = cp["options.packages.find"] if cp.has_section("options.packages.find") else {}
    package_data = {}
    if cp.has_section("options.package_data"):
        package_data = {pkg: _lines(patterns) for pkg, patterns in cp["options.package_data"].items()}
    extras = {}
    if cp.has_section("options.extras_require"):
        extras = {name: _lines(reqs) for name, reqs in cp["options.extras_require"].items()}
    scripts = {}
    if cp.has_section("options.entry_points"):
        for group, text in cp["options.entry_points"].items():
            for line in _lines(text):
                name, _, target = line.partition("=")
                scripts.setdefault(group, {})[name.strip()] = target.strip()
    return {
        "name": meta["name"].strip(),
        "version": version,
        "summary": meta.get("description", "").strip(),
        "license": meta.get("license", "").strip(),
        "author": meta.get("author", "").strip(),
        "author_email": meta.get("author_email", "").strip(),
        "url": meta.get("url", "").strip(),
        "python_requires": opts.get("python_requires", "").strip(),
        "install_requires": _lines(opts.get("install_requires", "")),
        "extras": extras,
        "include": _lines(find.get("include", "")) if find else [],
        "package_data": package_data,
        "entry_points": scripts,
    }


def _packages(root: Path, include: list[str]) -> list[str]:
    """Dotted names of the folders with ``__init__.py`` that match ``include`` (setuptools' find:)."""
    found = []
    for init in sorted(root.rglob("__init__.py")):
        rel = init.parent.relative_to(root)
        if any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts) or not rel.parts:
            continue
        dotted = ".".join(rel.parts)
        if any(fnmatch.fnmatchcase(dotted, pattern) for pattern in include):
            found.append(dotted)
    return found


def wheel_files(root: Path = ROOT, meta: dict | None = None) -> list[tuple[Path, str]]:
    """``(file, path inside the wheel)`` for the package code and its package data, sorted."""
    meta = meta or package_metadata(root / "setup.cfg")
    files: dict[str, Path] = {}
    packages = _packages(root, meta["include"])
    for dotted in packages:
        folder = root.joinpath(*dotted.split("."))
        for path in folder.glob("*.py"):
            files[path.relative_to(root).as_posix()] = path
        for pattern in meta["package_data"].get(dotted, []) + meta["package_data"].get("*", []):
            for path in folder.glob(pattern):
                if path.is_file() and path.suffix not in _SKIP_SUFFIXES:
                    files[path.relative_to(root).as_posix()] = path
    return [(files[name], name) for name in sorted(files)]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    zf.writestr(info, data)


def _metadata_text(meta: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    for key, field in (("summary", "Summary"), ("url", "Home-page"), ("author", "Author"),
                       ("author_email", "Author-email"), ("license", "License"), ("python_requires", "Requires-Python")):
        if meta.get(key):
            lines.append(f"{field}: {meta[key]}")
    lines += [f"Requires-Dist: {req}" for req in meta["install_requires"]]
    for extra, reqs in meta["extras"].items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            req, _, marker = req.partition(";")
            condition = f"({marker.strip()}) and extra == \"{extra}\"" if marker.strip() else f"extra == \"{extra}\""
            lines.append(f"Requires-Dist: {req.strip()}; {condition}")
    return "\n".join(lines) + "\n"


def wheel_name(meta: dict | None = None) -> str:
    meta = meta or package_metadata()
    return f"{re.sub(r'[-_.]+', '_', meta['name'])}-{meta['version']}-py3-none-any.whl"


def build_wheel(dest_dir: Path = ROOT / "dist", root: Path = ROOT) -> Path:
    """Write ``dest_dir/<name>-<version>-py3-none-any.whl`` from ``root/setup.cfg`` and return it."""
    meta = package_metadata(root / "setup.cfg")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / wheel_name(meta)
    dist_info = f"{re.sub(r'[-_.]+', '_', meta['name'])}-{meta['version']}.dist-info"
    entries: list[tuple[str, bytes]] = [(name, src.read_bytes()) for src, name in wheel_files(root, meta)]
    top_level = sorted({name.split("/", 1)[0] for name, _ in entries})
    ep = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(items.items())) + "\n"
                 for group, items in sorted(meta["entry_points"].items()))
    entries += [
        (f"{dist_info}/METADATA", _metadata_text(meta).encode("utf-8")),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: sar2opt-geo build_plugin_zip.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt", ep.encode("utf-8")),
        (f"{dist_info}/top_level.txt", ("\n".join(top_level) + "\n").encode("utf-8")),
    ]
    licence = root / "LICENSE"
    if not licence.exists():
        licence = SOURCE / "LICENSE"
    if licence.exists():
        entries.append((f"{dist_info}/LICENSE", licence.read_bytes()))
    record = io.StringIO()
    for name, data in entries:
        record.write(f"{name},{_record_hash(data)},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, data in entries:
            _zip_write(zf, name, data)
        _zip_write(zf, f"{dist_info}/RECORD", record.getvalue().encode("utf-8"))
    tmp.replace(path)
    return path


# -- the plugin ----------------------------------------------------------------------------------


def plugin_files(source: Path = SOURCE) -> list[tuple[Path, str]]:
    """``(file, path inside the plugin folder)`` pairs: the code and icon, plus metadata.txt
    (the wheel is added by :func:`build_folder` / :func:`build_zip`)."""
    files: list[tuple[Path, str]] = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_dir() or any(p in _SKIP_DIRS for p in rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        if rel.as_posix() == "metadata.txt" or rel.parts[0] == WHEELS_DIR:
            continue  # the top-level metadata.txt wins; wheels are built fresh
        files.append((path, rel.as_posix()))
    files.append((METADATA, "metadata.txt"))
    return files


def _with_wheel(build_dir: Path) -> list[tuple[Path, str]]:
    """The plugin files plus ``wheels/``: the backend wheel and ``constraints.txt`` (the torch
    pin the Setup algorithm installs)."""
    wheel = build_wheel(build_dir)
    extra = [(wheel, f"{WHEELS_DIR}/{wheel.name}")]
    if CONSTRAINTS.is_file():
        extra.append((CONSTRAINTS, f"{WHEELS_DIR}/constraints.txt"))
    return plugin_files() + extra


def build_folder(dest_dir: Path) -> Path:
    """Write ``dest_dir/sar2opt_qgis/`` (replacing an earlier build), wheel included, and return it."""
    target = Path(dest_dir) / PLUGIN_NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    staging = Path(dest_dir) / f".{PLUGIN_NAME}.wheel-tmp"
    try:
        for src, rel in _with_wheel(staging):
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_zip(dist_dir: Path = ROOT / "dist") -> Path:
    """Write ``dist_dir/sar2opt_qgis-<version>.zip`` (wheel included) and return its path."""
    dist_dir = Path(dist_dir)
    dist_dir.mkdir(parents=True, exist_ok=True)
    path = dist_dir / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    tmp = path.with_name(f".{path.name}.tmp")
    staging = dist_dir / f".{PLUGIN_NAME}.wheel-tmp"
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for src, rel in _with_wheel(staging):
                # the wheel is already compressed; store it as it is
                mode = zipfile.ZIP_STORED if rel.endswith(".whl") else zipfile.ZIP_DEFLATED
                info = zipfile.ZipInfo(f"{PLUGIN_NAME}/{rel}", date_time=_ZIP_DATE)
                info.compress_type = mode
                info.external_attr = (0o100000 | 0o644) << 16
                zf.writestr(info, src.read_bytes())
        tmp.replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if tmp.exists():
            tmp.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist/)")
    parser.add_argument(
        "--plugin-dir", type=Path, help="instead of a zip, write the plugin folder sar2opt_qgis/ into this folder"
    )
    parser.add_argument("--wheel-only", action="store_true", help="only write the backend wheel into --dist-dir")
    args = parser.parse_args(argv)
    if args.wheel_only:
        print(build_wheel(args.dist_dir))
    elif args.plugin_dir:
        print(build_folder(args.plugin_dir))
    else:
        print(build_zip(args.dist_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
