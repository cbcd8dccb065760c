# The two commands a newcomer needs: `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Set-up recipes report on stderr, so that `make bench` prints only its JSON on stdout.
$(BIN)/python:
	@echo "$(PYTHON) -m venv $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV) >&2

$(UV): $(BIN)/python
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" >&2

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "uv sync --frozen --extra embedded" >&2
	@$(UV) sync --frozen --extra embedded --inexact --python $(BIN)/python >&2
	@touch $@ $(VENV)/.synced-run

# Only what the platform needs at run time: no test, lint or browser tools.
$(VENV)/.synced-run: pyproject.toml uv.lock | $(UV)
	@echo "uv sync --frozen --no-dev --extra embedded" >&2
	@$(UV) sync --frozen --no-dev --extra embedded --inexact --python $(BIN)/python >&2
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.synced ## Create .venv with the locked dependencies

install-js: node_modules/.installed ## Install the locked npm packages (the tests' oracles, axe-core, esbuild)

js: install-js ## Rebuild the survivor pages' scripts into feedback/collect/static/
	npm run build --silent

lock: | $(UV) ## Re-resolve uv.lock after changing pyproject.toml
	$(UV) lock

install-run: $(VENV)/.synced-run ## Create .venv with the run-time dependencies only (what `make demo` uses)

demo: install-run ## Run the whole platform on one machine (embedded PostgreSQL unless FEEDBACK_DATABASE_URL is set)
	$(BIN)/feedback demo

lint: install ## ruff, mypy and the import contracts
	$(BIN)/ruff format --check feedback tests benchmarks
	$(BIN)/ruff check feedback tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint install-js ## Lint, then the whole test suite (FEEDBACK_TEST_DATABASE_URL or an embedded PostgreSQL)
	$(BIN)/pytest

bench: install ## Print benchmark figures as one JSON object (needs wrk)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	@$(BIN)/python -m benchmarks

format: install ## Rewrite code in the house style
	$(BIN)/ruff format feedback tests benchmarks
	$(BIN)/ruff check --fix feedback tests benchmarks

.PHONY: help install install-run install-js js lock demo lint test bench format

messages: install ## Re-extract translatable texts and update every catalogue
	$(BIN)/pybabel extract --no-location --sort-output -w 100 -k N_ -F babel.cfg -o feedback/locale/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -w 100 -i feedback/locale/messages.pot -d feedback/locale

.PHONY: messages
