# Hearth: `make setup` then `make up`. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
VENV_TRITON := .venv-triton
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
HEARTH := $(VENV)/bin/hearth
PYTEST_ARGS ?=
# llama-cpp-python is compiled from its sdist: a CPU build without its tools, tests and multimodal
# library. A GPU box: `make setup LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"` (after `uv cache clean llama-cpp-python`).
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(VENV_TRITON)/.installed ## Create both environments and install everything
	@echo "setup done: now run 'make up'"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make setup PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(UV) pip install --python $(PY) --quiet -e '.[dev]'
	@touch $@

# Triton and model dependencies live in their own venv, as production keeps them in their own
# container: the python backend needs numpy<2 and services never import model libraries.
$(VENV_TRITON)/.installed: infra/triton/requirements.txt infra/triton/overrides.txt $(VENV)/.installed
	test -x $(VENV_TRITON)/bin/python || $(PYTHON) -m venv $(VENV_TRITON)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(UV) pip install --python $(VENV_TRITON)/bin/python --quiet -r infra/triton/requirements.txt \
		--override infra/triton/overrides.txt
	@touch $@

up: setup ## Start the whole stack (waits until healthy, prints the URLs)
	@$(HEARTH) up

down: ## Stop the stack (data is kept)
	@$(HEARTH) down

status: ## Show every component's health
	@$(HEARTH) status

test: setup ## Run lint, type checks and the whole test suite (starts its own stack)
	$(MAKE) lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## Fast unit tests only
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: ## ruff, mypy on shared/, compose validation, AsyncAPI document freshness
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m shared.asyncapi --check
	bash infra/compose/validate.sh

format: ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup ## Print performance figures against the bare engines (needs `make up`)
	$(PY) bench/bench_up.py
	$(PY) bench/bench_bus.py
	$(PY) bench/bench_gateway.py
	$(PY) -m bench.bench_ocr_gateway
	$(PY) -m bench.bench_ocr_batching
	$(PY) -m bench.bench_ocr_variants
	$(PY) -m bench.bench_workflows
	$(PY) -m bench.bench_telemetry

clean: ## Remove the environments (keeps var/, the data)
	rm -rf $(VENV) $(VENV_TRITON)

.PHONY: help setup up down status test test-unit lint format bench clean
