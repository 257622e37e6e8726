import os
import subprocess
import sys
import textwrap

import pytest

LARGE = os.environ.get("CROSSINTERP_LARGE") == "1"
# A debug (Py_DEBUG) build, e.g. 3.14d: slower, and allocates differently.
DEBUG_BUILD = hasattr(sys, "gettotalrefcount")

# Knobs the stress tests honour (scripts/soak sets them per round, with the
# round's seed; unset: the defaults below):
# - CROSSINTERP_SWITCH_INTERVAL: sys.setswitchinterval for the whole run
#   (and for every fault-suite case process);
# - CROSSINTERP_STRESS_THREADS: the interpreters / threads per stress test;
# - CROSSINTERP_STRESS_SCALE: a factor on the stress tests' iteration counts.
_SWITCH = os.environ.get("CROSSINTERP_SWITCH_INTERVAL")
if _SWITCH:
    sys.setswitchinterval(float(_SWITCH))


def stress_threads(default: int) -> int:
    """The interpreter/thread count of a stress test (CROSSINTERP_STRESS_THREADS)."""
    v = os.environ.get("CROSSINTERP_STRESS_THREADS")
    return max(1, int(v)) if v else default


def stress_iterations(default: int) -> int:
    """A stress test's iteration count, times CROSSINTERP_STRESS_SCALE."""
    v = os.environ.get("CROSSINTERP_STRESS_SCALE")
    return max(1, round(default * float(v))) if v else default


@pytest.fixture
def interp():
    from crossinterp import interpreters

    it = interpreters.create()
    yield it
    try:
        it.close()
    except interpreters.InterpreterNotFoundError:
        pass


def run_script(src: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `src` in a fresh process of the same Python, with the same path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(src)],
        capture_output=True,
        text=True,
        check=False,  # callers assert on returncode with stderr in the message
        timeout=timeout,
        env=env,
    )

# tests/conformance is a standalone runner of CPython's own test suite (make
# test-conformance), not pytest tests.
collect_ignore = ["conformance"]
