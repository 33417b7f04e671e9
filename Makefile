# One-command set-up: every target creates .venv and installs the project when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install install-dev repro test test-slow lint bench check clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

repro: install            ## run the whole pipeline (dvc repro)
	dvc repro

check: install            ## validate params.yaml
	audiorecon check

test: install-dev         ## the test suite (fast layers; slow tests deselected)
	python -m pytest -q

test-slow: install-dev    ## slow tests: long files, killed workers, parallel studies
	python -m pytest -q -m slow

lint: install-dev
	ruff check pipeline tests benchmarks

bench: install            ## benchmarks: ratios measured in one run (enhance needs models/audio-noise)
	python benchmarks/generate.py
	python benchmarks/train_feed.py
	python benchmarks/enhance.py

clean-venv:
	rm -rf $(VENV)
