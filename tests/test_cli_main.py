"""The ``sar2opt`` entry point: parsers build without torch, bad input fails before heavy imports."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_building_every_parser_imports_no_torch_bug():
    """Regression: cli/train.py imported sar2opt_geo.data (torch) while building the parser; --help took 4 s."""
    out = _run("import sys; from sar2opt_geo.cli.main import build_parser; build_parser(); print('torch' in sys.modules)")
    assert out == "False"


def test_missing_input_fails_before_torch_is_imported_bug(tmp_path):
    """Regression: a missing input took 4.4-8.6 s (torch imported and a progress bar drawn first)."""
    code = (
        "import sys\n"
        "from sar2opt_geo.cli.main import main\n"
        f"for cmd in (['translate', {str(tmp_path / 'nope.tif')!r}], ['composite', {str(tmp_path / 'nope.tif')!r}, 'o.tif'],\n"
        f"            ['batch', {str(tmp_path / 'nope.tif')!r}, '--aoi', 'a.gpkg', '-o', 'x']):\n"
        "    assert main(cmd) == 1\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sar2opt: error:")]
    assert len(lines) == 3 and all("nope.tif: no such file or folder" in ln for ln in lines)
    assert "%|" not in r.stderr  # no progress bar was drawn
