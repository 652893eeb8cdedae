# Vigil: the README's commands. Every target is idempotent and says what it does.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VIGIL := $(VENV)/bin/vigil
STAMP := $(VENV)/.installed-$(shell cat setup.py requirements.lock | sha1sum | cut -c1-12)

.PHONY: help setup up down status demo test drills test-unit test-integration test-e2e bench cluster-up cluster-down

help:
	@echo "make demo    set everything up; generator -> ingest -> fraud -> analytics on the local cluster; alerts, analytics, dashboard URL"
	@echo "make test    unit, integration (real Kafka, Flink, PostgreSQL, Chromium) and failure tests, on two workers"
	@echo "make drills  longer failure drills (TaskManager kills under the fraud job, Python start cancels) and long end-to-end runs (vigil backtest)"
	@echo "make setup | up | down | status | cluster-up | cluster-down | bench"

$(STAMP): setup.py requirements.lock
	@echo "==> checking tools: $(PYTHON) (3.10 or 3.11), java 17+, mvn"
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 11) else "Python 3.10 or 3.11 is needed (apache-flink 2.2.1)")'
	@command -v java >/dev/null || { echo "java (17+) is needed: apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn is needed to fetch jars: apt-get install maven"; exit 1; }
	@echo "==> creating the virtualenv $(VENV) and installing pinned dependencies (requirements.lock)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)
	@echo "==> jars from Maven Central (Kafka broker, Flink Kafka connector), cached outside git; Vigil's own jars (javac)"
	@$(PY) -c "from vigil import jars; jars.ensure('kafka-broker'); jars.ensure('flink-connectors'); jars.vigil_jar('vigil-formats'); jars.vigil_jar('vigil-runtime')"

up: setup
	@echo "==> starting local services"
	@$(VIGIL) infra up

cluster-up: up
	@$(VIGIL) cluster up

cluster-down:
	@test -x $(VIGIL) && $(VIGIL) cluster down || true

down:
	@echo "==> stopping local services started by this project"
	@test -x $(VIGIL) && { $(VIGIL) ops down; $(VIGIL) cluster down; $(VIGIL) infra down; } || echo "nothing to stop (no virtualenv)"

status:
	@$(VIGIL) infra status; $(VIGIL) cluster status; $(VIGIL) ops status

demo: setup
	@$(VIGIL) demo

test: setup
	@echo "==> tests: unit + doctests (no JVM), integration (real Kafka, Flink MiniCluster), e2e (local cluster, failures)"
	@$(PY) -m pytest tests vigil udfs -m "not drill and not long" -n 2 --durations=25

drills: setup
	@echo "==> failure drills: repeated TaskManager kills under live traffic, cancels during Python start-up; long end-to-end runs (vigil backtest)"
	@$(PY) -m pytest tests -m "drill or long" -s

test-unit: setup
	@$(PY) -m pytest tests/unit vigil udfs

test-integration: setup
	@$(PY) -m pytest tests/integration

test-e2e: setup
	@$(PY) -m pytest tests/e2e -m "not drill"

bench: setup
	@$(PY) bench/generator.py
	@$(PY) bench/schema_decode.py
	@$(PY) bench/ingest.py
