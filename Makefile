# retailflow: `make run` (the whole platform, embedded) and `make test` (everything). Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-vendors test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/retailflow dev --demo

run-vendors: $(STAMP)
	$(BIN)/retailflow dev --sandbox --profile vendors

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf .data .pytest_cache .ruff_cache

# ~14 min on 2 cores (a 13-min budget: later parts shrink to fit); `$(BIN)/python -m bench --quick` is a ~4 min smoke run. Raw results: .data/benchmarks.json
bench: $(STAMP)
	mkdir -p .data
	$(BIN)/python -m bench --report docs/benchmarks.md --json .data/benchmarks.json
