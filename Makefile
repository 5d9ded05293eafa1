# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   translate the bundled real Sentinel-1 sample -> out/demo_rgb.tif + .png + out/demo_side_by_side.png
#   make test   install what the tests need (venv, torch CPU pinned, QGIS from apt) and run them

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BASE_STAMP := $(VENV)/.installed-base
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test venv qgis plugin-zip bench lint clean

# torch 2.13.0 CPU: a local wheel where pip has one (find-links, as on the CI machines), else
# PyTorch's CPU index; plain PyPI would pull several GB of CUDA wheels on Linux.
$(BASE_STAMP): setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-index --no-deps torch==2.13.0 2>/dev/null \
		|| $(PIP) install -q torch==2.13.0 --index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e .
	touch $@

# the test extra (pytest, Dask, onnxruntime, OpenVINO ...) only for `make test`
$(STAMP): $(BASE_STAMP)
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

venv: $(STAMP)

demo: $(BASE_STAMP)
	$(VENV)/bin/sar2opt demo --output out/demo_rgb.tif

qgis:
	bash scripts/install_qgis.sh

test: $(STAMP) qgis
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

plugin-zip:  # standard library only: no venv needed; the backend wheel goes inside the zip
	$(PYTHON) scripts/build_plugin_zip.py

bench: $(STAMP)
	$(PY) benchmarks/bench_tiling.py

# ruff (rules and limits in pyproject.toml), mypy on the package, and the structure rules:
# no import cycle, no module over 500 lines, no function over 100 lines or 8 positional
# parameters, no import of another module's private name (scripts/check_structure.py)
lint: $(STAMP)
	$(VENV)/bin/ruff check sar2opt_geo plugin tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) scripts/check_structure.py

clean:
	rm -rf $(VENV) out build dist *.egg-info
