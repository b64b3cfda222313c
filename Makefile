# Video Retrieval Workbench. `make reproduce` and `make test` each build .venv first if missing,
# and Chromium for the real-browser test (.ci/ensure_chromium.sh says which command to run
# where it cannot install one).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: setup chromium test test-browser browser-screenshot reproduce lint format bench clean-reports

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Chromium for the real-browser test: present, or Debian's via apt-get (root or sudo), or
# Playwright's download, or one line saying which of these to run.
chromium: setup
	@.ci/ensure_chromium.sh $(PY)

# Tests write only to temporary folders: `git status` is clean afterwards.
test: setup chromium
	$(PY) -m pytest -q

# The query browser in JupyterLab in headless Chromium (also part of `make test`).
test-browser: setup chromium
	$(PY) -m pytest -q tests/test_browser_e2e.py

# The screenshot that documents the query browser, reports/query_browser/real_browser.png, taken
# by the real-browser test; part of `make reproduce` and `make bench`, never of `make test`.
browser-screenshot: setup chromium
	VRLIB_BROWSER_SCREENSHOT=$(CURDIR)/reports/query_browser/real_browser.png \
		$(PY) -m pytest -q tests/test_browser_e2e.py

reproduce: setup chromium
	$(PY) -m vrlib reproduce
	$(MAKE) browser-screenshot

lint: setup
	$(PY) -m ruff check vrlib tests benchmarks
	$(PY) -m ruff format --check vrlib tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

format: setup
	$(PY) -m ruff format vrlib tests benchmarks
	$(PY) -m ruff check --fix vrlib tests benchmarks

bench: setup chromium
	$(PY) benchmarks/run_all.py
	$(MAKE) browser-screenshot
