# redlist developer tasks. Everything runs inside .venv; nothing is installed elsewhere.
#
#   make install   create .venv and install every redlist distribution, editable, with the
#                  test and benchmark tools (once; again whenever a pyproject.toml changes)
#   make proto     regenerate proto/src/redlist/v1 from proto/redlist/v1/*.proto
#   make lint      ruff, ruff format, mypy, import-linter, generated-code and catalogue freshness
#   make test      lint, then the test suite (what CI runs)
#   make soak      the fault suites (tests/faults) at length; see docs/reliability.md
#   make demo      run the end-to-end demonstration
#   make bench     run every benchmark (each prints one JSON object), then write
#                  docs/performance.md's table and plot from them
#   make bytecode  compile the sources' bytecode (every target that runs the programs
#                  does it first; docs/adr/0041)
#   make native    compile the core's hot modules with mypyc into build/native, when
#                  their sources changed (make bytecode does it first; docs/adr/0057)
#   make clean     remove caches and build output (make distclean also removes .venv)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
MAKEFLAGS += --no-builtin-rules

# The interpreter that creates the virtualenv; override with `make PYTHON=python3.12`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Present once `make install` has succeeded for the current pyproject.toml.
INSTALLED := $(VENV)/.installed

.PHONY: install native bytecode proto lint lint-ruff lint-format lint-types lint-imports lint-proto lint-i18n \
	test soak demo bench clean distclean

install: $(INSTALLED)

PYPROJECTS := pyproject.toml $(wildcard */pyproject.toml)

$(INSTALLED): $(PYPROJECTS) scripts/install_dev.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "redlist needs Python 3.11 or newer; try make PYTHON=python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python scripts/install_dev.py test bench
	@touch $@

# The sources' bytecode, written beside them as pip writes an installed package's: the
# programs (every test's subprocess, a node, the verifier) then start without compiling
# their modules, also where PYTHONDONTWRITEBYTECODE keeps Python from caching them
# itself. Only sources newer than their bytecode are compiled (docs/adr/0041).
bytecode: install native
	@$(BIN)/python -m compileall -q -j 0 $(wildcard */src) > /dev/null

# The hot modules of the core compiled with mypyc (docs/adr/0057), beside the sources in
# build/native; a program runs them only while they match their sources, so the build
# runs whenever a listed source is not the one compiled, and does nothing otherwise.
native: install
	@$(BIN)/python scripts/build_native.py

proto: install
	scripts/gen_proto.sh

# Each check runs even when an earlier one fails (-k), so one run shows every problem.
lint: install
	@$(MAKE) --no-print-directory -k lint-ruff lint-format lint-types lint-imports lint-proto \
		lint-i18n

lint-ruff:
	$(BIN)/ruff check .

lint-format:
	$(BIN)/ruff format --check .

lint-types:
	$(BIN)/mypy

lint-imports:
	$(BIN)/lint-imports

lint-proto:
	scripts/check_proto_fresh.sh

# The Chinese catalogue: every marked message translated, the committed .mo compiled
# from the .po (python scripts/i18n.py extract / compile; docs/adr/0034).
lint-i18n:
	$(BIN)/python scripts/i18n.py check

# The suite runs as the programs run, with the core compiled; the core's own tests run
# again from its sources, the reference the compiled copy is made from (docs/adr/0057).
test: install bytecode
	@$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q -p no:cacheprovider
	REDLIST_NATIVE=0 $(BIN)/pytest -q -p no:cacheprovider tests/ledger

# The fault suites at length. REDLIST_SOAK=1 tells every suite to scale up; the crash
# test runs SOAK_ROUNDS kill -9 rounds (no new round after SOAK_SECONDS) and kills
# SOAK_EXPORT_KILLS exports. -rP prints each suite's summary line at the end. A failure
# prints its seed; replay it with REDLIST_CRASH_SEED=<seed> make soak.
# The power-cut suite runs SOAK_POWERCUT_ROUNDS cuts under load and cuts
# SOAK_POWERCUT_EXPORT_CUTS exports (replay: REDLIST_POWERCUT_SEED=<seed>).
SOAK_ROUNDS ?= 200
SOAK_SECONDS ?= 3600
SOAK_EXPORT_KILLS ?= 60
SOAK_POWERCUT_ROUNDS ?= 200
SOAK_POWERCUT_EXPORT_CUTS ?= 30
soak: install bytecode
	REDLIST_SOAK=1 REDLIST_CRASH_ROUNDS=$(SOAK_ROUNDS) REDLIST_CRASH_SECONDS=$(SOAK_SECONDS) \
		REDLIST_CRASH_VERIFY_EVERY=25 REDLIST_CRASH_EXPORT_KILLS=$(SOAK_EXPORT_KILLS) \
		REDLIST_POWERCUT_ROUNDS=$(SOAK_POWERCUT_ROUNDS) REDLIST_POWERCUT_VERIFY_EVERY=25 \
		REDLIST_POWERCUT_EXPORT_CUTS=$(SOAK_POWERCUT_EXPORT_CUTS) \
		$(BIN)/pytest -q -p no:cacheprovider -rP tests/faults

demo: install bytecode
	$(BIN)/python -m redlist.demo

# Progress goes to stderr so that stdout is only the benchmarks' JSON, also kept (one
# object a line) in $(BENCH_OUT); then scripts/bench_report.py writes docs/performance.md's
# table and docs/performance-append.png from it. REDLIST_BENCH_10M=1 grows the append
# and proofs benchmarks' logs to 10M entries (about half an hour each) instead of 1M.
# The results the table is written from are kept in docs/performance.jsonl: a row this run
# does not measure again (the 10M ones, in a run without REDLIST_BENCH_10M) keeps its
# figures there, with the day it was measured.
BENCH_OUT ?= build/bench.jsonl

bench: install bytecode
	@mkdir -p $(dir $(BENCH_OUT)); : > $(BENCH_OUT); \
	shopt -s nullglob; \
	scripts=(benchmarks/*.py); \
	if (( $${#scripts[@]} == 0 )); then echo "no benchmarks found in benchmarks/" >&2; fi; \
	for script in "$${scripts[@]}"; do \
		echo "running $$script" >&2; \
		$(BIN)/python "$$script" | tee -a $(BENCH_OUT); \
	done; \
	$(BIN)/python scripts/bench_report.py $(BENCH_OUT) --keep docs/performance.jsonl

clean:
	rm -rf build dist */src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		.import_linter_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
