# streetorder. On a fresh clone with ../shared beside it:
#   make demo   creates .venv if missing, installs, scans sample photos, writes a report
#   make test   creates .venv if missing, installs, runs the whole test suite
# The install is redone whenever pyproject.toml changes (the stamp file records the last one).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PY) -m serve.demo

test: $(INSTALLED)
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check vision serve tests
	$(VENV)/bin/mypy
