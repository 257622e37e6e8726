"""Conformance with the stdlib (issue 10, second round): the display of an
exception raised in the target, queue timeouts on ``time.monotonic``, CPython's
low-level queue module with crossinterp's queues, and CPython's own shareable
objects crossing through crossinterp."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest

from crossinterp import interpreters, queues

HAS_STDLIB = sys.version_info >= (3, 14)
needs_stdlib = pytest.mark.skipif(not HAS_STDLIB, reason="concurrent.interpreters is 3.14+")
SHIM = Path(__file__).parent / "conformance" / "shim"


def _run_file(path: Path, *, routed: bool) -> subprocess.CompletedProcess:
    """Run a script in a fresh process; ``routed``: with the import hook that
    makes ``concurrent.interpreters`` crossinterp's (a drop-in)."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p]
    if routed:
        paths.insert(0, str(SHIM))
        env["CROSSINTERP_CONFORMANCE_SHIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHON_COLORS"] = "0"
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


# --- the display of an exception raised in the target ---------------------


def test_exec_source_traceback_names_script(interp):
    with pytest.raises(interpreters.ExecutionFailed) as ei:
        interp.exec("x = 1\nraise RuntimeError('boo')")
    assert ei.value.excinfo.errdisplay == (
        'Traceback (most recent call last):\n  File "<script>", line 2, in <module>\n'
        "RuntimeError: boo"
    )


def test_exec_syntax_error_names_script(interp):
    with pytest.raises(interpreters.ExecutionFailed) as ei:
        interp.exec("1 +")
    assert ei.value.excinfo.type.__name__ == "SyntaxError"
    assert 'File "<script>", line 1' in ei.value.excinfo.errdisplay


def _display_script(tmp_path: Path, module: str) -> tuple[Path, Path]:
    mod = tmp_path / "spam.py"
    mod.write_text("def ham():\n    raise RuntimeError('uh-oh!')\n\ndef eggs():\n    ham()\n")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(f"""\
            from {module} import interpreters

            def script():
                import spam
                spam.eggs()

            interp = interpreters.create()
            try:
                interp.exec(script)
            finally:
                interp.close()
            """)
    )
    return script, mod


def _expected_display(script: Path, mod: Path, stderr: str, cls: str) -> str:
    (exec_line,) = (ln for ln in stderr.splitlines() if " exec" in ln)
    return textwrap.dedent(f"""\
        Traceback (most recent call last):
          File "{script}", line 9, in <module>
            interp.exec(script)
            ~~~~~~~~~~~^^^^^^^^
          {exec_line.strip()}
            raise ExecutionFailed(excinfo)
        {cls}: RuntimeError: uh-oh!

        Uncaught in the interpreter:

        Traceback (most recent call last):
          File "{script}", line 5, in script
            spam.eggs()
            ~~~~~~~~~^^
          File "{mod}", line 5, in eggs
            ham()
            ~~~^^
          File "{mod}", line 2, in ham
            raise RuntimeError('uh-oh!')
        RuntimeError: uh-oh!
        """)


def test_uncaught_display_matches_stdlib_layout(tmp_path):
    script, mod = _display_script(tmp_path, "crossinterp")
    r = _run_file(script, routed=False)
    assert r.returncode == 1, r.stderr
    cls = "concurrent.interpreters.ExecutionFailed" if HAS_STDLIB else "crossinterp._errors.ExecutionFailed"
    assert r.stderr == _expected_display(script, mod, r.stderr, cls)


@needs_stdlib
def test_uncaught_display_when_routed_as_the_stdlib(tmp_path):
    # `concurrent.interpreters` routed to crossinterp: the same text as the
    # stdlib's (the class under the stdlib's name).
    script, mod = _display_script(tmp_path, "concurrent")
    r = _run_file(script, routed=True)
    assert r.returncode == 1, r.stderr
    assert "crossinterp" in r.stderr  # the exec frame is crossinterp's
    assert r.stderr == _expected_display(
        script, mod, r.stderr, "concurrent.interpreters.ExecutionFailed"
    )


@needs_stdlib
def test_routed_exceptions_are_cpythons_low_level_classes(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent("""\
            import _interpqueues, _interpreters
            from concurrent import interpreters
            from concurrent.interpreters import _queues
            assert interpreters.__name__ == "crossinterp.interpreters", interpreters
            assert interpreters.InterpreterError is _interpreters.InterpreterError
            assert interpreters.InterpreterNotFoundError is _interpreters.InterpreterNotFoundError
            assert interpreters.NotShareableError is _interpreters.NotShareableError
            assert _queues.QueueError is _interpqueues.QueueError
            assert _queues.QueueNotFoundError is _interpqueues.QueueNotFoundError
            assert issubclass(_queues.QueueEmpty, _interpqueues.QueueError)
            assert _queues.QueueEmpty.__module__ == "concurrent.interpreters._queues"
            try:
                interpreters.Interpreter(10**6)
            except _interpreters.InterpreterNotFoundError:
                pass
            print("ok")
            """)
    )
    r = _run_file(script, routed=True)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr


# --- queue timeouts on time.monotonic -------------------------------------


def test_queue_timeouts_use_monotonic_clock():
    q = queues.create(1)
    with mock.patch.object(queues, "time", wraps=time) as fake:
        with pytest.raises(queues.QueueEmpty):
            q.get(timeout=0)
        q.put(None)
        with pytest.raises(queues.QueueFull):
            q.put(None, timeout=0.05)
    fake.monotonic.assert_called()
    fake.time.assert_not_called()


def test_queue_timeout_still_waits_and_wakes():
    q = queues.create(1)
    t0 = time.monotonic()
    with pytest.raises(queues.QueueEmpty):
        q.get(timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < 5
    q.put(1, timeout=0.5)
    with pytest.raises(queues.QueueFull):
        q.put(2, timeout=0.1)
    assert q.get(timeout=1) == 1


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), "1", True])
def test_queue_bad_timeouts_still_rejected(bad):
    q = queues.create()
    with pytest.raises((ValueError, TypeError)):
        q.get(timeout=bad)
    with pytest.raises((ValueError, TypeError)):
        q.put(1, timeout=bad)
    assert q.qsize() == 0


# --- CPython's low-level queues with crossinterp.queues -------------------


@needs_stdlib
def test_low_level_queue_module_with_routed_queues(tmp_path):
    # `_interpqueues` imports `concurrent.interpreters._queues` for its
    # exception types and its queue class: routed here, crossinterp.queues
    # registers them (without it, `get` on an empty queue crashed CPython).
    script = tmp_path / "lowlevel.py"
    script.write_text(
        textwrap.dedent("""\
            import _interpqueues as _q
            qid = _q.create(1, 1, -1)
            try:
                _q.get(qid)
            except Exception as e:
                empty = e
            from concurrent.interpreters import _queues
            assert _queues.__name__ == "crossinterp.queues", _queues
            assert type(empty) is _queues.QueueEmpty, type(empty)
            assert str(empty) == f"queue {qid} is empty"
            _q.put(qid, 1, -1)
            try:
                _q.put(qid, 2, -1)
            except _queues.QueueFull as e:
                assert str(e) == f"queue {qid} is full"
            else:
                raise AssertionError("no QueueFull")
            assert _q.get(qid) == (1, None)
            # a low-level queue crossing through `_interpqueues` arrives as the
            # registered class, holding a reference to the same queue
            other = _q.create(0, 1, -1)
            ref = _queues._LowLevelQueue(other)
            _q.put(qid, ref, -1)
            got, op = _q.get(qid)
            assert op is None and type(got) is _queues._LowLevelQueue and got.id == other, got
            _q.put(other, "x", -1)
            assert _q.get(got.id) == ("x", None)
            _q.destroy(other)
            _q.destroy(qid)
            try:
                _q.get(qid)
            except _queues.QueueNotFoundError:
                pass
            print("ok")
            """)
    )
    r = _run_file(script, routed=True)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
