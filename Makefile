# crossinterp — developer entry points.
#
#   make demo   sequential vs threads vs interpreters on a CPU-bound job
#   make test   every test: Rust engine (unit, stress, loom) + pytest on all four Pythons
#   make bench  side-by-side benchmarks against the stdlib peers
#   make lint   rustfmt, clippy -D warnings, ruff, stub check
#
# The Python builds (3.13, 3.13t, 3.14, 3.15) are provisioned on first use by
# scripts/provision into ~/.cache/crossinterp (override: CROSSINTERP_CACHE).

SHELL := /bin/bash
VERSIONS ?= 3.13 3.13t 3.14 3.15
DEMO_VERSIONS ?= 3.14 3.13t
BENCH_VERSIONS ?= 3.13 3.14 3.15
PYTEST_ARGS ?=
CACHE ?= $(or $(CROSSINTERP_CACHE),$(HOME)/.cache/crossinterp)
TOOLS := $(CACHE)/tools

.PHONY: all demo test test-rust test-loom test-python bench lint provision tools clean

all: test

provision:
	scripts/provision $(VERSIONS)

demo:
	@set -e; for v in $(DEMO_VERSIONS); do scripts/py $$v examples/demo.py; echo; done

test: test-rust test-loom test-python

test-rust:
	cargo test -p crossinterp-core

# Loom models: every lock-free/locking protocol of the engine, bounded to fit CI.
test-loom:
	RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom --test loom_queue --test loom_map \
		--target-dir target/loom -- --test-threads 1

# Every Python-level test on every build; a missing build fails the run.
test-python: provision
	@set -e; for v in $(VERSIONS); do \
		echo "== pytest on Python $$v"; \
		scripts/py $$v -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS); \
	done

# Every benchmark on every BENCH_VERSIONS build (BENCH_ARGS=--quick: shorter runs).
bench: provision
	@set -e; for v in $(BENCH_VERSIONS); do \
		for b in bench_interpreters bench_queues; do \
			scripts/py $$v benchmarks/$$b.py $(BENCH_ARGS); echo; \
		done; \
	done

tools:
	@test -x $(TOOLS)/bin/ruff || python3 -m pip install -q --target $(TOOLS) 'ruff>=0.6'

lint: tools provision
	cargo fmt --all --check
	cargo clippy -p crossinterp-core --all-targets -- -D warnings
	RUSTFLAGS="--cfg loom" cargo clippy -p crossinterp-core --all-targets --target-dir target/loom -- -D warnings
	PYO3_PYTHON=$$(scripts/provision --print 3.14) cargo clippy -p crossinterp-ext --all-targets \
		--target-dir target/py-3.14 -- -D warnings
	PYTHONPATH=$(TOOLS) $(TOOLS)/bin/ruff check python tests examples benchmarks scripts
	scripts/py 3.14 scripts/check_stubs.py

clean:
	rm -rf target build
