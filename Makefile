# The two commands of the README: `make run` (the local demo on the embedded default) and
# `make test`. Both bootstrap .venv on first use.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Python 3.12 is Lambda's runtime; 3.11+ works locally. pyenv's shims fail for versions that are
# installed but not selected, so its version folders are probed directly too.
PYTHON_CANDIDATES := python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3.13 python3.11 python3
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $(p))))
STAMP := $(VENV)/.installed

.PHONY: run serve test lint typecheck unit cfn-lint bench clean

$(STAMP): pyproject.toml layers/shared/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (3.12 recommended)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m local.stack demo

serve: $(STAMP)
	$(BIN)/python -m local.stack serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck cfn-lint unit

bench: $(STAMP)
	$(BIN)/python -m bench.ingest_worst_body
	$(BIN)/python -m bench.ingest_throughput
	$(BIN)/python -m bench.ingest_parse_pack
	$(BIN)/python -m bench.hubspot_client
	$(BIN)/python -m bench.churn
	$(BIN)/python -m bench.backlog_throughput
	BENCH_MERGED_FIRST=1 BENCH_PER_REQUEST=100 $(BIN)/python -m bench.backlog_throughput
	$(BIN)/python -m bench.end_to_end
	$(BIN)/python -m bench.pipeline
	BENCH_LANES=4 $(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.reconcile
	$(BIN)/python -m bench.field_rules
	$(BIN)/python -m bench.lists
	$(BIN)/python -m bench.local_backlog
	$(BIN)/python -m bench.aws_cost

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .aws-sam
