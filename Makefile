# Each target installs what it needs into .venv first, so a fresh machine with only
# Python 3.11 and make needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench bench-pace mutants clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/bulk demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Plants each named bug of tests/mutants.py alone (in a temporary copy of the tree) and runs
# the tests that guard it: fails if one survives or no longer applies. About 15 s.
mutants: $(BIN)/.installed
	$(BIN)/python -m tests.run_mutants

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run --output BENCHMARKS.md

# The Pace piece alone (~6 min): replaces BENCHMARKS.md's "Pace" section only.
bench-pace: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run --only pace --output BENCHMARKS.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
