import os
import subprocess
import sys
import textwrap

import pytest

LARGE = os.environ.get("CROSSINTERP_LARGE") == "1"


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
