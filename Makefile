# The two commands of the README: `make demo` (the main job on embedded defaults) and `make test`.
# Both create .venv with the machine's Python (3.11 or newer) and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Exit code 3 means "the scan found waste": for the demo that is success.
demo: $(STAMP)
	$(BIN)/cloudsweep scan --demo; code=$$?; [ $$code -eq 0 ] || [ $$code -eq 3 ]

lint: $(STAMP)
	$(BIN)/ruff check operator tests migrations bench
	$(BIN)/ruff format --check operator tests migrations bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
