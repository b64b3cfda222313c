# Video Retrieval Workbench. `make reproduce` and `make test` each build .venv first if missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: setup test test-browser reproduce lint format bench clean-reports

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# The query browser in JupyterLab in headless Chromium (also part of `make test`); needs the system
# Chromium: `apt-get install -y chromium` on Debian/Ubuntu (.ci/run installs it).
test-browser: setup
	$(PY) -m pytest -q tests/test_browser_e2e.py

reproduce: setup
	$(PY) -m vrlib reproduce

lint: setup
	$(PY) -m ruff check vrlib tests benchmarks
	$(PY) -m ruff format --check vrlib tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

format: setup
	$(PY) -m ruff format vrlib tests benchmarks
	$(PY) -m ruff check --fix vrlib tests benchmarks

bench: setup
	$(PY) benchmarks/run_all.py
