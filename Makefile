# Developer entry points. `make test` is what CI runs (see .ci/run).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
PY     := $(VENV)/bin/python

# Backends the database tests run against (comma-separated: sqlite,mysql,postgresql).
DJ_TEST_BACKENDS ?= sqlite
export DJ_TEST_BACKENDS

PYTEST_ARGS ?=

.PHONY: venv demo test lint dev bench conformance clean

venv: $(STAMP)

# Re-installs only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]'
	@touch $@

demo: venv
	$(PY) -m definitions.demo

test: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check dj_dagster conformance definitions bench tests

dev: venv
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: venv
	$(PY) -m bench

# datajoint 2.3.5's own test suite against datajoint and against us (tens of minutes;
# not part of `make test`): writes conformance/results.md
conformance: venv
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev,conformance]'
	$(PY) -m conformance $(CONFORMANCE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
