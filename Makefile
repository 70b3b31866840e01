# Two commands: `make demo` and `make test`. Everything else is a convenience.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.toolkit-installed

# MLflow phones home and writes to ~/.config unless told not to; the toolkit never needs it.
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install lock bytecode demo test lint bench clean lab browser-deps wheel reliability-doc airflow-env

help:
	@echo "make demo   - set up .venv and run the example pipeline end to end"
	@echo "make test   - set up .venv, lint, and run the test suite"
	@echo "make lab    - JupyterLab on http://127.0.0.1:$(LAB_PORT) with the project's kernel"
	@echo "make bench  - run the benchmarks and write benchmarks/RESULTS.md"
	@echo "make wheel  - build dist/nbgate-*.whl and dist/constraints.txt for other projects"
	@echo "make clean  - remove runs, the local MLflow store and caches (keeps .venv)"

# The environment comes from uv.lock (exact versions and hashes), so every clone runs what was
# tested. uv itself is pinned and bootstrapped from the package index into .cache/uv (pip only).
UV_VERSION := 0.13.9
UV := .cache/uv/bin/uv

$(UV):
	$(PYTHON) -m venv .cache/uv
	.cache/uv/bin/python -m pip install --quiet "uv==$(UV_VERSION)" 2> >(grep -v "is ignored: it is neither" >&2)

$(STAMP): pyproject.toml uv.lock | $(UV)
	# --locked: fail if pyproject.toml and uv.lock disagree (run `make lock` after editing deps).
	# --compile-bytecode: write every .pyc now. Where PYTHONDONTWRITEBYTECODE is set, each process
	# (every step, kernel and test subprocess) otherwise compiles what it imports from source:
	# measured 17 s -> 7 s CPU for one `toolkit run --step`, 10 s -> 0.8 s for its kernel.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --compile-bytecode --extra dev --python $(PYTHON)
	$(BIN)/python -m ipykernel install --sys-prefix --name toolkit --display-name "Python (toolkit)" >/dev/null
	touch $@

# After changing dependencies in pyproject.toml: re-resolve and commit uv.lock.
lock: | $(UV)
	$(UV) lock

install: $(STAMP)

# For other projects: the wheel (dist/nbgate-*.whl) and the versions this lock tested
# (dist/constraints.txt): pip install -c dist/constraints.txt dist/nbgate-*.whl
wheel: | $(UV)
	$(UV) build --wheel -o dist
	$(UV) export --quiet --frozen --no-hashes --no-emit-project -o dist/constraints.txt

# The example is held to `readiness: production`: its candidate is reproduced before promotion,
# and self-approval is forbidden, so the review is made by a second account, `reviewer`,
# authenticated by an MLflow server (toolkit/demo/second_reviewer.py) in front of the same store.
# The toolkit's own bytecode, written now: where PYTHONDONTWRITEBYTECODE is set, every toolkit
# process (CLI, step, kernel, test subprocess) would compile it from source, ~0.2 s of CPU each.
# Cheap to redo (a second), and Python ignores a .pyc older than its source.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 toolkit >/dev/null

demo: $(STAMP) bytecode
	$(BIN)/toolkit check
	$(BIN)/toolkit run pipelines/train.yaml
	$(BIN)/toolkit reproduce --allow-dirty \
	  "$$($(BIN)/toolkit runs list train -n 1 --json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)[0]["toolkit_run_id"])')" \
	  || [ $$? -eq 7 ]
	$(BIN)/python -m toolkit.demo.second_reviewer reviewer breast_cancer_clf -- \
	  $(BIN)/toolkit review approve breast_cancer_clf candidate --note "make demo"
	$(BIN)/toolkit promote breast_cancer_clf candidate
	$(BIN)/toolkit releases breast_cancer_clf
	$(BIN)/toolkit run pipelines/score.yaml
	$(BIN)/toolkit run pipelines/score.yaml -p batch=pipelines/batches/messy.csv
	$(BIN)/toolkit monitor breast_cancer_clf --batch pipelines/batches/clean.csv
	@echo "The next batch was measured after a calibration change: the monitor must alert (exit 5)."
	$(BIN)/toolkit monitor breast_cancer_clf --batch pipelines/batches/shifted.csv || [ $$? -eq 5 ]
	$(BIN)/toolkit card breast_cancer_clf champion -o runs/breast_cancer_clf-card.html
	$(BIN)/toolkit check --readiness pipelines/train.yaml

# mypy checks toolkit/ ([tool.mypy] in pyproject.toml); its cache (.mypy_cache) makes a re-run
# take a second or two; from cold it reads the typed dependencies (measured 23 s CPU).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Most of the suite waits (kernels starting, servers coming up, hung-hook timeouts), so three
# workers on two cores finish in about half the time; --dist loadfile keeps each module's shared
# server or model on one worker. --no-loadscope-reorder hands files out in collection order,
# where tests/conftest.py puts the slowest first (xdist's default order is by test count).
# --durations lists the slowest tests, to keep the suite in budget.
PYTEST_WORKERS ?= 3
test: lint browser-deps airflow-env bytecode
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# Apache Airflow for the tests that run the exported DAG (tests/execute/test_airflow*.py): a
# project of its own in .ci/airflow (pyproject.toml + uv.lock), synced into .cache/airflow-venv so
# Airflow's pins never constrain the toolkit's .venv. Its metadata database is migrated once into
# a template the test copies (a migration takes 20-90 s here). Without a package index the build
# fails: that is reported, the test then skips with the reason, and `make test` goes on.
AIRFLOW_VENV := $(CURDIR)/.cache/airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.toolkit-synced
AIRFLOW_LOG := $(CURDIR)/.cache/airflow-env.log
AIRFLOW_TEMPLATE := $(CURDIR)/.cache/airflow-db-template

$(AIRFLOW_STAMP): .ci/airflow/pyproject.toml .ci/airflow/uv.lock | $(UV)
	@rm -f $(AIRFLOW_LOG) $(AIRFLOW_TEMPLATE)/airflow.db
	@mkdir -p $(AIRFLOW_TEMPLATE)
	@if UV_PROJECT_ENVIRONMENT=$(AIRFLOW_VENV) $(UV) sync --quiet --locked --compile-bytecode --project .ci/airflow \
	      --python $(PYTHON) >$(AIRFLOW_LOG) 2>&1 \
	   && AIRFLOW_HOME=$(AIRFLOW_TEMPLATE) AIRFLOW__CORE__LOAD_EXAMPLES=False \
	      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(AIRFLOW_TEMPLATE)/airflow.db \
	      $(AIRFLOW_VENV)/bin/airflow db migrate >>$(AIRFLOW_LOG) 2>&1; then \
		rm -f $(AIRFLOW_LOG); touch $@; \
	else \
		echo "note: could not build the Airflow test environment (log: $(AIRFLOW_LOG));"; \
		echo "      tests/execute/test_airflow*.py will be skipped with that reason"; \
	fi

airflow-env: $(AIRFLOW_STAMP)

# JupyterLab on loopback only, no browser opened; new notebooks get the project's `toolkit` kernel
# (the venv's interpreter, installed with the venv). Open the URL with the token it prints.
LAB_PORT ?= 8888
LAB_ARGS := --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser \
	--MappingKernelManager.default_kernel_name=toolkit $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) --ServerApp.root_dir="$(CURDIR)"

# The browser tests (marker browser: tests/e2e/test_lab.py, tests/reports/test_report_page.py)
# drive Debian's Chromium. Install it when it is missing and
# apt can run (root, or password-less sudo); otherwise say so: those tests then skip themselves.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else SUDO=none; fi; \
	if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null; then \
		echo "note: /usr/bin/chromium is missing and apt-get cannot run here (needs root or sudo);"; \
		echo "      the browser tests will be skipped. To run them: sudo apt-get install chromium"; \
		exit 0; \
	fi; \
	echo "installing Debian's chromium for the browser tests (marker browser: tests/e2e/test_lab.py, tests/reports/test_report_page.py)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	if ! { $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	       { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }; }; then \
		echo "note: could not install chromium; the browser tests will be skipped"; \
	fi

# docs/reliability.md is generated from the fault-injection suite (tests/faults); make test
# fails when it is out of date.
reliability-doc: $(STAMP)
	$(BIN)/pytest tests/faults --collect-only -q -p no:cacheprovider --reliability-table=docs/reliability.md >/dev/null

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf runs mlruns mlflow.db .toolkit .cache .pytest_cache .ruff_cache .mypy_cache
