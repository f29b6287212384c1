# make run: set up and serve the gateway on the embedded default (SQLite, in-process queue).
# make test: set up, lint and type-check gateway/ (ruff, mypy), then run the whole suite (SQLite always;
# PostgreSQL and Redis when their URLs are set).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check-flows clean bench faults translations

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app flows check > /dev/null
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

test: $(STAMP)
	$(BIN)/ruff check gateway
	$(BIN)/mypy gateway
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks (PostgreSQL + Redis on 127.0.0.1; never part of `make test`). BENCH_FULL=1 adds 100,000.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(BENCH_FULL),--full)

# Fault run: kills, restarts and provider errors on private PostgreSQL + Redis it starts itself
# (needs redis-server and the PostgreSQL server binaries); prints one table, exits 1 on a loss.
faults: $(STAMP)
	$(BIN)/python -m bench.faults $(if $(FAULTS_SMALL),--small)

# The console's translations (docs/console-and-api.md, "Translating the console"): collect the texts
# marked in gateway/web/console into messages.pot, merge them into each language's messages.po (new
# ones empty, changed ones fuzzy), and compile the .mo files (the app also compiles them when it starts).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -o gateway/translations/messages.pot --project="sms-gateway console" \
		--copyright-holder="sms-gateway" --no-location --sort-output .
	$(BIN)/pybabel update -i gateway/translations/messages.pot -d gateway/translations --no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d gateway/translations --statistics

check-flows: $(STAMP)
	$(BIN)/flask --app app flows check

clean:
	rm -rf $(VENV) instance/gateway.db*
