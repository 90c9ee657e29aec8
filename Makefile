# One entry point for developers and CI. `make test` builds everything it needs from scratch.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON313 := $(shell tools/find-python)
PY_BIN_DIR := $(dir $(PYTHON313))
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
CHECKOV_VENV := .tools/checkov
CHECKOV_VERSION := 3.3.30
export PYTHONPATH := $(CURDIR)/layers/billing:$(CURDIR)
export PATH := $(PY_BIN_DIR):$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools run test lint fmt typecheck unit integration e2e template-test \
        demo flexprice-contract bench-coldstart bench-ingest bench-invoicing bench-webhooks bench-sync bench-load apikey clean stripe-emulator

help: ## List targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/deps/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is required" >&2; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## Create or update the app venv (Python 3.13)

$(SAM_VENV)/.installed:
	$(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q aws-sam-cli==$(SAM_VERSION)
	touch $@

# checkov (the template's security scan) pins its own dependencies, so it gets its own environment too.
$(CHECKOV_VENV)/.installed:
	$(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## Install the AWS SAM CLI and checkov in their own tool environments

run: venv ## Start the local stack on 127.0.0.1 (API :3000, function URLs :3001, AWS :5000)
	$(PY) -m devstack

stripe-emulator: venv ## Run the Stripe emulator on 127.0.0.1:LOCAL_STRIPE_PORT (default 12111)
	$(PY) -m stripe_emulator --port $${LOCAL_STRIPE_PORT:-12111}

apikey: venv ## Manage tenants and API keys: make apikey ARGS="create --tenant acme --environment production"
	$(PY) tools/apikeys.py $(ARGS)

lint: venv ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv ## mypy (strict on the shared package)
	$(VENV)/bin/mypy

unit: venv ## Unit tier
	$(VENV)/bin/pytest tests/unit -q

integration: venv ## Integration tier (handlers against the embedded AWS)
	$(VENV)/bin/pytest tests/integration -q -n 2

e2e: venv ## End-to-end tier (the local stack over HTTP)
	$(VENV)/bin/pytest tests/e2e -q

stripe-emulator-test: venv ## The Stripe emulator's own tests (official SDK, validated against Stripe's spec)
	$(VENV)/bin/pytest tests/stripe_emulator -q -n 2

template-test: venv tools ## Template tier: sam validate --lint, sam build, checkov, invariants
	$(VENV)/bin/pytest tests/template -q

test: venv tools lint typecheck ## Every tier, from scratch
	$(VENV)/bin/pytest tests -q -n 2

flexprice-contract: venv ## Regenerate tests/reference/flexprice/contract.json: make flexprice-contract SPEC=path/to/flexprice-openapi.json
	@test -n "$(SPEC)" || { echo "usage: make flexprice-contract SPEC=path/to/flexprice-openapi.json" >&2; exit 2; }
	$(PY) tools/flexprice_contract.py --spec "$(SPEC)"

demo: venv ## The seven phases of the Stripe workflow against the local stack (started if not running)
	$(PY) tools/demo.py

bench-coldstart: venv ## Import + init time of every function (median of 5, ms)
	$(PY) bench/coldstart.py

bench-ingest: venv ## Bulk and single-event ingestion: events/s, write units, hot-customer keys, BatchWriteItem ceiling, usage reads
	$(PY) bench/ingest.py

bench-invoicing: venv ## 1,000 subscriptions, one scheduler run: invoices/minute, DynamoDB requests per invoice
	$(PY) bench/invoicing.py

bench-webhooks: venv ## Stripe webhooks: intake median/p95/p99 in-process (warm), processor webhooks/s on the local stack
	$(PY) bench/webhooks.py

bench-sync: venv ## 500 finalized invoices synced to the Stripe emulator: invoices/minute, Stripe calls, duplicates
	$(PY) bench/sync.py

bench-load: venv ## Mixed traffic, 8 clients for 60 s on the local stack: req/s, p50/p99 per route, 5xx, exactly-once audit
	$(PY) bench/load.py $(ARGS)

clean: ## Remove venvs and build output
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
