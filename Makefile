# coderunner — every target a developer or operator reaches for. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv stack-up stack-down stack-status check lint format proto build test test-unit run bench bench-dind clean \
	env validate up down restart logs status health db-shell db-backup db-restore db-migrate replay \
	runtime-images dind-image

# Where the operations act: `local` (the local stack and a background `coderunner serve`) or
# `compose` (docker-compose.yml). Example: make up DEPLOY=compose
DEPLOY ?= local
COMPOSE ?= docker compose
CODERUNNER := $(BIN)/coderunner

help: ## List the targets
	@echo "usage: make TARGET [DEPLOY=local|compose]   (operations act on the local stack by default)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

# Smaller runs, e.g. BENCH_EXECUTION_ARGS="--runs 5" BENCH_PROJECTION_ARGS="--events 20000"
BENCH_EXECUTION_ARGS ?=
BENCH_PROJECTION_ARGS ?=

bench: venv stack-up ## Benchmarks: executions vs bare docker SDK; projection vs bare aiokafka+COPY
	$(BIN)/python -m bench.execution $(BENCH_EXECUTION_ARGS)
	$(BIN)/python -m bench.projection $(BENCH_PROJECTION_ARGS)

bench-dind: venv stack-up ## The execution benchmark with the sandbox engine a DinD daemon over TLS (production's topology)
	bash bench/dind.sh $(BENCH_EXECUTION_ARGS)

clean: ## Remove the virtualenv, caches and build/ (the stack's state in .stack/ and backups/ stay)
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --- Operations: the same targets for the local stack and for the compose deployment ---------
ENV_FILE ?= .env
BACKUP_DIR ?= backups
FROM ?= kafka
RUNTIME_IMAGES_DIR ?= $(CURDIR)/build/runtime-images
RUNTIMES ?=

env: ## Write .env (or ENV_FILE=path) from .env.example, every setting with its default; never overwrites
	@if [ -e "$(ENV_FILE)" ]; then echo "env: $(ENV_FILE) exists; not overwritten (compare with .env.example)"; \
	else cp .env.example "$(ENV_FILE)" && echo "env: wrote $(ENV_FILE); edit it, then: make validate"; fi

validate: venv ## Check every setting and reach Kafka, PostgreSQL and Docker; each problem with its fix
	$(CODERUNNER) config validate --check-connectivity

runtime-images: ## Save the runtime images as tars for the DinD daemon to load (RUNTIMES="python go": some)
	bash scripts/export-runtime-images.sh $(RUNTIME_IMAGES_DIR) $(RUNTIMES)

dind-image: ## Build the Docker-in-Docker daemon image (coderunner/dind:local) on the local base
	DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=coderunner/base:bookworm \
	  -t coderunner/dind:local images/dind

ifeq ($(DEPLOY),compose)  # the same targets as below, documented there
# RUNTIME_IMAGES_DIR is read by docker-compose.yml too: the daemon loads the tars from there.
export RUNTIME_IMAGES_DIR

up: runtime-images
	$(COMPOSE) up -d --build --wait --wait-timeout $${UP_TIMEOUT:-600}

down:
	$(COMPOSE) down

restart:
	$(COMPOSE) restart api projector worker

logs:
	$(COMPOSE) logs --tail=$${LINES:-100} $(if $(filter 0,$(FOLLOW)),,--follow)

status:
	$(COMPOSE) ps

health:
	$(COMPOSE) exec -T api coderunner health

db-shell:  # -T (no terminal) when stdin is not one: `echo 'SELECT 1;' | make db-shell` works
	$(COMPOSE) exec $$([ -t 0 ] || echo -T) postgres psql -U coderunner coderunner

db-backup:  # written to FILE.partial and renamed: a failed dump never leaves a backup-looking file
	@out=$${BACKUP:-$(BACKUP_DIR)/coderunner-$$(date -u +%Y%m%dT%H%M%SZ).dump}; mkdir -p "$$(dirname "$$out")"; \
	if $(COMPOSE) exec -T postgres pg_dump -U coderunner --format=custom --no-owner coderunner > "$$out.partial"; \
	then mv "$$out.partial" "$$out"; echo "db: backup written to $$out ($$(stat -c %s "$$out") bytes)"; \
	else rm -f "$$out.partial"; echo "db-backup: pg_dump failed"; exit 1; fi

db-restore:
	@test -n "$(BACKUP)" || { echo "db-restore: say which file: make db-restore BACKUP=backups/....dump"; exit 2; }
	@test -f "$(BACKUP)" || { echo "db-restore: no backup file at $(BACKUP)"; exit 2; }
	@[ -n "$(YES)" ] || { [ -t 0 ] && read -r -p "Replace everything in the compose database with $(BACKUP)? [y/N] " a \
	  && [ "$$a" = y -o "$$a" = yes ]; } || { echo "db-restore: not confirmed (YES=1 skips the question)"; exit 1; }
	$(COMPOSE) exec -T postgres pg_restore -U coderunner --dbname=coderunner --clean --if-exists \
	  --no-owner --single-transaction --exit-on-error < $(BACKUP)

db-migrate:
	$(COMPOSE) exec -T api coderunner db migrate

replay:
	$(COMPOSE) exec -T api coderunner projections rebuild --from $(FROM)
else
up: venv stack-up ## Start everything: local stack + background service (DEPLOY=compose: the compose deployment)
	@bash scripts/service.sh start

down: ## Stop the service and its backing services (data is kept)
	@bash scripts/service.sh stop
	@bash scripts/stack.sh down

restart: venv ## Restart the service (graceful: running executions finish), not its backing services
	@bash scripts/service.sh restart

logs: ## Follow the service's logs (FOLLOW=0: print the last LINES and return)
	@bash scripts/service.sh logs

status: venv ## What runs, and the service's readiness
	@bash scripts/stack.sh status; bash scripts/service.sh status

health: venv ## /health and /ready of the running service; exit 1 unless every dependency answers
	@$(CODERUNNER) health

db-shell: venv ## psql on the service's database
	@$(CODERUNNER) db shell

db-backup: venv ## pg_dump (custom format) to backups/coderunner-TIME.dump (or BACKUP=file)
	@$(CODERUNNER) db backup --output $${BACKUP:-$(BACKUP_DIR)/coderunner-$$(date -u +%Y%m%dT%H%M%SZ).dump}

db-restore: venv ## Replace the database's contents with BACKUP=file, in one transaction
	@test -n "$(BACKUP)" || { echo "db-restore: say which file: make db-restore BACKUP=backups/....dump"; exit 2; }
	@$(CODERUNNER) db restore $(BACKUP) $(if $(YES),--yes)

db-migrate: venv ## Apply pending schema migrations (the service also does at start)
	@$(CODERUNNER) db migrate

replay: venv ## Rebuild the read models from the topics (FROM=archive: from the events table)
	@$(CODERUNNER) projections rebuild --from $(FROM)
endif
