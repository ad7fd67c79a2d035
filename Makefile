# searchkit: `make demo` (install what serving needs, build the default index if missing or stale, run a query) and
# `make test` (install the training and test extras too, then lint, type-check and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INDEX ?= indexes/homedepot
CATALOG ?= catalog/homedepot-products.csv.gz
QUERY ?= swag light kit

.PHONY: install install-dev demo index test bench bench-peers browser clean-index

# the base install: build, query and serve with the shipped model, no torch (its graphs come from models/*/onnx)
$(VENV)/.base: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# training, tests, the Ray and OpenSearch extras and the linters
$(VENV)/.dev: $(VENV)/.base
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.base

install-dev: $(VENV)/.dev

# the build measures HNSW recall on query-like texts cut from titles (harder than real queries); real shopper
# queries (the bundled pairs' validation split, never the test split) set the search effort actually needed
index: install
	$(BIN)/searchkit build-index $(CATALOG) --out $(INDEX) --if-stale
	$(BIN)/searchkit calibrate --index $(INDEX)

demo: index
	$(BIN)/searchkit query "$(QUERY)" --index $(INDEX)

# The browser test drives Debian's chromium; install it when missing and we may (root with apt-get).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium not installed; the browser test will be skipped"

test: install-dev browser
	$(BIN)/ruff check searchkit tests benchmarks research scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: index
	$(BIN)/python benchmarks/bench_query.py --index $(INDEX)

# the engines a shop would pick instead; one this machine's package index lacks is reported as not run
# the peers (txtai, LanceDB, Chroma, bm25s) in a venv of their own, beside searchkit with its training extra
PEERS_VENV ?= .venv-peers
$(PEERS_VENV)/.peers: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q -e '.[train]' txtai lancedb chromadb 'torch==2.13.0'
	touch $@

bench-peers: $(PEERS_VENV)/.peers
	$(PEERS_VENV)/bin/python benchmarks/bench_peers.py

clean-index:
	rm -rf $(INDEX)
