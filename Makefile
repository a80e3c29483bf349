# The two commands of the README: `make demo` (the main job on embedded defaults) and `make test`.
# Both create .venv with the machine's Python (3.11 or newer) and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit system-deps clean mutants mutants-ci

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[demo,test]"
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

# Real Prometheus and promtool (rules, dashboard queries) and headless Chromium (the HTML report)
# come from Debian's packages; installing them needs root, as on CI machines.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

unit: $(STAMP) system-deps
	$(BIN)/python -m pytest

# The CI subset of mutation testing runs after the tests, and only if they passed.
test: lint typecheck unit
	$(MAKE) mutants-ci

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Mutation testing of the safety core (mutmut; tools/mutants.py says how and why). Long: each
# target runs its own tests once per mutant. `make mutants TARGETS="policies ledger"` for some.
mutants: $(STAMP)
	$(BIN)/python tools/mutants.py $(TARGETS)

# The CI subset (part of `make test`): a fixed sample of the fast targets' mutants; fails on a
# sampled survivor that tools/mutants-equivalent.txt does not list. Cost: docs/benchmarks.md.
mutants-ci: $(STAMP)
	$(BIN)/python tools/mutants.py --ci
