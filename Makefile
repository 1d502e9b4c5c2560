# Secrets Portal. The two set-up commands: `make run` (demo) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ADDRPORT ?= 127.0.0.1:8000

.PHONY: run test qa lint format typecheck system-deps node-deps install-demo install-dev install-bench bench load clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev,demo]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev,demo,bench]'
	touch $@

install-demo: $(VENV)/.demo-installed
install-dev: $(VENV)/.dev-installed
install-bench: $(VENV)/.bench-installed

## The demo on embedded defaults: SQLite and an in-process moto server, no AWS account.
run: install-demo
	PORTAL_DEMO=1 $(PY) manage.py migrate --noinput -v0
	PORTAL_DEMO=1 $(PY) manage.py demo --addrport $(ADDRPORT)

## Debian packages the browser tests need (Chromium from Debian; never a downloaded browser).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

## npm packages of the test identity provider (oidc-provider), from package-lock.json.
node-deps:
	@[ -d tests/idp/node_modules ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error

test: install-dev system-deps node-deps
	$(VENV)/bin/pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install-dev
	PORTAL_TESTING=1 $(VENV)/bin/mypy portal secrets_admin

qa: lint typecheck test

## Benchmarks (never part of `make test`): cost per page against the AWS-call floor and the AWS
## CLI, written to BENCHMARKS.md; and a 60 s load test of two instances. Both need PostgreSQL and
## Redis on 127.0.0.1 (databases portal_bench, Redis dbs 4 and 5) and start everything else.
bench: install-bench
	$(PY) bench/run.py

load: install-bench
	$(PY) bench/load.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 .pytest_cache .mypy_cache .ruff_cache tests/idp/node_modules
