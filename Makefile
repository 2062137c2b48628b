# SMSGate: `make run` starts the server, `make test` runs the suite. Only python3 (3.11+) is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: run test sdk-test chaos screenshots lint format bench migrate migration clean help

help:
	@echo "make run     set up .venv, migrate ./data/smsgate.db and serve on http://127.0.0.1:8000"
	@echo "make test    run the test suite (SQLite; PostgreSQL with SMSGATE_TEST_DATABASE_URL)"
	@echo "make sdk-test  both official SDKs against a live server (PyPI: its own live tests; npm)"
	@echo "make chaos   kill the server, its database connections, a webhook receiver; JSON figures"
	@echo "make screenshots  the browser test, saving every page into docs/screenshots/"
	@echo "make lint    ruff + mypy (--strict on smsgate, looser on tests)"
	@echo "make format  ruff format + autofix"
	@echo "make bench   run the benchmarks in bench/ (prints JSON)"

# what the server needs (`make run`); the test and lint tools come on top (`make test`)
$(RUNTIME): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SMSGate needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/smsgate serve

migrate: $(RUNTIME)
	$(BIN)/smsgate migrate

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

sdk-test: $(STAMP)
	$(BIN)/python tests/sdk_live.py
	$(BIN)/python -m pytest -ra tests/compat/test_js_sdk.py

chaos: $(STAMP)
	@$(BIN)/python -m tests.chaos

screenshots: $(STAMP)
	SMSGATE_TEST_SCREENSHOTS=1 $(BIN)/python -m pytest tests/dashboard/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff format --check smsgate tests bench
	$(BIN)/ruff check smsgate tests bench
	$(BIN)/mypy smsgate tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_thin_adapters.py

format: $(STAMP)
	$(BIN)/ruff format smsgate tests bench
	$(BIN)/ruff check --fix smsgate tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

migration: $(STAMP)
	$(BIN)/smsgate migrate
	$(BIN)/python -c 'import sys; from alembic import command; from smsgate.config import get_settings; from smsgate.storage.migrate import alembic_config; command.revision(alembic_config(get_settings()), message=sys.argv[1], autogenerate=True)' "$(MSG)"
	$(BIN)/ruff format smsgate/storage/migrations/versions

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
