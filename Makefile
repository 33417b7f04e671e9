# One-command set-up: every target creates .venv and installs the project when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install install-dev repro verify exps lock test test-slow lint bench bench-full check services-up services-down clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# constraints.txt pins every package to the versions the committed results were made with.
# The pipeline's anchors stage runs the outside denoisers (DeepFilterNet3, RNNoise), so the
# plain install has them too; pyrnnoise's declared deps (audio I/O we do not use) are skipped.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[anchors]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt pyrnnoise
	touch $@

# The dev install adds the test and lint tools.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,anchors]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt pyrnnoise
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

repro: install            ## run the whole pipeline (dvc repro); `make verify` then compares with git
	dvc repro

verify: install           ## compare reports/ with the committed results (0.05 dB)
	audiorecon verify

exps: install             ## dvc exp show: changed params and key metrics only (no dep hashes)
	dvc exp show --only-changed --drop '^(data|models|reports|pipeline)/[^:]*$$|^params\.yaml$$'

lock: install-dev         ## rewrite constraints.txt from a fresh venv (after editing pyproject.toml)
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q -e '.[dev,anchors]'
	.venv-lock/bin/python -m pip install -q --no-deps pyrnnoise
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

check: install            ## validate params.yaml
	audiorecon check

test: install-dev         ## the test suite (fast layers; slow tests deselected)
	python -m pytest -q

test-slow: install-dev    ## slow tests: long files, killed workers, parallel studies
	python -m pytest -q -m slow

lint: install-dev
	ruff check pipeline tests benchmarks

bench: install            ## benchmarks -> reports/benchmarks.{json,md} + MLflow run (~20 min; BENCH_ARGS=...)
	python -m benchmarks $(BENCH_ARGS)

bench-full: install       ## bench + default dvc repro from scratch + make test (~45 min)
	python -m benchmarks --full $(BENCH_ARGS)

services-up: install      ## local PostgreSQL + MLflow server on 127.0.0.1 (prints export lines)
	bash scripts/services.sh up

services-down:            ## stop exactly what services-up started
	bash scripts/services.sh down

clean-venv:
	rm -rf $(VENV)
