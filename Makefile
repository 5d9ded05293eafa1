# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   translate the bundled real Sentinel-1 sample -> out/demo_rgb.tif + .png + out/demo_side_by_side.png
#   make test   install what the tests need (venv, torch CPU pinned, QGIS from apt) and run them

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test venv qgis plugin-zip bench lint clean

$(STAMP): setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sar2opt demo --output out/demo_rgb.tif

qgis:
	bash scripts/install_qgis.sh

test: $(STAMP) qgis
	$(VENV)/bin/ruff check sar2opt_geo plugin tests benchmarks scripts
	$(PY) -m pytest -q $(PYTEST_ARGS)

plugin-zip:  # standard library only: no venv needed; the backend wheel goes inside the zip
	$(PYTHON) scripts/build_plugin_zip.py

bench: $(STAMP)
	$(PY) benchmarks/bench_tiling.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sar2opt_geo plugin tests benchmarks scripts

clean:
	rm -rf $(VENV) out build dist *.egg-info
