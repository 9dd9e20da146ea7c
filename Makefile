# Two entry points for a fresh machine:  `make repro` (the default DOE; `make repro JOBS=2`: two
# cells at a time) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup repro test test-long test-all smoke bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# JOBS=N (N > 1): N cells trained at once, each in its own workspace (python -m mnist_doe.parallel)
JOBS ?= 1
repro: setup
	@if [ "$(JOBS)" -gt 1 ]; then set -x; python -m mnist_doe.parallel --jobs $(JOBS); else set -x; dvc repro; fi

# tests in parallel, one test file per worker at a time (a file's fixtures are built once), the
# longest files first (tests/conftest.py: FIRST); TEST_JOBS=1 runs them one after another
TEST_JOBS ?= auto
PYTEST := pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# the suite but its end-to-end studies of minutes (marked long), then those alone, then all
test: setup
	$(PYTEST) -m "not long"

test-long: setup
	$(PYTEST) -m long

test-all: setup
	$(PYTEST)

smoke: setup
	python .ci/smoke.py

bench: setup
	python bench/bench_train.py
	python bench/bench_ceiling.py
	python bench/bench_augment.py
