# acr-webhook: the two commands are `make run` (the local stack) and `make test` (every test).
# Every install step a fresh machine needs lives here (rustup target, npm ci, apt, pip), and
# each one is skipped when already satisfied, so a warm run goes straight to cargo.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# A cargo target directory outside the checkout is reused when CARGO_TARGET_DIR points to one
# (CI does this); the component is still written where spin.toml expects it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM := target/wasm32-wasip1/release/acr_webhook.wasm
HOST := $(TARGET_DIR)/host/acr-webhook

.PHONY: help setup-rust setup-binaryen setup-node setup-test-peers setup-browser setup-prometheus setup-python setup-wasmtime wasm wasi-http host build run test lint vectors bench

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

# promtool, for the alerting rules' checks and unit tests (crates/deploy-check/tests/
# prometheus_rules.rs): Debian's `prometheus` package, without its recommended node exporter.
# Debian starts no Prometheus server in a container without systemd; where systemd runs, the
# service is stopped (the tests need only promtool).
setup-prometheus:
	@if ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; fi
	@if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then systemctl stop prometheus || true; fi

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

# The Spin component, built exactly as spin.toml's build command (`spin build`) builds it, so
# that Spin users deploy the bytes the tests test: crates/wasm-build runs cargo for
# wasm32-wasip1, drops the custom sections the component does not need, runs `wasm-opt -Oz`
# when binaryen is there (and says so when it is not), and writes spin.toml's `source`.
# crates/wasm-build/tests/spin_build.rs checks that this is spin.toml's command.
WASM_BUILD := cargo run --quiet --profile host -p acr-webhook-wasm-build

wasm: setup-rust setup-binaryen
	$(WASM_BUILD)

# The component for stock wasi:http hosts (`wasmtime serve`; README "Run it on stock wasmtime"):
# the Spin module above with a Spin variables adapter (adapters/spin-variables) plugged into its
# fermyon:spin/variables import by `acr-webhook compose`. Two variants, each importing only WASI
# 0.2 and wasi:http: values from the environment (SPIN_VARIABLE_<NAME>), or from
# wasi:config/store (wasmtime's `-S config-var`).
WASI_HTTP := target/wasi-http
ADAPTERS := environment config

wasi-http: wasm
	cargo build --quiet --target wasm32-wasip1 --release $(foreach a,$(ADAPTERS),-p spin-variables-$(a))
	@for a in $(ADAPTERS); do \
	  cargo run --quiet --profile host -p acr-webhook-cli -- compose --app $(WASM) \
	    --adapter $(TARGET_DIR)/wasm32-wasip1/release/spin_variables_$$a.wasm --output $(WASI_HTTP)/acr_webhook.$$a.wasm; \
	done

# Stock wasmtime-cli from crates.io, pinned, for the end-to-end suite on `wasmtime serve`: built
# once into a cache outside the checkout and reused afterwards, with its own temporary target
# directory so that CARGO_TARGET_DIR is not filled with it. Built with the cargo features
# `wasmtime serve` uses (WASI 0.2 and 0.3 http, wasi:config, cranelift, the pooling allocator,
# the compile cache) instead of all default ones (also wast, winch, pulley, GC, threads, wasi-nn,
# the explorer, objdump, wizer...), none of which a WASI 0.2 component served here touches:
# 8.3 minutes on two cores instead of 13.
WASMTIME_VERSION := 48.0.8
WASMTIME_FEATURES := run,serve,wasi-http,wasi-config,cranelift,component-model,component-model-async,pooling-allocator,parallel-compilation,cache,logging,wat,clap/default
WASMTIME_ROOT := $(HOME)/.cache/acr-webhook/tools/wasmtime-$(WASMTIME_VERSION)-serve
WASMTIME := $(WASMTIME_ROOT)/bin/wasmtime

setup-wasmtime:
	@if [ "$$($(WASMTIME) --version 2>/dev/null | cut -d' ' -f2)" != "$(WASMTIME_VERSION)" ]; then \
	  env -u CARGO_TARGET_DIR cargo install --locked --root $(WASMTIME_ROOT) wasmtime-cli@$(WASMTIME_VERSION) \
	    --no-default-features --features $(WASMTIME_FEATURES); fi

host:
	cargo build --profile host -p acr-webhook-cli

build: wasm host

run: setup-node build
	ACR_WEBHOOK_HOST=$(HOST) scripts/run-local.sh

lint: setup-rust
	cargo fmt --all -- --check
	@# Files depend one way: no import cycle between the files of any crate.
	python3 scripts/import_cycles.py --self-test
	python3 scripts/import_cycles.py crates/*/src adapters/spin-variables/src src
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --release -p acr-webhook -p spin-variables-environment -p spin-variables-config -- -D warnings
	# The fuzz targets and their examples are a workspace of their own (run with nightly by
	# scripts/fuzz.sh); they must still build against the core as it is now.
	cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
	cargo check --manifest-path fuzz/Cargo.toml --all-targets

# The committed vectors must be exactly what the official SDK computes today.
vectors: setup-python
	@tmp=$$(mktemp); python3 scripts/cosmos_signature_vectors.py --out $$tmp; \
	  if diff -q $$tmp tests/vectors/cosmos_signatures.json >/dev/null; then echo "signature vectors: the official SDK agrees with tests/vectors/cosmos_signatures.json"; \
	  else echo "signature vectors differ from what azure-cosmos computes:"; diff $$tmp tests/vectors/cosmos_signatures.json | head -20; rm -f $$tmp; exit 1; fi; rm -f $$tmp

test: setup-node setup-test-peers setup-browser setup-prometheus setup-wasmtime lint vectors wasm wasi-http
	ACR_WEBHOOK_WASMTIME=$(WASMTIME) cargo test --workspace --profile host --no-fail-fast

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
