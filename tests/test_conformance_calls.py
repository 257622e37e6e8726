"""Calls and exec as in ``concurrent.interpreters`` (issue 10, behaviours 2.2,
2.3, 2.7, 2.10 and 2.12): each test checks crossinterp, and where the stdlib
module exists (3.14+), the stdlib's answer to the same call, side by side."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from crossinterp.interpreters import ExecutionFailed, NotShareableError

try:
    from concurrent import interpreters as stdlib
except ImportError:  # 3.13: crossinterp is the only PEP 734 API
    stdlib = None

needs_stdlib = pytest.mark.skipif(stdlib is None, reason="no concurrent.interpreters before 3.14")


@pytest.fixture
def std():
    it = stdlib.create()
    yield it
    it.close()


def _make_closure():
    x = 20

    def inner():
        return x + 1

    return inner


# --- 2.12: exec() of a code object with free variables -----------------------


def test_exec_code_with_free_variables_is_refused(interp):
    code = _make_closure().__code__
    assert code.co_freevars == ("x",)
    with pytest.raises(ValueError, match="free variables"):
        interp.exec(code)
    interp.exec("assert True")  # the interpreter is fine afterwards


def test_exec_function_with_closure_is_refused(interp):
    with pytest.raises(ValueError, match="closures"):
        interp.exec(_make_closure())


@needs_stdlib
def test_exec_code_with_free_variables_stdlib(std):
    with pytest.raises(ValueError):
        std.exec(_make_closure().__code__)


# --- 2.3: builtins that need a frame -------------------------------------------


def test_builtins_run_with_main_as_globals(interp):
    before = interp.call(dir)
    assert "__name__" in before and "__builtins__" in before
    assert interp.call(eval, "[1, 2, 3]") == [1, 2, 3]
    interp.exec("spam = 42")
    assert interp.call(eval, "spam + 1") == 43
    assert "spam" in interp.call(dir)
    interp.call(exec, "eggs = spam * 2")
    assert interp.call(eval, "eggs") == 84
    assert interp.call(eval, "__name__") == "__main__"
    # No trace of the call itself in __main__.
    assert interp.call(dir) == sorted([*before, "spam", "eggs"])


def test_builtin_errors_are_execution_failed(interp):
    with pytest.raises(ExecutionFailed) as ei:
        interp.call(eval, "undefined_name")
    assert ei.value.excinfo.type.__name__ == "NameError"


@needs_stdlib
def test_builtins_side_by_side(interp, std):
    for it in (interp, std):
        it.exec("spam = 42")
    assert interp.call(eval, "[1, 2, 3]") == std.call(eval, "[1, 2, 3]") == [1, 2, 3]
    assert interp.call(eval, "spam") == std.call(eval, "spam") == 42
    assert interp.call(dir) == std.call(dir)


# --- 2.7: values that cannot cross give NotShareableError -----------------------


def _returns_lock():
    return threading.Lock()


def test_unshareable_result_is_not_shareable_error(interp):
    with pytest.raises(NotShareableError, match="result could not leave") as ei:
        interp.call(_returns_lock)
    assert "lock" in str(ei.value)
    assert interp.call(eval, "1 + 1") == 2  # still usable


def test_argument_not_rebuildable_in_target_is_not_shareable_error(interp, tmp_path):
    # A module the target cannot import (it is on this sys.path only since
    # after the target was created): the argument does not cross.
    (tmp_path / "only_here_mod.py").write_text("class Thing:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here_mod

        with pytest.raises(NotShareableError, match="could not be rebuilt") as ei:
            interp.call(id, only_here_mod.Thing())
        assert "only_here_mod" in str(ei.value)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_mod", None)


def test_function_added_to_main_at_run_time_crosses_back(interp):
    # The stdlib sends it back by value (it is stateless); so do we, and
    # with globals too.
    interp.exec("def spam(): return 'spam'\nK = 3\ndef uses(x): return x * K")
    spam = interp.call(eval, "spam")
    assert spam() == "spam"
    uses = interp.call(eval, "uses")
    assert uses(2) == 6


@needs_stdlib
def test_unshareable_result_stdlib(std):
    with pytest.raises(stdlib.NotShareableError):
        std.call(_returns_lock)


# --- 2.2: functions by value -------------------------------------------------------

SCALE = 3


def _make_doubler():
    return lambda x: x * 2


def _uses_global(x):
    return x * SCALE


def _fact(n):
    return 1 if n <= 1 else n * _fact(n - 1)


def test_lambda_and_nested_functions_cross_by_value(interp):
    assert interp.call(_make_doubler(), 21) == 42
    assert interp.call(lambda x=5, *, y=2: x * y) == 10
    assert interp.call(_make_closure()) == 21


def test_closures_and_globals_cross_by_value(interp):
    base = 100

    def add(x):
        return x + base + SCALE

    assert interp.call(add, 1) == 104
    assert interp.call(lambda: _fact(5)) == 120
    # A module global crosses by module name.
    assert interp.call(lambda: os.getpid()) == os.getpid()
    # Nested functions all the way down.
    def adders():
        return [lambda y: y + base]

    assert interp.call(lambda: [f(2) for f in adders()]) == [102]


def test_recursive_nested_function_and_shared_globals(interp):
    def outer():
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)

        return fact

    assert interp.call(outer(), 6) == 720
    # Closure cells cross by value: the target changes its own copy.
    counter = {"n": 0}

    def bump():
        counter["n"] += 1
        return counter["n"]

    assert interp.call(lambda: (bump(), bump())) == (1, 2)
    assert counter == {"n": 0}  # a copy was changed, not ours


def test_stateless_function_gets_the_targets_main(interp):
    interp.exec("marker = 'target main'")
    assert interp.call(lambda: eval("marker")) == "target main"


_LOCK = threading.Lock()


def test_global_that_cannot_cross_is_named(interp):
    with pytest.raises(NotShareableError, match="its global '_LOCK'"):
        interp.call(lambda: _LOCK.locked())


def test_cell_that_cannot_cross_is_named(interp):
    lock = threading.Lock()
    with pytest.raises(NotShareableError, match="free variable 'lock'"):
        interp.call(lambda: lock.locked())


def test_function_result_by_value(interp):
    f = interp.call(lambda: (lambda a: a + 1))
    assert f(1) == 2


@needs_stdlib
def test_stateless_lambda_side_by_side(interp, std):
    f = _make_doubler()
    assert interp.call(f, 21) == std.call(f, 21) == 42


def _run(src: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run(
        [sys.executable, *args],
        input=None,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def _script(tmp_path, name: str, src: str):
    p = tmp_path / name
    p.write_text(textwrap.dedent(src))
    return p


def test_unguarded_script_functions_cross_by_value(tmp_path):
    # Without a guard, the target must not re-run the script: it would print
    # "top" twice (and create interpreters recursively).
    p = _script(
        tmp_path,
        "unguarded.py",
        """
        from crossinterp import interpreters
        print("top")
        N = 5
        def times_n(x):
            return x * N
        interp = interpreters.create()
        print(interp.call(times_n, 4))
        interp.close()
        """,
    )
    r = _run("", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["top", "20"]


def test_dash_c_functions_cross_by_value():
    src = textwrap.dedent(
        """
        from crossinterp import interpreters
        K = 7
        def f(x):
            return x + K
        interp = interpreters.create()
        print(interp.call(f, 1))
        interp.close()
        """
    )
    r = _run("", "-c", src)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["8"]


# --- 2.10: the main script in the target ---------------------------------------------


GUARDED = """
    from crossinterp import interpreters
    print("top")

    def spam():
        return __name__

    if __name__ == "__main__":
        interp = interpreters.create()
        print(interp.call(spam))
        interp.close()
    """


def test_guarded_script_functions_cross_by_reference(tmp_path):
    p = _script(tmp_path, "guarded.py", GUARDED)
    r = _run("", str(p))
    assert r.returncode == 0, r.stderr
    # By reference: the target loads the script (prints "top" again, not its
    # guarded block) under the stdlib's name.
    assert r.stdout.splitlines() == ["top", "top", "<fake __main__>"]


def test_main_function_called_again_resolves_as_the_first_time(tmp_path):
    # The receiver remembers how it resolved a main-script function (so a call
    # of it again skips the unpickler); what it gives must stay what a full
    # load gives: the script's copy, until the receiver's own __main__ defines
    # the name (then that, as a plain pickle.loads would find it), and the
    # copy again once that name is gone.
    p = _script(
        tmp_path,
        "again.py",
        """
        from crossinterp import interpreters

        def spam():
            return "copy " + __name__

        if __name__ == "__main__":
            interp = interpreters.create()
            out = [interp.call(spam) for _ in range(3)]
            interp.exec("def spam():\\n    return 'own ' + __name__")
            out += [interp.call(spam) for _ in range(2)]
            interp.exec("del spam")
            out.append(interp.call(spam))
            print(out)
            interp.close()
        """,
    )
    r = _run("", str(p))
    assert r.returncode == 0, r.stderr
    copy, own = "copy <fake __main__>", "own __main__"
    assert r.stdout.strip() == repr([copy, copy, copy, own, own, copy])


@needs_stdlib
def test_guarded_script_name_stdlib(tmp_path):
    p = _script(tmp_path, "guarded_std.py", GUARDED.replace("from crossinterp import", "from concurrent import"))
    r = _run("", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "<fake __main__>"


def test_dash_m_main_with_relative_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("BASE = 40\n")
    (pkg / "app.py").write_text(
        textwrap.dedent(
            """
            from crossinterp import interpreters
            from .helper import BASE

            def add(x):
                return BASE + x

            if __name__ == "__main__":
                interp = interpreters.create()
                print(interp.call(add, 2))
                interp.close()
            """
        )
    )
    r = _run("", "-m", "pkg.app", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["42"]
