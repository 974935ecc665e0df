.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=
# Python keeps compiled bytecode: a machine that sets PYTHONDONTWRITEBYTECODE (CI images often do) would
# otherwise compile every module from source in every process (each service, CLI call and test worker).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help bootstrap dev test test-unit lint format bench asyncapi architecture images

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

bootstrap: ## Install uv, ffmpeg (Debian) and the workspace
	@./scripts/bootstrap.sh

dev: ## Start nats-server, moto S3, SQLite and all services on loopback (Ctrl-C stops)
	@MPR_BOOTSTRAP_POSTGRES=0 ./scripts/bootstrap.sh
	$(UV) run mpr-dev

test: bootstrap ## Install everything and run all tests (real servers on random ports; 4 test processes, a file each: many tests wait on servers, so 4 keep 2 cores busy)
	$(UV) run pytest -n 4 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-unit: bootstrap ## In-process tests and deployment checks (no nats-server, S3 server or service process; ~1.5 min)
	$(UV) run pytest -m "not system" $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: bootstrap ## ruff check + format check + mypy (types)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: bootstrap ## ruff format + autofix
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

asyncapi: bootstrap ## Regenerate docs/asyncapi.json (the NATS contract) from the code
	$(UV) run python -m mpr_common.asyncapi > docs/asyncapi.json

architecture: bootstrap ## Regenerate the generated tables of docs/architecture.md from the code
	$(UV) run python -m mpr_common.architecture --write docs/architecture.md

SERVICES := api catalog scanner transcoder
IMAGE_TAG ?= 0.1.0
images: ## Build the four service images (mpr-<service>:$(IMAGE_TAG)) from the one Dockerfile
	@for svc in $(SERVICES); do \
	  docker build --build-arg SERVICE=$$svc -t mpr-$$svc:$(IMAGE_TAG) . || exit 1; \
	done

bench: bootstrap ## Benchmarks (ratios) into docs/benchmarks.md
	$(UV) run python -m bench

.PHONY: bench-leader-kill
bench-leader-kill: bootstrap ## Exactly once under leader kills: 20 rounds of kill -9 of a JetStream leader (3-node cluster), duplicates and losses counted
	$(UV) run python -m bench.leader_kill --rounds 20
