# Two commands (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/bench_lifecycle.py
	$(BIN)/python bench/bench_gate.py
	$(BIN)/python bench/bench_relay.py
	$(BIN)/python bench/bench_serve.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
