# acr-webhook: the two commands are `make run` (the local stack) and `make test` (every test).
# Every install step a fresh machine needs lives here (rustup target, npm ci, apt, pip), and
# each one is skipped when already satisfied, so a warm run goes straight to cargo.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# A cargo target directory outside the checkout is reused when CARGO_TARGET_DIR points to one
# (CI does this); the component is then copied to where spin.toml expects it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_BUILT := $(TARGET_DIR)/wasm32-wasip1/release/acr_webhook.wasm
WASM := target/wasm32-wasip1/release/acr_webhook.wasm
HOST := $(TARGET_DIR)/host/acr-webhook

.PHONY: help setup-rust setup-binaryen setup-node setup-test-peers setup-browser setup-python wasm host build run test lint vectors bench

help:
	@echo "make run    build everything and run the local stack (store + acr-webhook up)"
	@echo "make test   run every test: lint, unit tests, signature oracle, end-to-end through the real wasm"

setup-rust:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

setup-node:
	@if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund; fi

# The real Distribution registry (a real sender in the end-to-end tests) and skopeo.
setup-test-peers:
	@if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker-registry skopeo >/dev/null; fi
	@# Debian starts a registry service on :5000 after install; the tests start their own.
	@if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then systemctl stop docker-registry || true; fi

# The page's browser tests (crates/cli/tests/ui.rs): Debian's Chromium, driven by playwright-core
# (package.json), and libfaketime, which gives `acr-webhook up` the seeded events' times.
setup-browser:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium libfaketime >/dev/null; fi

# The official Python SDK, used as the oracle for the signature vectors.
setup-python:
	@python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("azure-cosmos") != "4.17.1")' 2>/dev/null || \
	  python3 -m pip install -q --disable-pip-version-check -r requirements-test.txt

# binaryen's wasm-opt, which shrinks the component (`make wasm`). Where apt-get is missing the
# module is shipped without it, with a note.
setup-binaryen:
	@if ! command -v wasm-opt >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq binaryen >/dev/null; \
	  else echo "note: wasm-opt (binaryen) not found and no apt-get: the component will not be optimized"; fi; fi

# The features rustc's wasm32-wasip1 output uses, which binaryen must be told about (binaryen
# 108, Debian's, enables fewer by default than rustc emits).
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types

# Custom sections the component does not need (scripts/wasm-remove-sections.py): the `wasi`
# crate's own worlds (34 KB), and spin-sdk's description of the whole Spin platform (39 KB), of
# which the component imports only fermyon:spin/variables, described by its own small section
# (src/lib.rs, `spin_variables_world`). What is left describes every import the module has.
WASM_REMOVE_SECTIONS := 'component-type:*rust-wasi-from-crates-io*' 'component-type:*:spin:up@*:platform:*'

# cargo's module without those sections, then `wasm-opt -Oz` (when binaryen is there), into
# $(WASM) where spin.toml expects it. $(WASM).sha256 holds the hashes of the last run's input and
# output and whether wasm-opt ran, so that an unchanged module is not processed again (also when
# $(WASM) is cargo's own file, rewritten in place).
wasm: setup-rust setup-binaryen
	cargo build --target wasm32-wasip1 --release
	@mkdir -p $(dir $(WASM)); \
	mode=$$(command -v wasm-opt >/dev/null && echo wasm-opt || echo no-wasm-opt); \
	in=$$(sha256sum < $(WASM_BUILT) | cut -d' ' -f1); \
	out=$$( [ -f $(WASM) ] && sha256sum < $(WASM) | cut -d' ' -f1 || true); \
	last_in=; last_out=; last_mode=; \
	if [ -f $(WASM).sha256 ]; then read -r last_in last_out last_mode < $(WASM).sha256; fi; \
	if [ "$$last_out" = "$$out" ] && [ "$$last_mode" = "$$mode" ] && \
	   { [ "$$last_in" = "$$in" ] || [ "$(WASM_BUILT)" = "$(WASM)" ]; }; then \
	  echo "$(WASM) is up to date"; \
	else \
	  echo "cargo built $$(stat -c %s $(WASM_BUILT)) bytes"; \
	  python3 scripts/wasm-remove-sections.py $(WASM_BUILT) $(WASM).tmp $(WASM_REMOVE_SECTIONS); \
	  if [ $$mode = wasm-opt ]; then \
	    wasm-opt -Oz $(WASM_OPT_FEATURES) $(WASM).tmp -o $(WASM).opt; mv $(WASM).opt $(WASM).tmp; \
	    echo "wasm-opt -Oz done"; \
	  else echo "note: wasm-opt (binaryen) not installed: the module is not optimized"; fi; \
	  mv $(WASM).tmp $(WASM); \
	  echo "$$in $$(sha256sum < $(WASM) | cut -d' ' -f1) $$mode" > $(WASM).sha256; \
	fi
	@echo "component: $(WASM) $$(stat -c %s $(WASM)) bytes"

host:
	cargo build --profile host -p acr-webhook-cli

build: wasm host

run: setup-node build
	ACR_WEBHOOK_HOST=$(HOST) scripts/run-local.sh

lint: setup-rust
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --release -- -D warnings
	# The fuzz targets and their examples are a workspace of their own (run with nightly by
	# scripts/fuzz.sh); they must still build against the core as it is now.
	cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
	cargo check --manifest-path fuzz/Cargo.toml --all-targets

# The committed vectors must be exactly what the official SDK computes today.
vectors: setup-python
	@tmp=$$(mktemp); python3 scripts/cosmos_signature_vectors.py --out $$tmp; \
	  if diff -q $$tmp tests/vectors/cosmos_signatures.json >/dev/null; then echo "signature vectors: the official SDK agrees with tests/vectors/cosmos_signatures.json"; \
	  else echo "signature vectors differ from what azure-cosmos computes:"; diff $$tmp tests/vectors/cosmos_signatures.json | head -20; rm -f $$tmp; exit 1; fi; rm -f $$tmp

test: setup-node setup-test-peers setup-browser lint vectors wasm
	cargo test --workspace --profile host --no-fail-fast

# The benchmark (documented in BENCHMARKS.md; not part of `make test`): the local stack, the bare
# write vs `acr-webhook up` vs a Node.js + @azure/cosmos receiver at concurrency 1, 8 and 64 (wrk),
# the component's size and instantiation, and signing. The table is printed and kept in
# target/bench/results.md; extra driver options go in BENCH_ARGS (e.g. BENCH_ARGS=--duration=5).
bench: setup-node wasm host
	@if ! command -v wrk >/dev/null || ! command -v wasm-opt >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk binaryen >/dev/null; fi
	@if [ ! -f bench/node-receiver/node_modules/.package-lock.json ] || [ bench/node-receiver/package-lock.json -nt bench/node-receiver/node_modules/.package-lock.json ]; then \
	  cd bench/node-receiver && npm ci --no-audit --no-fund; fi
	cargo build --profile host -p acr-webhook-bench
	@mkdir -p target/bench
	cargo bench --profile host -p acr-webhook-core --bench signing | tee target/bench/signing.txt
	$(TARGET_DIR)/host/acr-webhook-bench run --host $(HOST) --signing target/bench/signing.txt $(BENCH_ARGS)
