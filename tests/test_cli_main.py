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


def test_evaluate_help_states_its_own_defaults(capsys):
    """Issue 24: `evaluate --help` said "--split none" by default in its description and "auto" in the option."""
    from sar2opt_geo.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    evaluate = sub.choices["evaluate"]
    actions = {a.dest: a for a in evaluate._actions}
    assert evaluate.get_default("split") == "none" and "(default: none)" in actions["split"].help
    assert "default: auto" not in actions["split"].help and "model card" in actions["mode"].help


def test_train_help_describes_the_recipe_of_the_bundled_weights():
    """Issue 24: `train --help` said the bundled weights used resnet_lite + SSIM/grad terms; their card says U-Net."""
    from sar2opt_geo.cli.main import build_parser
    from sar2opt_geo.models.loading import load

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    description = sub.choices["train"].description
    card = load("sar").card
    assert card.architecture == "unet_article" and f"--width {card.architecture_args['width']}" in description
    assert "--lr 0.0002" in card.training["command"] and "Adam 2e-4" in description
