# vectorlane: `make run` starts the system, `make test` runs the whole suite. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := client-ts/node_modules/.installed
AZURITE_STAMP := tests/azurite/node_modules/.installed
RUST_STAMP := client-rs/target/.debian-packages
# The Rust client builds offline from Debian's packaged crate sources (crates.io is not reachable here) with
# Debian's toolchain, named by path: a rustup toolchain earlier on PATH cannot read this Cargo.lock.
RUST_PACKAGES := rustc cargo protobuf-compiler librust-h2-dev librust-prost-dev librust-prost-build-dev \
	librust-prost-types-dev librust-tokio-dev librust-serde-json-dev librust-thiserror-dev librust-bytes-dev \
	librust-http-dev librust-base64-dev librust-tokio-rustls-dev librust-rustls-dev librust-rustls-pemfile-dev
CARGO := PATH=/usr/bin:$$PATH /usr/bin/cargo
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.DEFAULT_GOAL := help
.PHONY: help install run run-s3 run-embed run-store test test-rust lint stress test-fast parity bench bench-quick bench-storage bench-serving bench-scale bench-filters bench-text bench-10m protos settings-table check-protos clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml client/pyproject.toml contract/pyproject.toml constraints.txt
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  echo "installing python3-venv"; apt-get update && apt-get install -y python3-venv; fi
	@command -v openssl >/dev/null || { echo "installing openssl (the TLS tests make certificates with it)"; \
	  apt-get update && apt-get install -y openssl; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ./contract -e './client[full]' -e '.[all,test,dev]'
	@touch $(STAMP)

# The TypeScript client's npm dependencies, from its lockfile (Node.js and npm from Debian when missing).
$(NPM_STAMP): client-ts/package.json client-ts/package-lock.json
	@command -v npm >/dev/null || { echo "installing nodejs and npm"; apt-get update && apt-get install -y nodejs npm; }
	cd client-ts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Azure Blob Storage's emulator (Azurite) for the tests of tables on az://, from its lockfile.
$(AZURITE_STAMP): tests/azurite/package.json tests/azurite/package-lock.json
	@command -v npm >/dev/null || { echo "installing nodejs and npm"; apt-get update && apt-get install -y nodejs npm; }
	cd tests/azurite && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The Rust client's toolchain and crates, from Debian.
$(RUST_STAMP): client-rs/Cargo.toml client-rs/Cargo.lock
	@dpkg -s $(RUST_PACKAGES) >/dev/null 2>&1 || { echo "installing Debian's Rust toolchain and crates"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(RUST_PACKAGES); }
	@mkdir -p client-rs/target && touch $@

install: $(STAMP) $(NPM_STAMP) $(AZURITE_STAMP) $(RUST_STAMP) ## create .venv and install vectorlane with its test and dev tools (and the npm packages: client-ts's, Azurite; Debian's Rust crates)

run: $(STAMP) ## start the system: embed service on :50052, then the store on :50051 (data: VECTORLANE_DATA_DIR or ./data)
	$(BIN)/python scripts/run_system.py

run-s3: $(STAMP) ## `make run` with the tables on a local S3-compatible server (moto on :9000, in memory) started beside
	$(BIN)/python scripts/run_system.py --s3

run-embed: $(STAMP) ## start only the embed service (:50052)
	$(BIN)/vectorlane-embed

run-store: $(STAMP) ## start only the store service (:50051), using the embed service at 127.0.0.1:50052
	$(BIN)/vectorlane-store

test: $(STAMP) $(NPM_STAMP) $(AZURITE_STAMP) $(RUST_STAMP) lint ## run the whole test suite: lint, Python (pytest), the TypeScript client (node --test) and the Rust client (cargo test)
	$(BIN)/pytest -q tests
	VECTORLANE_TEST_STORAGE=s3 $(BIN)/pytest -q -p no:cacheprovider tests/lancedb_compat  # the conformance suite again, tables on S3
	cd client-ts && VECTORLANE_PYTHON=$(CURDIR)/$(BIN)/python npm test --silent
	$(MAKE) --no-print-directory test-rust

test-rust: $(STAMP) $(RUST_STAMP) ## build the Rust client (offline, Debian's crates) and run its tests against real services
	cd client-rs && VECTORLANE_PYTHON=$(CURDIR)/$(BIN)/python $(CARGO) test --offline --quiet

lint: $(STAMP) ## ruff over the tree, mypy over the services and the client (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy store_service embed_service rpc_common
	@mkdir -p build/typecheck && ln -sfn ../../client build/typecheck/vectorlane \
		&& ln -sfn ../../contract build/typecheck/vectorlane_contract  # the packages' import names
	MYPYPATH=build/typecheck $(BIN)/mypy -p vectorlane -p vectorlane_contract

stress: $(STAMP) $(AZURITE_STAMP) ## long suites: 25 kill -9 trials, 500 fuzz examples per RPC, 5-min soak, the conformance suite on Azurite
	VECTORLANE_CRASH_TRIALS=25 VECTORLANE_FUZZ_EXAMPLES=500 VECTORLANE_FUZZ_RANDOM=1 VECTORLANE_SOAK_SECONDS=300 \
		$(BIN)/pytest -q -s tests/reliability tests/test_fuzz.py tests/test_bad_inputs.py
	VECTORLANE_TEST_STORAGE=az $(BIN)/pytest -q -p no:cacheprovider tests/lancedb_compat  # tables on Azure's emulator

test-fast: $(STAMP) ## the suite without the tests marked slow
	$(BIN)/pytest -q -m 'not slow' tests

parity: $(STAMP) ## LanceDB's own tests under the installed lancedb, then against vectorlane (imports and connect changed only), compared (LANCEDB_SRC=<LanceDB checkout or git dir>)
	@test -n "$(LANCEDB_SRC)" || { echo "give LANCEDB_SRC=<a LanceDB checkout, or its bare git directory>"; exit 2; }
	$(BIN)/python scripts/lancedb_parity.py --under-lancedb --lancedb-src "$(LANCEDB_SRC)" --keep build/parity-lancedb >/dev/null || true
	$(BIN)/python scripts/lancedb_parity.py --lancedb-src "$(LANCEDB_SRC)" --against build/parity-lancedb/junit.xml

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test,dev,bench]'
	@touch $@

bench: $(VENV)/.bench-installed ## the performance report vs FAISS, LanceDB, Chroma (about an hour): benchmarks/results/REPORT.md
	$(BIN)/python -m benchmarks

bench-quick: $(VENV)/.bench-installed ## a small run of every benchmark (a few minutes), report in /tmp/vectorlane-bench
	$(BIN)/python -m benchmarks --quick --out /tmp/vectorlane-bench

bench-storage: $(VENV)/.bench-installed ## the store-on-Lance goals at 1M rows (RSS, first search after an add, start, ingest vs fsync floor, disk after churn + optimize; ~15 min)
	$(BIN)/python -m benchmarks.storage --rows 1000000

bench-10m: $(VENV)/.bench-installed ## 10M x 384-d rows (15 GB of vectors): ingest, IVF_PQ build, start, p50/recall, RSS and floors beside LanceDB (~37 min, 32 GB of disk)
	$(BIN)/python -m benchmarks.large --rows 10000000 --optimize

bench-serving: $(VENV)/.bench-installed ## the serving path at 1M x 384-d beside an empty gRPC call, FAISS in-process, a floor server, LanceDB and pylance (~10 min)
	$(BIN)/python -m benchmarks.serving --rows 1000000

bench-scale: $(VENV)/.bench-installed ## tables on S3 (a local moto server) and 1-3 store replicas vs a local disk, 1M rows: ingest, QPS, visibility across replicas, cold start (~20 min)
	$(BIN)/python -m benchmarks.scale --rows 1000000

bench-filters: $(VENV)/.bench-installed ## filter evaluation (Arrow vs Lance's SQL) and prefiltered search at 10 % beside LanceDB, 1M rows
	$(BIN)/python -m benchmarks.filters --rows 1000000

bench-text: $(VENV)/.bench-installed ## full-text and hybrid search beside LanceDB embedded, and cross-encoder reranking through the embed service vs in-process, 1M short texts (~15 min)
	$(BIN)/python -m benchmarks.text_search --rows 1000000

protos: $(STAMP) $(NPM_STAMP) ## regenerate the stubs from protos/: Python into contract/, TypeScript into client-ts/src/gen/
	$(BIN)/python scripts/gen_protos.py

settings-table: $(STAMP) ## regenerate the README's table of every setting
	$(BIN)/python scripts/settings_table.py --write

clean: ## remove the virtual environment, client-ts's packages and build, the Rust build, and caches
	rm -rf $(VENV) .pytest_cache build *.egg-info client-ts/node_modules client-ts/dist client-rs/target
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
