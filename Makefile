# retailflow: `make run` (the whole platform, embedded), `make test` (lint, then every test tier in order) and
# `make test-fast` (the tiers that need no server you start: a few minutes). All bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# -rs: print why each skipped test was skipped (a skip is a test that did not run; it must say why)
PYTEST := $(BIN)/python -m pytest -q -rs
# every test lives in exactly one tier; `make test` runs them in this order (see README, "Tests")
TIERS := unit contract fuzz workflows replay integration faults slow
FAST_TIERS := unit contract fuzz workflows replay

.PHONY: run run-vendors test test-fast test-tiers lint bench clean venv reliability

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
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(STAMP)
	@echo "== lint: ruff, the layer contract (import-linter, pyproject.toml), the type checker (mypy)"
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	@$(MAKE) --no-print-directory test-tiers
	@echo "== tier: unit (pure functions, adapters, SQLite; no servers)"
	$(PYTEST) tests/unit
	@echo "== tier: contract (vendor fixtures and in-process vendor sandboxes; no servers)"
	$(PYTEST) tests/contract
	@echo "== tier: fuzz (hypothesis on every vendor mapper, schemathesis on the API's own schema; bounded examples)"
	$(PYTEST) tests/fuzz
	@echo "== tier: workflows (each module starts Temporal's time-skipping test server)"
	$(PYTEST) tests/workflows
	@echo "== tier: replay (recorded workflow histories against today's code; no servers)"
	$(PYTEST) tests/replay
	@echo "== tier: integration (starts the Temporal dev server, the worker and the API)"
	$(PYTEST) tests/integration
	@echo "== tier: faults (worker SIGKILLs, Temporal restarts, vendor 503/429, shuffled duplicates, database refusals)"
	$(PYTEST) tests/faults
	@echo "== tier: slow (the million-line settlement)"
	@# pytest exits 5 when it collects no tests: an absent or empty tests/slow is not a failure
	@if [ -d tests/slow ]; then $(PYTEST) tests/slow || [ $$? -eq 5 ]; else echo "tests/slow does not exist: nothing to run"; fi

# unit + contract + workflows + replay in one run: nothing to start, no database server needed
test-fast: $(STAMP)
	@$(MAKE) --no-print-directory test-tiers
	@echo "== tiers: $(FAST_TIERS) (no servers)"
	$(PYTEST) $(addprefix tests/,$(FAST_TIERS))

# fails if a folder of tests/ holding tests is in no tier (it would silently never run under `make test`)
test-tiers:
	@for d in tests/*/; do d=$${d%/}; case " $(TIERS) " in *" $${d#tests/} "*) continue;; esac; \
	  if [ -n "$$(find $$d -name 'test_*.py' -print -quit)" ]; then echo "$$d holds tests but is in no tier (TIERS in Makefile)"; exit 1; fi; \
	done; if ls tests/test_*.py >/dev/null 2>&1; then echo "tests/test_*.py are in no tier: move them into a tier folder"; exit 1; fi

clean:
	rm -rf .data .pytest_cache .ruff_cache

# ~14 min on 2 cores (a 13-min budget: later parts shrink to fit); `$(BIN)/python -m bench --quick` is a ~4 min smoke run. Raw results: .data/benchmarks.json
# With RETAILFLOW_TEST_DATABASE_URL (or RETAILFLOW_BENCH_POSTGRES_URL) set, orders also run on a PostgreSQL
# platform database (a fresh bench_<pid> on that server, dropped at the end); without, that row says it was skipped.
bench: $(STAMP)
	mkdir -p .data
	RETAILFLOW_BENCH_POSTGRES_URL="$${RETAILFLOW_BENCH_POSTGRES_URL:-$${RETAILFLOW_TEST_DATABASE_URL:-}}" \
	  $(BIN)/python -m bench --report docs/benchmarks.md --json .data/benchmarks.json

# docs/reliability.md from a fresh run of the fuzz and fault tiers: each test records its measured figures
# (tests/reliability.py) into a fresh records directory, then the page is rendered from them. Set
# RETAILFLOW_TEST_DATABASE_URL (a PostgreSQL) or the database-refusal fault is skipped (it says so).
RELIABILITY_DIR := .data/reliability
reliability: $(STAMP)
	rm -rf $(RELIABILITY_DIR)
	@# the page is rendered even when a test fails (its record says FAIL); make still fails afterwards
	RETAILFLOW_RELIABILITY_DIR=$(RELIABILITY_DIR) $(PYTEST) tests/fuzz tests/faults; status=$$?; \
	  RETAILFLOW_RELIABILITY_DIR=$(RELIABILITY_DIR) $(BIN)/python -m tests.reliability --out docs/reliability.md \
	  && exit $$status
