# Flywheel: `make run` sets up and serves the demo; `make test` sets up and runs the whole suite.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint fmt bench clean

$(VENV)/.installed: pyproject.toml sdk/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e sdk/python
	touch $@

install: $(VENV)/.installed

# Migrate, load the demo project (idempotent), create demo users, serve on http://$(HOST):$(PORT).
# With REDIS_URL set, a Celery worker and beat run beside the web server.
run: install
	mkdir -p var
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(PY) manage.py load_demo
	DEBUG=$${DEBUG:-1} bin/serve $(HOST) $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff, mypy (zero errors on flywheel_site, labeling, sampling, and the SDK in sdk/python) and the import contracts in
# pyproject.toml; docs/development.md says how to keep each green.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --config-file sdk/python/pyproject.toml sdk/python/flywheel_sdk
	$(VENV)/bin/lint-imports

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var/test
