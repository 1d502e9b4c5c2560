# Secrets Portal. The two set-up commands: `make run` (demo) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ADDRPORT ?= 127.0.0.1:8000

.PHONY: run test qa lint format typecheck security bandit audit-deps system-deps node-deps install-demo install-dev install-bench upgrade-deps bench load clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

## Locked dependencies (requirements/README.md): exactly these versions, checked by hash; the
## project itself then without its dependencies. The demo and the tests use the dev lock (which
## holds the runtime lock's versions), the image the runtime lock.
LOCK_RUNTIME := requirements/runtime.txt
LOCK_DEV := requirements/dev.txt
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make upgrade-deps" $(VENV)/bin/pip-compile -q --upgrade \
  --allow-unsafe --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
  --no-emit-trusted-host

$(VENV)/.dev-installed: $(LOCK_DEV) pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --require-hashes -r $(LOCK_DEV)
	$(PIP) install -q --no-deps -e .
	touch $@

## bench's own tools (awscli, locust, pyinstrument) are not locked: never deployed, never tested.
$(VENV)/.bench-installed: $(VENV)/.dev-installed
	$(PIP) install -q -e '.[bench]'
	touch $@

install-demo: install-dev
install-dev: $(VENV)/.dev-installed
install-bench: $(VENV)/.bench-installed

## Refresh both locks to the newest versions pyproject.toml allows (then run make test).
upgrade-deps: install-dev
	$(PIP_COMPILE) --extra saml --extra sentry -o $(LOCK_RUNTIME) pyproject.toml
	$(PIP_COMPILE) --extra dev --extra demo --extra saml --extra sentry -c $(LOCK_RUNTIME) \
	  -o $(LOCK_DEV) pyproject.toml
	rm -f $(VENV)/.dev-installed

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
	@# deploy: xmlsec1 signs the assertions of the tests' SAML identity provider (pysaml2)
	@command -v xmlsec1 >/dev/null 2>&1 || { \
	  echo "installing Debian's xmlsec1 for the SAML identity provider of the tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq xmlsec1 >/dev/null; }

## npm packages of the tests, from package-lock.json: the test identity provider (oidc-provider)
## and axe-core for the accessibility checks.
node-deps:
	@[ -d tests/idp/node_modules ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
	@[ -f tests/a11y/node_modules/axe-core/axe.min.js ] || npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
	@# deploy: the standard's own reader (@aws-sdk/client-secrets-manager) for tests/test_node_client.py
	@[ -d tests/node_client/node_modules/@aws-sdk/client-secrets-manager ] || npm ci --prefix tests/node_client --no-audit --no-fund --loglevel=error

## Everything on SQLite, then the audit chain tests again on PostgreSQL (which .ci/run starts);
## pytest-django creates and drops test_portal_ci_<pid> there.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/portal_ci
test: install-dev system-deps node-deps
	$(VENV)/bin/pytest
	DATABASE_URL=$(PG_TEST_URL)_$$$$ $(VENV)/bin/pytest -m chain -q -p no:cacheprovider

## The hooks of .pre-commit-config.yaml, in check mode: ruff, ruff format, djade (templates),
## django-upgrade (Django 5.2 idioms); mypy is `make typecheck`.
DJANGO_TARGET := 5.2
TEMPLATES_HTML = $$(find templates -name '*.html' | sort)
PY_SOURCES = $$(find portal secrets_admin tests bench manage.py -name '*.py' -not -path '*/node_modules/*' | sort)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/djade --check --target-version $(DJANGO_TARGET) $(TEMPLATES_HTML)
	$(VENV)/bin/django-upgrade --check --target-version $(DJANGO_TARGET) $(PY_SOURCES)

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/djade --target-version $(DJANGO_TARGET) $(TEMPLATES_HTML)
	$(VENV)/bin/django-upgrade --exit-zero-even-if-changed --target-version $(DJANGO_TARGET) $(PY_SOURCES)

typecheck: install-dev
	PORTAL_TESTING=1 $(VENV)/bin/mypy portal secrets_admin bench

## Static security checks: bandit on the shipped code (accepted findings are marked `# nosec`
## with the reason on their line) and known vulnerabilities in the installed packages.
security: bandit audit-deps

bandit: install-dev
	$(VENV)/bin/bandit -q -c pyproject.toml -r portal secrets_admin

## pip-audit asks PyPI's per-version JSON API; where that is not served (a mirror, no network)
## pip-audit would "audit" nothing and pass, so skip with a note instead.
PYPI_VULN_PROBE := import json, sys, urllib.request; \
  d = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/24.0/json", timeout=10)); \
  sys.exit(0 if "vulnerabilities" in d else 1)
audit-deps: install-dev
	@if $(PY) -c '$(PYPI_VULN_PROBE)' >/dev/null 2>&1; then \
	  $(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off; \
	else \
	  echo "pip-audit skipped: PyPI's vulnerability data (pypi.org/pypi/<name>/<version>/json) is not reachable from here."; \
	fi

qa: lint typecheck security test

## Benchmarks (never part of `make test`): cost per page against the AWS-call floor and the AWS
## CLI, written to BENCHMARKS.md; and a 60 s load test of two instances. Both need PostgreSQL and
## Redis on 127.0.0.1 (databases portal_bench, Redis dbs 4 and 5) and start everything else.
bench: install-bench
	$(PY) bench/run.py
	$(PY) bench/hygiene_bench.py

load: install-bench
	$(PY) bench/load.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 demo-audit.jsonl .pytest_cache .mypy_cache .ruff_cache tests/idp/node_modules tests/a11y/node_modules tests/node_client/node_modules test-artifacts
