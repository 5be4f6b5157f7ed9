# Two commands for a fresh machine with Python 3.11+:  make run  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench

run: $(STAMP)
	$(BIN)/taskapi serve

test: $(STAMP)
	bash scripts/install-test-tools.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check api tests db bench
	$(BIN)/ruff format --check api tests db bench
	$(BIN)/mypy

install: $(STAMP)

# make bench BENCH_ARGS='--users 1000 --tasks 20 --duration 5'   (see python -m bench --help)
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

bench: $(STAMP) $(BENCH_STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -q wrk \
		|| { apt-get update -qq && apt-get install -y -q wrk; }; } >/dev/null 2>&1; } \
		|| echo "wrk is not installed and not root: using the Python load generator"
	$(BIN)/python -m bench $(BENCH_ARGS)

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
