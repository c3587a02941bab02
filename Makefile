# Two commands (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup postgres demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# PostgreSQL's server binaries (initdb, pg_ctl) for the tests and benchmarks on PostgreSQL
# (tests/postgres.py starts a throw-away cluster); the demo does not need them. Installed from the
# distribution's packages when run as root where apt-get exists; otherwise one line names what to install.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "PostgreSQL not found: apt-get install -y postgresql"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } || exit 1; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "error: apt-get installed postgresql but no initdb under /usr/lib/postgresql/*/bin"; exit 1; }; \
	else \
	  echo "error: PostgreSQL is not installed (the tests start a throw-away cluster with initdb and pg_ctl): install the package postgresql (Debian/Ubuntu: sudo apt-get install -y postgresql; Fedora: sudo dnf install -y postgresql-server), or run make as root"; \
	  exit 1; \
	fi

demo: setup
	$(BIN)/python scripts/demo.py

test: setup postgres
	$(BIN)/python -m pytest

bench: setup postgres
	$(BIN)/python bench/bench_lifecycle.py
	$(BIN)/python bench/bench_gate.py
	$(BIN)/python bench/bench_relay.py
	$(BIN)/python bench/bench_serve.py
	$(BIN)/python bench/bench_postgres.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
