# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check install lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/proctorhub run --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

system-deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

test: $(STAMP) system-deps
	$(BIN)/ruff check server tests load_tests
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/ruff format --check server tests load_tests
	$(BIN)/ruff check server tests load_tests

clean:
	rm -rf $(VENV) .pytest_cache
