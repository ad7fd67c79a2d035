# searchkit: `make demo` (install, build the default index if missing or stale, run a query) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INDEX ?= indexes/homedepot
CATALOG ?= catalog/homedepot-products.parquet
QUERY ?= swag light kit

.PHONY: install demo index test bench browser clean-index

$(BIN)/searchkit: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/searchkit

index: install
	$(BIN)/searchkit build-index $(CATALOG) --out $(INDEX) --if-stale

demo: index
	$(BIN)/searchkit query "$(QUERY)" --index $(INDEX)

# The browser test drives Debian's chromium; install it when missing and we may (root with apt-get).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium not installed; the browser test will be skipped"

test: install browser
	$(BIN)/ruff check searchkit tests benchmarks research scripts
	$(BIN)/python -m pytest -q

bench: index
	$(BIN)/python benchmarks/bench_query.py --index $(INDEX)

clean-index:
	rm -rf $(INDEX)
