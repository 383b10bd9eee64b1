# The two quick-start commands: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_ADMIN_USER ?= admin
DEMO_REVIEWER_USER ?= reviewer
PYTEST_ARGS ?=

.PHONY: run test venv deps dev-deps migrate lint format types imports pytest bench clean

$(PY):
	@python=$$(scripts/find-python) && echo "Using $$python" && "$$python" -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changed.
$(VENV)/.deps: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.deps

deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

migrate: deps
	$(PY) manage.py migrate --noinput

# Web and worker processes count metrics into one directory, emptied at each start (durable/metrics.py).
run: migrate
	@rm -rf var/prometheus && mkdir -p var/prometheus
	@PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus HOST=$(HOST) PORT=$(PORT) DEMO_ADMIN_USER=$(DEMO_ADMIN_USER) DEMO_REVIEWER_USER=$(DEMO_REVIEWER_USER) scripts/run-dev

test: dev-deps
	@scripts/ensure-test-services
	@set -e; total=$$(date +%s); \
	tier() { local name=$$1; shift; local t=$$(date +%s); echo "== $$name"; "$$@"; echo "== $$name took $$(( $$(date +%s) - t ))s"; }; \
	tier "lint (ruff)" $(BIN)/ruff check . ; \
	tier "format (ruff)" $(BIN)/ruff format --check . ; \
	tier "types (strict mypy: the engine, the product, the API, the providers, the project)" $(BIN)/mypy durable approvals api llm config ; \
	tier "import contracts" $(BIN)/lint-imports ; \
	tier "product tests on SQLite (pytest)" $(BIN)/pytest --ignore=tests/chaos --ignore=tests/durable $(PYTEST_ARGS) ; \
	tier "engine tests on SQLite, in a project of the engine alone" $(BIN)/pytest tests/durable --ds=tests.durable.settings $(PYTEST_ARGS) ; \
	tier "engine, worker and chaos tests on PostgreSQL, engine alone" scripts/with-postgres $(BIN)/pytest tests/durable tests/chaos --ds=tests.durable.settings $(PYTEST_ARGS) ; \
	tier "API, product and bad-input tests on PostgreSQL" scripts/with-postgres $(BIN)/pytest tests/api tests/approvals tests/test_bad_inputs.py $(PYTEST_ARGS) ; \
	echo "== make test took $$(( $$(date +%s) - total ))s in all"

format: dev-deps
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: dev-deps
	$(PY) bench/steps.py
	$(PY) bench/workers.py
	$(PY) bench/map.py
	$(PY) bench/summarizer.py --time
	$(PY) bench/load.py --users 20 --duration 20

clean:
	rm -rf $(VENV) var/*.sqlite3* .pytest_cache .mypy_cache .ruff_cache
