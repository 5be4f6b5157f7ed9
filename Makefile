# Two commands for a fresh machine with Python 3.11+:  make run  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

run: $(STAMP)
	$(BIN)/taskapi serve

test: $(STAMP)
	bash scripts/install-test-tools.sh
	$(BIN)/ruff check api tests db bench
	$(BIN)/ruff format --check api tests db bench
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check api tests db bench
	$(BIN)/ruff format --check api tests db bench

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
