# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit fuzz bench install clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Start API + worker (and an embedded Redis when the configured one is unreachable); Ctrl-C stops all.
run: $(STAMP)
	$(BIN)/python -m server.launcher

## Lint, type check and every test (each test run starts its own Redis on a free port).
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

## Schemathesis against the service's own OpenAPI document, on a stack it starts itself
## (`make test` runs the same with 25 examples per operation; FUZZ_EXAMPLES=2000 make fuzz for more).
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py --timeout=900

## Load test over HTTP against a stack it starts itself; prints JSON.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tmp .pytest_cache .mypy_cache .ruff_cache
