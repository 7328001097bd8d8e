# `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck docs unit redis-server chromium bench clean lua

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the test suite starts its own redis-server processes; install the binary if missing
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from the OS packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# the dashboard's browser test drives Debian's headless Chromium; install it if missing
chromium:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "installing chromium and chromium-driver from the OS packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check taskq tests examples bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict taskq
	$(VENV)/bin/mypy --strict tests/typing

unit: $(STAMP) redis-server chromium
	$(VENV)/bin/pytest -q

# the API reference from the docstrings (pdoc), into docs/api/; any warning fails it
docs: $(STAMP)
	rm -rf docs/api
	PDOC_ALLOW_EXEC=1 $(PY) -W error -m pdoc taskq taskq.testing taskq.otel taskq.web -o docs/api

test: lint typecheck docs unit

# every framework through the same workloads (installs the peers into bench/.peers-venv once)
bench: $(STAMP) redis-server
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# rewrite the standalone Lua scripts for foreign producers from taskq/lua/ops + lib
lua: $(STAMP)
	$(PY) -c "from taskq.broker.scripts import main; main()"
