# The two commands of the README:
#   make run    install shoal and start a server on the embedded store with the examples applied
#   make test   install every test dependency (Debian and Python, only where missing) and run
#               the whole suite: ruff, mypy, pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check deps system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shoal server --data-dir data --apply examples

system-deps:
	./scripts/install-system-deps

deps: system-deps $(STAMP)

check: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: check
	$(BIN)/pytest -q -rs

bench: $(STAMP)
	./scripts/install-system-deps --bench
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
