"""crossinterp.interpreters: the PEP 734 API, its errors and its lifecycle."""

import sys
import threading
import time

import helpers
import pytest

import crossinterp
from crossinterp import interpreters
from crossinterp.interpreters import (
    ExecutionFailed,
    Interpreter,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
)


def test_create_exec_call_close():
    it = interpreters.create()
    assert isinstance(it, Interpreter)
    assert it.whence == "_interpreters module"
    assert it in interpreters.list_all()
    it.prepare_main(n=10)
    it.exec("total = sum(i * i for i in range(n))")
    assert it.call(helpers.main_eval, "total") == 285
    assert it.call(pow, 2, 10) == 1024
    it.close()
    assert it not in interpreters.list_all()


def test_interpreter_objects_are_cached_and_identified(interp):
    assert Interpreter(interp.id) is interp
    assert hash(interp) == hash(interp.id)
    assert repr(interp) == f"Interpreter(id={interp.id}, whence='_interpreters module')"
    assert interp.call(helpers.interp_id) == interp.id


def test_main_and_current():
    main = interpreters.get_main()
    assert main.whence == "runtime init"
    assert interpreters.get_current() is main
    assert main.is_running()  # it is running this test


def test_get_current_inside(interp):
    interp.exec(
        "from crossinterp import interpreters as I\n"
        "cur = I.get_current(); main = I.get_main()\n"
        "ok = (cur.whence, main.whence, cur.id != main.id)"
    )
    assert interp.call(helpers.main_eval, "ok") == ("_interpreters module", "runtime init", True)


def test_own_gil_and_isolated_modules(interp):
    interp.exec("import sys; sys.crossinterp_marker = 1")
    assert not hasattr(sys, "crossinterp_marker")
    assert interp.call(helpers.main_eval, "sys.crossinterp_marker") == 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**200,
        -(3**150),
        1.5,
        float("inf"),
        "",
        "héllo wörld ☃",
        "lone \udcff surrogate",
        b"",
        b"\x00bytes\xff",
        (),
        (1, ("nested", (b"x", None)), 2.5),
    ],
)
def test_native_values_round_trip(interp, value):
    assert interpreters.is_shareable(value)
    got = interp.call(helpers.echo, value)
    assert got == ((value,), {})
    assert type(got[0][0]) is type(value)


def test_nan_round_trip(interp):
    r = interp.call(float, "nan")
    assert r != r  # noqa: PLR0124 - NaN is the one float unequal to itself


def test_pickled_values_round_trip(interp):
    value = {"a": [1, 2, {3}], "b": frozenset({4})}
    assert not interpreters.is_shareable(value)
    assert interp.call(helpers.echo, value, key=[5]) == ((value,), {"key": [5]})


def test_subclasses_are_pickled_not_copied(interp):
    value = helpers.MyInt(3)
    assert not interpreters.is_shareable(value)
    got = interp.call(helpers.echo, value)[0][0]
    assert type(got) is helpers.MyInt and got == 3


def test_kwargs_and_results(interp):
    assert interp.call(helpers.square, 12) == 144
    assert interp.call(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


def test_prepare_main_ns_and_kwargs(interp):
    interp.prepare_main({"a": 1, "b": "two"}, c=(3,), d={"x": 1})
    assert interp.call(helpers.main_eval, "(a, b, c, d)") == (1, "two", (3,), {"x": 1})


def test_exec_function_and_code_object(interp):
    def body():
        import sys

        sys.ran_body = "yes"

    interp.exec(body)
    interp.exec(compile("import sys; sys.ran_code = 'yes'", "<test>", "exec"))
    assert interp.call(helpers.main_eval, "(__import__('sys').ran_body, __import__('sys').ran_code)") == (
        "yes",
        "yes",
    )


def test_exec_failure_has_remote_traceback(interp):
    with pytest.raises(ExecutionFailed) as ei:
        interp.exec("def f():\n    raise KeyError('missing')\nf()")
    info = ei.value.excinfo
    assert info.type.__name__ == "KeyError"
    assert info.msg == "'missing'"
    assert "Traceback" in info.errdisplay and "in f" in info.errdisplay
    assert info.formatted == "KeyError: 'missing'"
    assert "KeyError: 'missing'" in str(ei.value)
    # The interpreter is usable afterwards.
    interp.exec("x = 1")


def test_call_failure(interp):
    with pytest.raises(ExecutionFailed) as ei:
        interp.call(helpers.raise_value_error, "bad")
    assert ei.value.excinfo.type.__name__ == "ValueError"
    assert ei.value.excinfo.msg == "bad"
    assert isinstance(ei.value, InterpreterError)


def test_system_exit_in_exec_is_reported(interp):
    with pytest.raises(ExecutionFailed) as ei:
        interp.exec("raise SystemExit(3)")
    assert ei.value.excinfo.type.__name__ == "SystemExit"


def test_unpicklable_argument(interp):
    with pytest.raises(NotShareableError) as ei:
        interp.call(helpers.echo, threading.Lock())
    assert "lock" in str(ei.value)
    assert ei.value.__cause__ is not None


def test_unpicklable_callable(interp):
    # A lambda crosses by value; one whose closure holds a lock cannot cross.
    lock = threading.Lock()
    with pytest.raises(NotShareableError, match="free variable 'lock'"):
        interp.call(lambda: lock)


def test_unshareable_result(interp):
    with pytest.raises(NotShareableError, match="lock"):
        interp.call(helpers.returns_lock)


def test_prepare_main_unpicklable(interp):
    with pytest.raises(NotShareableError):
        interp.prepare_main(lock=threading.Lock())


def test_exec_bad_input(interp):
    with pytest.raises(TypeError):
        interp.exec(42)
    with pytest.raises(ValueError):
        interp.exec("x = 1\0")
    with pytest.raises(ValueError):
        interp.exec(lambda x: x)
    with pytest.raises(TypeError):
        interp.call(42)


def test_interpreter_constructor_bad_input():
    with pytest.raises(TypeError):
        Interpreter("1")
    with pytest.raises(ValueError):
        Interpreter(-1)
    with pytest.raises(InterpreterNotFoundError):
        Interpreter(10**9)


def test_use_after_close():
    it = interpreters.create()
    iid = it.id
    it.close()
    with pytest.raises(InterpreterNotFoundError):
        it.exec("x = 1")
    with pytest.raises(InterpreterNotFoundError):
        it.call(pow, 2, 2)
    with pytest.raises(InterpreterNotFoundError):
        it.prepare_main(a=1)
    with pytest.raises(InterpreterNotFoundError):
        it.close()
    with pytest.raises(InterpreterNotFoundError):
        it.is_running()
    with pytest.raises(InterpreterNotFoundError):
        Interpreter(iid)


def test_close_running_interpreter_refused(interp):
    t = interp.call_in_thread(helpers.sleep_then, 0.5, None)
    deadline = time.monotonic() + 5
    while not interp.is_running() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert interp.is_running()
    with pytest.raises(InterpreterError, match="running"):
        interp.close()
    with pytest.raises(InterpreterError, match="already running"):
        interp.exec("x = 1")
    t.join()
    assert not interp.is_running()
    interp.close()


def test_close_current_interpreter_refused(interp):
    with pytest.raises(ExecutionFailed) as ei:
        interp.exec("from crossinterp import interpreters as I; I.get_current().close()")
    assert ei.value.excinfo.type.__name__ == "InterpreterError"


def test_close_main_refused():
    with pytest.raises(InterpreterError):
        interpreters.get_main().close()


def test_exec_in_current_interpreter_refused():
    with pytest.raises(InterpreterError, match="already running"):
        interpreters.get_main().exec("x = 1")


def test_nested_interpreters(interp):
    interp.exec(
        "from crossinterp import interpreters as I\n"
        "inner = I.create()\n"
        "r = inner.call(pow, 3, 3)\n"
        "inner.close()"
    )
    assert interp.call(helpers.main_eval, "r") == 27


def test_call_in_thread_runs_in_parallel():
    a, b = interpreters.create(), interpreters.create()
    try:
        results = {}

        def run(name, it):
            results[name] = it.call(helpers.spin_window, 1.0)

        ts = [threading.Thread(target=run, args=(n, i)) for n, i in (("a", a), ("b", b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        (s1, e1), (s2, e2) = results["a"], results["b"]
        # Both windows overlap: each started before the other ended.
        assert s1 < e2 and s2 < e1
    finally:
        a.close()
        b.close()


def test_call_in_thread_returns_started_thread(interp):
    t = interp.call_in_thread(helpers.square, 3)
    assert isinstance(t, threading.Thread)
    t.join()


def test_function_from_main_script_file(tmp_path):
    import os
    import subprocess

    script = tmp_path / "prog.py"
    script.write_text(
        "from crossinterp import interpreters\n"
        "def helper(n):\n"
        "    return sum(i * i for i in range(n))\n"
        "def work(n):\n"
        "    return helper(n) + 1\n"
        "class Box:\n"
        "    def __init__(self, v):\n"
        "        self.v = v\n"
        "if __name__ == '__main__':\n"
        "    it = interpreters.create()\n"
        "    assert it.call(work, 10) == 286\n"
        "    box = it.call(Box, 7)\n"
        "    assert type(box) is Box and box.v == 7\n"
        "    it.close()\n"
        "    print('OK')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK"
    assert r.stderr == ""


def test_live_owner_count_tracks_interpreters():
    start = crossinterp.live_owners()
    its = [interpreters.create() for _ in range(3)]
    assert crossinterp.live_owners() == start + 3
    for it in its:
        it.close()
    assert crossinterp.live_owners() == start
