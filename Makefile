# crossinterp — developer entry points.
#
#   make demo   sequential vs threads vs interpreters on a CPU-bound job
#   make test   every test: Rust engine (unit, stress, loom) + pytest on all four Pythons
#               + the conformance run (3.14, 3.15 gated; 3.13 report only)
#   make test-conformance  CPython's own test.test_interpreters against crossinterp
#               on 3.14 and 3.15 (tests/conformance/README.md); fails below 97%
#               of the tests passing on the stdlib
#   make bench  side-by-side benchmarks against the stdlib peers, and the
#               crossing costs (bench_crossing; A/B of two revisions: scripts/bench_ab)
#   make lint   rustfmt, clippy -D warnings, ruff, stub check
#   make sanitize  the engine's unit + stress tests under AddressSanitizer, and
#               the smr tests under ThreadSanitizer (RUSTC_BOOTSTRAP=1, see below;
#               not part of `make test`)
#
# The Python builds (3.13, 3.13t, 3.14, 3.15) are provisioned on first use by
# scripts/provision into ~/.cache/crossinterp (override: CROSSINTERP_CACHE).

SHELL := /bin/bash
VERSIONS ?= 3.13 3.13t 3.14 3.15
DEMO_VERSIONS ?= 3.14 3.13t
BENCH_VERSIONS ?= 3.13 3.14 3.15
# bench_atomics compares against cereggii and ft_utils (scripts/bench_peers),
# and is about threads running in parallel: free-threaded builds only.
BENCH_ATOMICS_VERSIONS ?= 3.13t
PYTEST_ARGS ?=
CONFORMANCE_VERSIONS ?= 3.14 3.15 3.13
CONFORMANCE_ARGS ?=
CACHE ?= $(or $(CROSSINTERP_CACHE),$(HOME)/.cache/crossinterp)
TOOLS := $(CACHE)/tools

.PHONY: all demo test test-rust test-loom test-python test-conformance bench lint provision tools clean sanitize

all: test

provision:
	scripts/provision $(VERSIONS)

demo:
	@set -e; for v in $(DEMO_VERSIONS); do scripts/py $$v examples/demo.py; echo; done

test: test-rust test-loom test-python test-conformance

test-rust:
	cargo test -p crossinterp-core

# Loom models: every lock-free/locking protocol of the engine, bounded to fit CI.
test-loom:
	RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom --test loom_queue --test loom_smr --test loom_map \
		--target-dir target/loom -- --test-threads 1

# Every Python-level test on every build; a missing build fails the run.
test-python: provision
	@set -e; for v in $(VERSIONS); do \
		echo "== pytest on Python $$v"; \
		scripts/py $$v -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS); \
	done

# CPython's test.test_interpreters, baseline (stdlib) and crossinterp, per
# version; every version runs, the target fails if any version's gate fails.
test-conformance:
	@scripts/provision $(CONFORMANCE_VERSIONS)
	@rc=0; for v in $(CONFORMANCE_VERSIONS); do \
		echo "== conformance on Python $$v"; \
		scripts/py $$v tests/conformance/run.py $(CONFORMANCE_ARGS) || rc=1; \
	done; exit $$rc

# Every benchmark on every BENCH_VERSIONS build (BENCH_ARGS=--quick: shorter runs;
# bench_asyncio with aiointerpreters from scripts/bench_peers where it installs),
# then the atomics benchmarks (AtomicInt/AtomicRef, AtomicDict) with their
# third-party peers on BENCH_ATOMICS_VERSIONS.
bench: provision
	@set -e; for v in $(BENCH_VERSIONS); do \
		for b in bench_interpreters bench_queues bench_proxy bench_crossing; do \
			scripts/py $$v benchmarks/$$b.py $(BENCH_ARGS); echo; \
		done; \
		PYTHONPATH=$$(scripts/bench_peers $$v) scripts/py $$v benchmarks/bench_asyncio.py $(BENCH_ARGS); echo; \
	done; \
	for v in $(BENCH_ATOMICS_VERSIONS); do \
		for b in bench_atomics bench_atomic_dict; do \
			PYTHONPATH=$$(scripts/bench_peers $$v) scripts/py $$v benchmarks/$$b.py $(BENCH_ARGS); echo; \
		done; \
	done

# Sanitizers on the stable toolchain through RUSTC_BOOTSTRAP=1 (-Zsanitizer is
# unstable), in target/sanitize*. Only --target builds are instrumented (build
# scripts are not). The toolchain has no rust-src, hence no -Zbuild-std: std is
# not instrumented (-Cunsafe-allow-abi-mismatch=sanitizer lets it link).
# - ASan (+ LeakSanitizer): every engine test: unit, engine, queue, channel
#   and the stress suites.
# - TSan: the smr unit tests and smr_stress, whose synchronisation is all
#   atomics; the other suites block on std's Mutex/Condvar, whose slow paths
#   are invisible without an instrumented std (false races). scripts/tsan.supp
#   hides libtest's own channel for the same reason, nothing of ours.
SANITIZE_TARGET ?= x86_64-unknown-linux-gnu
sanitize:
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer" \
		ASAN_OPTIONS=detect_leaks=1 cargo test -p crossinterp-core --lib --tests \
		--target $(SANITIZE_TARGET) --target-dir target/sanitize
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer" \
		TSAN_OPTIONS="suppressions=$(CURDIR)/scripts/tsan.supp" cargo test -p crossinterp-core \
		--lib --test smr_stress --target $(SANITIZE_TARGET) --target-dir target/sanitize-tsan -- smr \
		reader writer

tools:
	@test -x $(TOOLS)/bin/ruff || python3 -m pip install -q --target $(TOOLS) 'ruff>=0.6'

lint: tools provision
	cargo fmt --all --check
	cargo clippy -p crossinterp-core --all-targets -- -D warnings
	RUSTFLAGS="--cfg loom" cargo clippy -p crossinterp-core --all-targets --target-dir target/loom -- -D warnings
	PYO3_PYTHON=$$(scripts/provision --print 3.14) cargo clippy -p crossinterp-ext --all-targets \
		--target-dir target/py-3.14 -- -D warnings
	# No 3.14t build is provisioned: lint the extension's free-threaded 3.14
	# code (AtomicRef's TryIncRef path) against a pyo3 config of one.
	PYO3_CONFIG_FILE=$(CURDIR)/scripts/pyo3-3.14t.cfg cargo clippy -p crossinterp-ext \
		--target-dir target/check-3.14t -- -D warnings
	PYTHONPATH=$(TOOLS) $(TOOLS)/bin/ruff check python tests examples benchmarks scripts
	scripts/py 3.14 scripts/check_stubs.py

clean:
	rm -rf target build
