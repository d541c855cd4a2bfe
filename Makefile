# shamisa: `make run` sets everything up and runs the main pipeline on the embedded default
# data; `make test` sets up and runs the tests. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export DAGSTER_HOME := $(abspath dagster_home)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-all ui bench paper clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,cluster]'
	$(BIN)/python -m pip check
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m pipelines.main_run

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/python -m pytest -q

ui: install
	set -m; $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The paper profile end to end on the benchmarks configured in config/datasets/*.yaml (README
# "make paper"); without them it names the missing ones and exits non-zero.
paper: install
	$(BIN)/python -m pipelines.paper

bench: install
	$(BIN)/python bench/engine.py --threads 1

clean:
	rm -rf outputs
