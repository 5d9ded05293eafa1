"""metadata.txt and the plugin zip against what plugins.qgis.org's upload validator enforces
(plugins/validator.py: required fields, booleans, URLs, package name, no .pyc/__pycache__,
a LICENSE file) and what QGIS needs to load a headless Processing provider."""

from __future__ import annotations

import ast
import configparser
import re
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_plugin_zip

#: plugins.qgis.org PLUGIN_REQUIRED_METADATA (tracker included: uploads without it are rejected).
REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker", "repository")
#: What this project's issue asks for on top.
PROJECT_REQUIRED = ("hasProcessingProvider", "tags", "homepage", "category", "icon", "experimental")
BOOLEANS = ("experimental", "deprecated", "server", "hasProcessingProvider")
FORBIDDEN_URLS = {"tracker": "http://bugs", "repository": "http://repo", "homepage": "http://homepage"}
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def _read(text: str) -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # the validator keeps key case: qgisMinimumVersion
    cp.read_string(text)
    assert cp.has_section("general"), "metadata.txt needs a [general] section"
    return dict(cp.items("general"))


@pytest.fixture(scope="module")
def metadata() -> dict[str, str]:
    return _read((ROOT / "metadata.txt").read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", REQUIRED + PROJECT_REQUIRED)
def test_required_field_present_and_non_empty(metadata, key):
    assert metadata.get(key, "").strip(), f"metadata.txt: {key} is required"


def test_version_is_semantic_and_matches_the_package(metadata):
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"]), metadata["version"]
    init = (ROOT / "sar2opt_geo" / "version.py").read_text(encoding="utf-8")
    package_version = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE).group(1)
    assert metadata["version"] == package_version


def test_qgis_minimum_version_is_322(metadata):
    assert metadata["qgisMinimumVersion"] == "3.22"
    assert "qgisMaximumVersion" not in metadata or metadata["qgisMaximumVersion"].startswith("3.")


def test_about_and_description_lengths(metadata):
    # description: one line; about: a real paragraph (the plugin manager shows it), not a copy.
    assert "\n" not in metadata["description"].strip() and 20 <= len(metadata["description"]) <= 250
    assert 200 <= len(metadata["about"]) <= 2000
    assert metadata["about"].strip() != metadata["description"].strip()


def test_email_and_author(metadata):
    assert EMAIL.match(metadata["email"].strip()), metadata["email"]
    assert "/" not in metadata["author"]


@pytest.mark.parametrize("key", ["tracker", "repository", "homepage"])
def test_urls_are_absolute_and_not_placeholders(metadata, key):
    url = metadata[key].strip()
    parsed = urlparse(url)
    assert parsed.scheme in ("http", "https") and parsed.netloc, url
    assert url != FORBIDDEN_URLS[key]


def test_flags_and_category(metadata):
    for key in BOOLEANS:
        if key in metadata:
            assert metadata[key].strip().lower() in ("true", "false", "yes", "no", "1", "0"), key
    assert metadata["hasProcessingProvider"].strip().lower() in ("yes", "true")
    assert metadata["category"] == "Analysis/Raster"
    assert [t for t in metadata["tags"].split(",") if t.strip()] and "sar" in metadata["tags"].split(",")


def test_zip_layout_passes_the_repository_validator(tmp_path, metadata):
    path = build_plugin_zip.build_zip(tmp_path)
    assert path.name == f"sar2opt_qgis-{metadata['version']}.zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        assert {n.split("/")[0] for n in names} == {"sar2opt_qgis"}
        assert "sar2opt_qgis".isidentifier()
        assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n.split("/") or ".." in n or "\\" in n]
        for required in ("__init__.py", "metadata.txt", "LICENSE", metadata["icon"], "provider.py", "backend.py",
                         "installer.py", "subprocess_stream.py", "output_guard.py", "wheels/constraints.txt", f"wheels/{build_plugin_zip.wheel_name()}"):
            assert f"sar2opt_qgis/{required}" in names, required
        # the bundled backend wheel is the one build_wheel writes, stored as it is (already compressed)
        info = zf.getinfo(f"sar2opt_qgis/wheels/{build_plugin_zip.wheel_name()}")
        assert info.compress_type == zipfile.ZIP_STORED
        assert zf.read(info) == build_plugin_zip.build_wheel(tmp_path / "wheel").read_bytes()
        # metadata.txt inside is the top-level one, unchanged
        assert _read(zf.read("sar2opt_qgis/metadata.txt").decode("utf-8")) == metadata
        assert zf.read(f"sar2opt_qgis/{metadata['icon']}").lstrip().startswith(b"<svg")
        # every module parses, and classFactory is where QGIS looks for it
        for name in names:
            if name.endswith(".py"):
                ast.parse(zf.read(name).decode("utf-8"), name)
        init = ast.parse(zf.read("sar2opt_qgis/__init__.py").decode("utf-8"))
        assert "classFactory" in {n.name for n in init.body if isinstance(n, ast.FunctionDef)}


def test_plugin_folder_build_replaces_an_earlier_one(tmp_path):
    first = build_plugin_zip.build_folder(tmp_path)
    (first / "stale.py").write_text("# left from an old build\n")
    second = build_plugin_zip.build_folder(tmp_path)
    assert second == tmp_path / "sar2opt_qgis"
    assert not (second / "stale.py").exists()
    assert (second / "metadata.txt").read_text(encoding="utf-8") == (ROOT / "metadata.txt").read_text(encoding="utf-8")


# -- the backend wheel (scripts/build_plugin_zip.py, standard library only) ---------------------------


def _package_files() -> set[str]:
    """What setuptools packs: the .py files of sar2opt_geo's packages and the package_data patterns."""
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sar2opt_geo").rglob("*.py")
             if "__pycache__" not in p.parts and (p.parent / "__init__.py").exists()}
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["sar2opt_geo"].replace("\n", ",").split(",") if p.strip()]
    for pattern in patterns:
        found |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "sar2opt_geo").glob(pattern)}
    return found


def test_backend_wheel_layout_metadata_and_record(tmp_path):
    import base64
    import hashlib

    path = build_plugin_zip.build_wheel(tmp_path)
    assert path.name == "sar2opt_geo-0.1.0-py3-none-any.whl"
    assert build_plugin_zip.build_wheel(tmp_path / "again").read_bytes() == path.read_bytes()  # deterministic
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        dist = "sar2opt_geo-0.1.0.dist-info"
        assert {n for n in names if not n.startswith(dist)} == _package_files()
        assert "sar2opt_geo/models/weights/s1vh_to_rgb.safetensors" in names
        meta = zf.read(f"{dist}/METADATA").decode()
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(ROOT / "setup.cfg")
        requires = [r.strip() for r in cfg["options"]["install_requires"].strip().splitlines()]
        assert [ln.split(": ", 1)[1] for ln in meta.splitlines() if ln.startswith("Requires-Dist: ") and "extra ==" not in ln] == requires
        assert "Name: sar2opt-geo" in meta and "Requires-Python: >=3.11" in meta
        assert zf.read(f"{dist}/entry_points.txt").decode() == "[console_scripts]\nsar2opt = sar2opt_geo.cli.main:main\n\n"
        assert "Root-Is-Purelib: true" in zf.read(f"{dist}/WHEEL").decode()
        record = [line.split(",") for line in zf.read(f"{dist}/RECORD").decode().splitlines()]
        assert sorted(r[0] for r in record) == sorted(names)
        for name, digest, size in record:
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(name)
            assert int(size) == len(data)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_backend_wheel_installs_with_pip_and_matches_setuptools(tmp_path):
    """pip accepts the wheel (console script, package data in place), and setuptools' own wheel of
    the same sources holds the same files."""
    import shutil
    import subprocess

    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{python} not found (make venv)")
    wheel = build_plugin_zip.build_wheel(tmp_path / "ours")
    target = tmp_path / "site"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (target / "sar2opt_geo" / "models" / "weights" / "gray_to_rgb.safetensors").is_file()
    assert (target / "bin" / "sar2opt").read_text().count("from sar2opt_geo.cli.main import main") == 1
    # setuptools, from a copy of the sources (no build/ or egg-info in the checkout)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sar2opt_geo", src / "sar2opt_geo", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([str(python), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "st"), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 and "setuptools" in proc.stderr and "No module named" in proc.stderr:
        pytest.skip("setuptools is not installed in .venv")
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(next((tmp_path / "st").glob("*.whl"))) as theirs, zipfile.ZipFile(wheel) as ours:
        package = {n for n in theirs.namelist() if ".dist-info/" not in n}
        assert package == {n for n in ours.namelist() if ".dist-info/" not in n}
        for name in package:
            assert theirs.read(name) == ours.read(name), name
        def requires(zf):
            meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
            return sorted(ln for ln in meta.splitlines() if ln.startswith(("Requires-Dist", "Requires-Python", "Provides-Extra")))
        assert requires(ours) == requires(theirs)
