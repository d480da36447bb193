# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test

.PHONY: run test check install system-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `make run` installs only what the hub needs; `make test` adds the test tools.
$(RUN_STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/proctorhub run --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

system-deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

test: $(STAMP) system-deps
	$(BIN)/ruff check server tests load_tests
	$(BIN)/pytest -q

PURE_CORES := server/protocol.py server/auth.py server/errors.py server/config.py server/hubs/timers.py \
	server/hubs/ratelimit.py server/hms/tokens.py server/allocation/planner.py server/allocation/planner_proctors.py

check: $(STAMP)
	$(BIN)/ruff format --check server tests load_tests
	$(BIN)/ruff check server tests load_tests
	$(BIN)/mypy $(PURE_CORES)

clean:
	rm -rf $(VENV) .pytest_cache
