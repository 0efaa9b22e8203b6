# Two commands matter: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the project's metadata changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint format bench docs clean venv redis

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,docs]"
	touch $@

venv: $(STAMP)

redis:
	@bash scripts/ensure-redis.sh

demo: venv
	$(BIN)/python examples/storm.py

test: venv redis
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv redis
	$(BIN)/python -m benchmarks

docs: venv
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
