# Nightshift: the two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help run stop status test e2e lint unit venv venv-dev lock schemas clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: venv ## set up, start Airflow on 127.0.0.1:8080 and run every DAG once
	@$(PY) scripts/local_stack.py up

stop: ## stop everything `make run` started
	@if [ -x $(PY) ]; then $(PY) scripts/local_stack.py down; else echo "nothing to stop"; fi

status: ## show which local components are running
	@$(PY) scripts/local_stack.py status

test: venv-dev ## set up, then ruff + the whole pytest suite
	@scripts/test.sh

e2e: venv-dev ## every DAG under CeleryExecutor (PostgreSQL, Redis, 2 workers), REST API + browser checks
	@scripts/services.sh && mkdir -p test-output && .venv/bin/python -m pytest tests/test_e2e_celery.py

lint: venv-dev ## ruff only
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

venv: ## create/refresh .venv with runtime dependencies
	@scripts/bootstrap.sh

venv-dev:
	@scripts/bootstrap.sh --dev

lock: ## re-resolve requirements*.txt into requirements.lock
	@scripts/lock.sh

schemas: venv ## write include/config/schemas/*.json from the config models
	@$(PY) scripts/config_schemas.py

clean: stop ## stop and delete the runtime folder (.nightshift/)
	rm -rf .nightshift
