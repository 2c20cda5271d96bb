# kequn — the two commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
CUSTOMERS ?= 100000
UI_PORT ?= 3000

.PHONY: demo test lint ui install clean bench spark screenshots bytecode

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The project's bytecode, compiled where a first run would write it: where
# PYTHONDONTWRITEBYTECODE is set, every command would otherwise compile ~150 modules.
PACKAGES := $(patsubst %/__init__.py,%,$(filter-out tests/__init__.py,$(wildcard */__init__.py)))
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q $(PACKAGES) > /dev/null

# The optional Spark engine (pyspark); `make test` installs it when KEQUN_TEST_SPARK is set (CI).
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $(SPARK_STAMP)

spark: $(SPARK_STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster_project/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster_project/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: bytecode $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/kequn demo --customers $(CUSTOMERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint $(DAGSTER_HOME)/dagster.yaml $(if $(KEQUN_TEST_SPARK),$(SPARK_STAMP))
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The web server and the daemon (schedules, sensors): what `dagster dev` runs, without its
# deprecation notice; stopping the web server (Ctrl-C) stops the daemon too.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster-daemon run -m dagster_project.definitions & daemon=$$!; \
	trap 'kill $$daemon 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dagster-webserver -h 127.0.0.1 -p $(UI_PORT) -m dagster_project.definitions

screenshots: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python docs/screenshots.py --out docs/img

bench: bytecode
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf data/warehouse.duckdb data/serving.sqlite data/dagster_home
