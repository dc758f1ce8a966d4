# coderunner — every target a developer or operator reaches for. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv stack-up stack-down stack-status check lint format proto build test test-unit run bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@echo "venv: creating $(VENV) with $(PYTHON) and installing the project"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP) ## Create the virtualenv and install the project with its dev tools

stack-up: ## Install (first time) and start Docker, PostgreSQL, Kafka and the runtime images
	@bash scripts/stack.sh up

stack-down: ## Stop what the stack script started (data and images are kept)
	@bash scripts/stack.sh down

stack-status: ## Show which parts of the local stack run
	@bash scripts/stack.sh status

check: venv ## Lint, format check and type check
	$(BIN)/ruff check coderunner tests bench
	$(BIN)/ruff format --check coderunner tests bench
	$(BIN)/mypy

format: venv ## Apply the formatter and safe lint fixes
	$(BIN)/ruff format coderunner tests bench
	$(BIN)/ruff check --fix coderunner tests bench

proto: venv ## Generate the gRPC code in coderunner/proto/ from proto/ (a unit test checks it is current)
	$(BIN)/python -m coderunner.proto.codegen

# The local stack has no registry: build FROM the locally built Debian runtime image (classic builder,
# which resolves FROM against local images). Production builds keep the Dockerfile's default base.
IMAGE ?= coderunner:local
BUILD_BASE_IMAGE ?= coderunner/runtime-python:bookworm
# Extra CA certificates (a TLS-intercepting proxy's) for pip in the build stage only.
EXTRA_CA_FILES ?= $(wildcard /usr/local/share/ca-certificates/*.crt)

build: ## Build the service image (coderunner:local) on the local Debian base (needs `make stack-up` once)
	DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=$(BUILD_BASE_IMAGE) \
	  --build-arg EXTRA_CA_CERTS="$$(cat /dev/null $(EXTRA_CA_FILES))" -t $(IMAGE) .

test-unit: venv ## Only the tests that need no service (seconds)
	$(BIN)/pytest tests/unit

test: venv stack-up check ## Everything: set-up, stack, checks, the whole suite against the real stack
	$(BIN)/pytest

run: venv stack-up ## Run the service in the foreground against the local stack (Ctrl-C stops it)
	$(BIN)/coderunner serve

bench: venv stack-up ## Benchmarks: executions vs bare docker SDK; projection vs bare aiokafka+COPY
	$(BIN)/python -m bench.execution
	$(BIN)/python -m bench.projection

clean: ## Remove the virtualenv and caches (the stack's state in .stack/ stays)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
