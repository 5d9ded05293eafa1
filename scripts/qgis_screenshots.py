#!/usr/bin/python3
"""Screenshots of the sar2opt provider's dialogs in a real QGIS, for docs/QGIS.md.

Run with QGIS's Python under a virtual X server (Debian: ``apt-get install -y xvfb``):

    xvfb-run -a -s "-screen 0 1400x1200x24" /usr/bin/python3 scripts/qgis_screenshots.py --output docs/img

It builds the plugin folder (as the release zip has it) into a temporary folder, starts QGIS's
application with a throwaway profile (no backend configured, as a new user has it), opens the
dialogs of the provider and saves one PNG per dialog (8-bit palette, to keep them small):

* ``setup_prompt.png``: the question the plugin asks at the first QGIS start without a backend;
* ``cannot_run.png``: what the toolbox says when an algorithm is started without a backend;
* ``setup_dialog.png``, ``translate_dialog.png``, ``translateaoi_dialog.png``: the algorithm
  dialogs, advanced parameters open;
* ``settings.png``: Settings > Options > Processing > Providers > sar2opt, with the value that
  sar2opt:setup stores (a typical path; set in memory only, nothing is saved).

Standard library and QGIS only; writes nothing outside ``--output`` and a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_plugin_zip

EXAMPLE_SETTING = "/home/you/.local/share/QGIS/QGIS3/profiles/default/sar2opt/venv/bin/sar2opt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs (default docs/img)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        parser.error("no DISPLAY: run it under xvfb-run (see the docstring)")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sar2opt-screenshots-") as tmp:
        home = Path(tmp) / "home"
        (home / "runtime").mkdir(parents=True)
        (home / "runtime").chmod(0o700)
        os.environ.update(HOME=str(home), XDG_RUNTIME_DIR=str(home / "runtime"))
        os.environ.pop("SAR2OPT_EXECUTABLE", None)
        plugins = Path(tmp) / "plugins"
        build_plugin_zip.build_folder(plugins)
        return shoot(plugins, args.output)


def shoot(plugins: Path, output: Path) -> int:
    from qgis.core import QgsApplication

    profile = Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default"  # as the QGIS desktop has it
    profile.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], True, str(profile))
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    sys.path.insert(0, str(plugins))
    import sar2opt_qgis
    from processing.core.ProcessingConfig import ProcessingConfig
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.ConfigDialog import ConfigDialog
    from processing.gui.MessageDialog import MessageDialog
    from qgis.gui import QgsCollapsibleGroupBoxBasic
    from qgis.PyQt import sip
    from qgis.PyQt.QtGui import QImage
    from qgis.PyQt.QtWidgets import QGroupBox
    from sar2opt_qgis.plugin import setup_prompt

    plugin = sar2opt_qgis.classFactory(None)
    plugin.initProcessing()
    registry = QgsApplication.processingRegistry()
    written: list[Path] = []

    def save(widget, name: str, size: tuple[int, int] | None = None) -> None:
        widget.show()
        for _ in range(5):
            app.processEvents()
        if size:
            widget.resize(*size)  # after show(): dialogs restore their saved geometry when shown
        for group in widget.findChildren(QGroupBox):  # PyQt sees QGIS's C++-made group boxes as QGroupBox
            if group.metaObject().className().startswith("QgsCollapsibleGroupBox"):
                sip.cast(group, QgsCollapsibleGroupBoxBasic).setCollapsed(False)  # the advanced parameters too
        for _ in range(5):
            app.processEvents()
        image = widget.grab().toImage().convertToFormat(QImage.Format_Indexed8)
        path = output / name
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"could not write {path}")
        written.append(path)
        widget.hide()

    box, _ = setup_prompt(None)
    save(box, "setup_prompt.png")

    ok, message = registry.createAlgorithmById("sar2opt:translate").canExecute()
    assert not ok, "a backend was found; the screenshots show a new user's profile"
    dialog = MessageDialog()
    dialog.setTitle("Error executing algorithm")
    message = message.replace(str(Path.home()), "~")  # the throwaway HOME, shown as a user's
    dialog.setMessage(f"<h3>This algorithm cannot be run :-( </h3>\n{message}")  # as ProcessingToolbox shows it
    save(dialog, "cannot_run.png", (640, 260))

    for alg_id, name, size in (
        ("sar2opt:setup", "setup_dialog.png", (900, 520)),
        ("sar2opt:translate", "translate_dialog.png", (900, 660)),
        ("sar2opt:translateaoi", "translateaoi_dialog.png", (900, 790)),
    ):
        save(AlgorithmDialog(registry.createAlgorithmById(alg_id)), name, size)

    ProcessingConfig.settings["SAR2OPT_EXECUTABLE"].value = EXAMPLE_SETTING  # in memory only
    config = ConfigDialog()
    config.searchBox.setText("sar2opt")
    config.tree.expandAll()
    config.adjustColumns()
    save(config, "settings.png", (900, 260))

    for path in written:
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    sys.stdout.flush()
    os._exit(0)  # skip QGIS's teardown


if __name__ == "__main__":
    sys.exit(main())
