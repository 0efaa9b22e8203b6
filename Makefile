# `make demo` and `make test` work on a fresh machine with only python3: they create .venv,
# install what they need into it, and reuse it on later runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
comma := ,

# One stamp per set of extras, named after a checksum of what the install builds from: editing
# the project's metadata or its C source checks the environment again (and installs only if
# something is missing or stale).
BUILD_INPUTS := pyproject.toml setup.py src/resilient/_speedups.c
HASH := $(shell cat $(BUILD_INPUTS) | cksum | cut -d' ' -f1)
installed = $(VENV)/.installed-$(1)-$(HASH)

.PHONY: demo test soak lint format bench bench-quick bench-commit bench-peers docs clean distclean venv redis wrk

$(BIN)/python:
	@bash scripts/ensure-venv.sh "$(PYTHON)" "$(VENV)"

# $* is the extras joined by "-", e.g. .venv/.installed-dev-bench-<hash> installs ".[dev,bench]".
$(VENV)/.installed-%-$(HASH): $(BUILD_INPUTS) | $(BIN)/python
	@$(BIN)/python scripts/venv-satisfied.py "$(subst -,$(comma),$*)" \
		|| $(BIN)/python -m pip install --quiet -e ".[$(subst -,$(comma),$*)]"
	@find $(VENV) -maxdepth 1 -name '.installed-*' ! -name '*-$(HASH)' -delete
	@touch $@

venv: $(call installed,dev)

redis:
	@bash scripts/ensure-redis.sh

wrk:
	@bash scripts/ensure-wrk.sh

# Options for the demo, e.g. make demo DEMO_ARGS="--redis redis://127.0.0.1:6379/0"
DEMO_ARGS ?=

demo: $(call installed,demo)
	$(BIN)/python examples/storm.py $(DEMO_ARGS)

test: $(call installed,dev) redis wrk
	$(BIN)/python -m pytest

# Mixed load on a gateway and an upstream for DURATION seconds (default 600); fails when memory
# or the Redis key count grows. Writes .reliability/soak/report.{md,json} (git-ignored).
soak: $(call installed,dev) redis
	$(BIN)/python scripts/soak.py

lint: $(call installed,dev)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src

format: $(call installed,dev)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The peer libraries the benchmarks measure, pinned in one file; installed again when it changes.
PEERS := benchmarks/requirements.txt
PEERS_STAMP := $(VENV)/.bench-peers-$(shell cat $(PEERS) | cksum | cut -d' ' -f1)

$(PEERS_STAMP): $(PEERS) $(call installed,dev-bench)
	@$(BIN)/python -m pip install --quiet -r $(PEERS)
	@find $(VENV) -maxdepth 1 -name '.bench-peers-*' ! -name '$(notdir $(PEERS_STAMP))' -delete
	@touch $@

bench-peers: $(PEERS_STAMP)

# Every benchmark, resilient and the peers in one process and one run (about 10 minutes);
# writes benchmarks/results/latest/ (git-ignored). bench-commit replaces the committed results.
bench: bench-peers redis
	$(BIN)/python -m benchmarks

# The same scenarios with shorter loops and fewer rounds: under 2 minutes, for everyday use.
bench-quick: bench-peers redis
	$(BIN)/python -m benchmarks --quick

bench-commit: bench-peers redis
	$(BIN)/python -m benchmarks --update-committed

docs: $(call installed,dev-docs)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf site build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
