# One place for the commands people and CI run. `make check` = lint + types + tests.
VENV ?= .venv
PY := $(VENV)/bin/python
SRC := azfinetune tests benchmarks jobs scripts

.PHONY: quickstart tests check lint types test fmt

quickstart:  ## install (venv, .[train], CPU torch) and run the local quickstart
	./scripts/setup-venv.sh train
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

test:
	$(PY) -m pytest -q

fmt:
	$(PY) -m ruff format $(SRC)
	$(PY) -m ruff check --fix $(SRC)
