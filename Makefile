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

.PHONY: install run test test-all ui bench paper mutants lock clean

# requirements.lock pins every package (installed with --no-deps, so pip resolves nothing and
# torch's triton, 0.9 GB that nothing here uses, is never installed: docs/DECISIONS.md O5).
# pip check then proves the set consistent, apart from exactly that one missing requirement.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e '.[dev,cluster]'
	$(BIN)/python -m pip check | grep -v -e '^torch [^ ]* requires triton, which is not installed' \
	  -e '^No broken requirements found' | grep . && { echo "make: requirements.lock does not satisfy pyproject.toml: run make lock" >&2; exit 1; } || true
	touch $@

# The native kernels (vendored OpenJPEG, DECISIONS E14): rebuilt when their sources change
# (content-keyed, a no-op otherwise). Without a C compiler the pure-Python paths run instead:
# the same bytes, slower; the build says so and make goes on.
install: $(VENV)/.installed
	$(BIN)/python -m shamisa_core.native.build >/dev/null || echo "make: native kernels not built; the engine runs its slower pure-Python paths (same output)" >&2

run: install
	$(BIN)/python -m pipelines.main_run

test: install
	$(BIN)/python -m pytest -q -m "not slow" --durations=15 && $(BIN)/python -m pytest -q -m slow tests/faults \
	  tests/test_indep_training.py::test_encoder_asset_world_size_2_through_torchrun_and_pipes \
	  tests/test_score_after_training.py

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

# Mutation score per package (mutmut 3.8.1, one child, niced; not run in CI). Results merge into
# bench/mutants.json. By default a seeded sample of 80 mutants per package; MUTANTS_FLAGS= runs all.
# --verify-later-kills re-tests the survivors of tests/mutation/killed_after_review.txt.
MUTANTS_FLAGS ?= --sample 80 --seed 1
mutants: install
	for p in corpus training evaluation; do \
	  nice -n 19 $(BIN)/python bench/mutants.py --package $$p --max-children 1 --verify-later-kills $(MUTANTS_FLAGS) || exit 1; \
	done

# Regenerate requirements.lock after changing pyproject.toml's dependencies: resolve them in a
# scratch virtual environment (torch first, from this machine class's disk) and freeze it.
LOCK_VENV ?= /tmp/shamisa-lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[dev,cluster]'
	{ sed -n '1,/^$$/p' requirements.lock | grep '^#'; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v -i -e '^triton==' -e '^pip=='; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock
	rm -rf $(LOCK_VENV)

clean:
	rm -rf outputs
