# Everything a fresh machine needs: Python >= 3.11, pip and make.
# The virtual env is built from the hash-locked requirements.lock on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench docs lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## demo: the whole job end to end on the built-in demo (no configuration, loopback only)
demo: $(STAMP)
	$(BIN)/wfm-intervals demo

## test: lint, type-check and the whole test suite
test: $(STAMP)
	$(BIN)/ruff check engine connectors tests benchmarks
	$(BIN)/ruff format --check engine connectors tests benchmarks
	$(BIN)/mypy
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/pytest -q -n auto --maxprocesses 4 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check engine connectors tests benchmarks
	$(BIN)/ruff format --check engine connectors tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the benchmarks (not part of the test run)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.volume

## docs: regenerate docs/cli.md from the commands' own --help (a test checks it is current)
docs: $(STAMP)
	$(BIN)/python -m engine.cli.docs > docs/cli.md

## lock: re-resolve requirements.lock from pyproject.toml (needs network to PyPI)
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
