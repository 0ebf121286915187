# One place for the commands people and CI run. `make check` = lint + types + tests.
VENV ?= .venv
PY := $(VENV)/bin/python
SRC := azfinetune tests benchmarks jobs scripts

.PHONY: quickstart tests check lint types test fmt

quickstart:  ## install (venv, .[train], CPU torch) and run the local quickstart
	./scripts/setup-venv.sh train,onnx
	$(VENV)/bin/azfinetune demo

tests:  ## install (venv, .[dev,train,deepspeed]; deepspeed built once, cached) and run lint, types and the tests
	./scripts/setup-venv.sh dev,train,deepspeed
	$(MAKE) check

check: lint types test

lint:
	$(PY) -m ruff check $(SRC)
	$(PY) -m ruff format --check $(SRC)
	$(VENV)/bin/lint-imports

types:
	$(PY) -m mypy

# Serial by default: on the shared 2-core machine `-n 2` was slower (tests/cli 47.6 s vs 43.9 s serial);
# Two workers (pytest-xdist, in the dev extra): the suite took 388 s with -n 2 against ~750 s serial on the
# 2-core machine; with more cores: make test PYTEST_ARGS="-n auto".
PYTEST_ARGS ?= -n 2
test:
	$(PY) -m pytest -q $(PYTEST_ARGS)

fmt:
	$(PY) -m ruff format $(SRC)
	$(PY) -m ruff check --fix $(SRC)
