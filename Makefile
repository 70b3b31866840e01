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

.PHONY: help install demo test lint bench clean

help:
	@echo "make demo   - set up .venv and run the example pipeline end to end"
	@echo "make test   - set up .venv, lint, and run the test suite"
	@echo "make bench  - run the benchmarks and write benchmarks/RESULTS.md"
	@echo "make clean  - remove runs, the local MLflow store and caches (keeps .venv)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip's own notices about optional local wheel folders are noise here; real errors still fail the build.
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
	$(BIN)/python -m ipykernel install --sys-prefix --name toolkit --display-name "Python (toolkit)" >/dev/null
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/toolkit check
	$(BIN)/toolkit run pipelines/train.yaml
	$(BIN)/toolkit review approve breast_cancer_clf candidate --reviewer demo-reviewer --note "make demo"
	$(BIN)/toolkit promote breast_cancer_clf candidate
	$(BIN)/toolkit releases breast_cancer_clf
	$(BIN)/toolkit run pipelines/score.yaml
	$(BIN)/toolkit run pipelines/score.yaml -p batch=pipelines/batches/messy.csv
	$(BIN)/toolkit monitor breast_cancer_clf --batch pipelines/batches/clean.csv
	@echo "The next batch was measured after a calibration change: the monitor must alert (exit 5)."
	$(BIN)/toolkit monitor breast_cancer_clf --batch pipelines/batches/shifted.csv || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf runs mlruns mlflow.db .toolkit .cache .pytest_cache .ruff_cache
