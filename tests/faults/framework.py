"""The fault suite's runner: each case is a script run in its own process
with a timeout, judged

- OK: it exited 0 and printed its ``expect`` line (a correct result or a
  clear, documented exception the script caught and reported);
- CRASH: killed by a signal, a non-zero exit, or "Fatal Python error" /
  "FATAL:" / a Rust panic on stderr;
- HANG: still running at the timeout (killed);
- LOST: it ran to the end but did not print ``expect`` (an item, update or
  result missing);
- WRONG: it printed a line starting with ``WRONG`` (a wrong result, or an
  exception of another type than the documented one).

A case found failing and not fixed yet carries ``known`` (an issue number
and a word): it still counts as a failure, the table only marks it.

Every case runs on the build pytest runs on; ``make test`` runs all five
(3.14d: the debug build, whose assertions catch C-API misuse).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

CRASH_MARKERS = ("Fatal Python error", "FATAL:", "panicked at", "Segmentation fault")


@dataclass(frozen=True)
class Case:
    name: str
    src: str
    expect: str = "OK"
    timeout: float = 20.0
    # Text on stderr that the case needs to see (e.g. a documented warning).
    stderr_has: str | None = None
    # Skip unless this predicate on sys.version_info/free-threading holds.
    only_if: object = None
    # A failure found and not fixed yet ("issue 11: ..."): still fails.
    known: str | None = None


@dataclass
class Result:
    case: Case
    verdict: str
    seconds: float
    detail: str = ""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("PYTHONWARNINGS", None)
    return env


def case_source(case: Case) -> str:
    """The case's script; with CROSSINTERP_SWITCH_INTERVAL set (scripts/soak),
    it first sets that switch interval."""
    src = textwrap.dedent(case.src)
    switch = os.environ.get("CROSSINTERP_SWITCH_INTERVAL")
    if switch:
        src = f"import sys as _s; _s.setswitchinterval({float(switch)!r}); del _s\n" + src
    return src


def run_case(case: Case) -> Result:
    start = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, "-c", case_source(case)],
            check=False,
            capture_output=True,
            text=True,
            timeout=case.timeout,
            env=_env(),
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Result(case, "HANG", time.monotonic() - start, err[-300:])
    took = time.monotonic() - start
    out, err = p.stdout, p.stderr
    if p.returncode < 0 or any(m in err for m in CRASH_MARKERS):
        return Result(case, "CRASH", took, f"rc={p.returncode} {err[-400:]}")
    if p.returncode != 0:
        return Result(case, "CRASH", took, f"rc={p.returncode} {err[-400:]}")
    wrong = [ln for ln in out.splitlines() if ln.startswith("WRONG")]
    if wrong:
        return Result(case, "WRONG", took, f"{wrong[0][:300]} stderr={err[-200:]!r}")
    if case.expect not in out.splitlines():
        return Result(case, "LOST", took, f"stdout={out[-200:]!r} stderr={err[-200:]!r}")
    if case.stderr_has is not None and case.stderr_has not in err:
        return Result(case, "LOST", took, f"missing on stderr: {case.stderr_has!r}; {err[-200:]!r}")
    return Result(case, "OK", took)


def run_all(cases: list[Case], jobs: int = 2) -> list[Result]:
    todo = [c for c in cases if c.only_if is None or c.only_if()]
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(run_case, todo))


def table(results: list[Result]) -> str:
    w = max((len(r.case.name) for r in results), default=4)
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        v += "t"
    if hasattr(sys, "gettotalrefcount"):  # a debug (Py_DEBUG) build
        v += "d"
    lines = [f"fault suite on {v}: {len(results)} case(s)", f"{'case':<{w}}  verdict  seconds"]
    for r in results:
        known = f"  (known: {r.case.known})" if r.case.known and r.verdict != "OK" else ""
        lines.append(f"{r.case.name:<{w}}  {r.verdict:<7}  {r.seconds:7.2f}{known}")
        if r.detail and r.verdict != "OK":
            lines.append("    " + r.detail.replace("\n", "\n    "))
    counts = {k: sum(r.verdict == k for r in results) for k in ("OK", "CRASH", "HANG", "LOST", "WRONG")}
    lines.append("  ".join(f"{k}={n}" for k, n in counts.items()))
    return "\n".join(lines)


def bad(results: list[Result]) -> list[Result]:
    return [r for r in results if r.verdict != "OK"]


PRELUDE = """\
import sys, threading, time, pickle
import crossinterp
from crossinterp import interpreters, queues, channels, share
from crossinterp import (SharedBuffer, AtomicInt, AtomicBool, AtomicRef, AtomicDict,
    InterpreterError, InterpreterNotFoundError, InterpreterGoneError,
    InterpreterFinalizingError, ExecutionFailed, NotShareableError)
"""


def raises(name: str, setup: str, stmt: str, exc: str, timeout: float = 20.0, **kw: object) -> Case:
    """A case that runs ``setup``, then ``stmt``, which must raise ``exc``
    (an expression naming an exception class, or a tuple of them)."""
    body = textwrap.indent(textwrap.dedent(stmt).strip("\n"), "    ")
    src = (
        PRELUDE
        + textwrap.dedent(setup)
        + f"""
try:
{body}
except BaseException as e:
    if isinstance(e, ({exc})):
        print("OK")
    else:
        print("WRONG", type(e).__name__, repr(str(e))[:200])
else:
    print("WRONG no exception (expected {exc})")
"""
    )
    return Case(name, src, timeout=timeout, **kw)  # type: ignore[arg-type]


def returns(name: str, setup: str, expr: str, expected: str, timeout: float = 20.0, **kw: object) -> Case:
    """A case that runs ``setup``, then checks ``expr == expected``."""
    src = (
        PRELUDE
        + textwrap.dedent(setup)
        + f"""
_got = {expr}
_want = {expected}
print("OK" if _got == _want else "WRONG got %r want %r" % (_got, _want))
"""
    )
    return Case(name, src, timeout=timeout, **kw)  # type: ignore[arg-type]
