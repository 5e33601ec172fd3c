# `make run`  — virtualenv, migrations, demo data, server on http://127.0.0.1:8000/graphql
# `make test` — virtualenv, lint, type check, the whole test suite (needs PostgreSQL and Redis)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test lint typecheck pytest schema bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: venv
	$(BIN)/boxoffice migrate
	$(BIN)/boxoffice seed-demo
	$(BIN)/boxoffice serve --host $(HOST) --port $(PORT)

test: venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check boxoffice tests bench
	$(BIN)/ruff format --check boxoffice tests bench

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

schema: venv
	$(BIN)/boxoffice export-schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
