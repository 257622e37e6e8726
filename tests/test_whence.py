"""Interpreters made by ``create()`` are CPython's ``_interpreters`` ones
(whence ``"_interpreters module"``, usable with ``_interpreters``), the
stdlib's ``Interpreter(id, _whence=, _ownsref=)`` signature, interpreters made
on the C API refused for exec/call/prepare_main, and CPython's
``InterpreterError`` when ``concurrent.interpreters`` is routed to
crossinterp."""

import _interpreters
import gc
import os
import sys

import pytest
from conftest import run_script

from crossinterp import interpreters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpython_ids():
    return {iid for iid, _ in _interpreters.list_all()}


def test_create_is_an_interpreters_module_interpreter(interp):
    assert interp.whence == "_interpreters module"
    assert _interpreters.whence(interp.id) == _interpreters.WHENCE_STDLIB
    config = _interpreters.get_config(interp.id)
    assert config.gil == "own"
    assert not config.use_main_obmalloc
    assert config.allow_threads and not config.allow_daemon_threads
    # CPython's low-level module accepts it
    assert _interpreters.exec(interp.id, "x = 6 * 7") is None
    _interpreters.set___main___attrs(interp.id, {"y": 8})
    assert interp.call(eval, "(x, y)") == (42, 8)
    assert _interpreters.is_running(interp.id) is False
    # and the new interpreter still gets the creator's sys.path
    assert interp.call(eval, "__import__('sys').path") == sys.path


def test_is_running_marks_ours_for_the_stdlib(interp):
    r, w = os.pipe()
    try:
        t = interp.call_in_thread(exec, f"import os; os.read({r}, 1)")
        import time

        deadline = time.monotonic() + 10
        # (crossinterp counts it as running a moment before CPython's mark)
        while not _interpreters.is_running(interp.id) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert interp.is_running()
        assert _interpreters.is_running(interp.id)
        os.write(w, b"x")
        t.join(10)
        assert not interp.is_running()
        assert not _interpreters.is_running(interp.id)
    finally:
        os.close(r)
        os.close(w)


def test_stdlib_destroy_closes_ours():
    it = interpreters.create()
    iid = it.id
    _interpreters.destroy(iid)
    assert iid not in cpython_ids()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.exec("pass")
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.close()
    del it
    gc.collect()  # the last object's reference goes quietly


def test_last_object_still_closes_ours():
    it = interpreters.create()
    iid = it.id
    del it
    gc.collect()
    assert iid not in cpython_ids()


def test_interpreter_accepts_the_stdlib_signature():
    iid = _interpreters.create()
    try:
        it = interpreters.Interpreter(iid, _whence=_interpreters.WHENCE_STDLIB, _ownsref=False)
        assert it.whence == "_interpreters module"
        assert interpreters.Interpreter(iid, _ownsref=True) is it  # one object per id
        del it
        gc.collect()
        assert iid in cpython_ids()  # it owned no reference
    finally:
        _interpreters.destroy(iid)
    with pytest.raises(ValueError, match="whence"):
        interpreters.Interpreter(0, _whence=12345)
    with pytest.raises(TypeError):
        interpreters.Interpreter(0, _whence=1.5)


def test_ownsref_true_owns_a_reference_of_a_stdlib_one():
    iid = _interpreters.create(reqrefs=True)
    it = interpreters.Interpreter(iid, _ownsref=True)
    assert it.whence == "_interpreters module"
    assert iid in cpython_ids()
    del it
    gc.collect()
    assert iid not in cpython_ids()  # the only reference went


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="_testinternalcapi.create_interpreter: 3.14+ test module"
)
def test_capi_interpreter_is_refused():
    capi = pytest.importorskip("_testinternalcapi")
    iid = capi.create_interpreter()
    try:
        it = interpreters.Interpreter(iid, _whence=_interpreters.WHENCE_CAPI, _ownsref=False)
        assert it.whence == "C-API"
        assert [i.whence for i in interpreters.list_all() if i.id == iid] == ["C-API"]
        for op in (
            lambda: it.exec("pass"),
            lambda: it.call(int),
            lambda: it.prepare_main(spam=True),
            it.close,
        ):
            with pytest.raises(interpreters.InterpreterError, match="unrecognized"):
                op()
        assert not it.is_running()
    finally:
        capi.destroy_interpreter(iid)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="concurrent.interpreters: 3.14+")
def test_routed_drop_in_raises_cpythons_interpreter_error():
    # As the conformance shim installs it: concurrent.interpreters is
    # crossinterp.interpreters; its InterpreterError must still be the one
    # CPython's _interpreters raises.
    env_src = f"""
        import os, sys
        os.environ["CROSSINTERP_CONFORMANCE_SHIM"] = "1"
        sys.path.insert(0, {os.path.join(ROOT, "tests", "conformance", "shim")!r})
        import sitecustomize  # noqa: F401 - installs the route
        from concurrent import interpreters
        import _interpreters
        assert interpreters.__name__ == "crossinterp.interpreters", interpreters.__name__
        assert interpreters.InterpreterError is _interpreters.InterpreterError
        assert interpreters.InterpreterNotFoundError is _interpreters.InterpreterNotFoundError
        try:
            _interpreters.create("empty")
        except interpreters.InterpreterError:
            pass
        else:
            raise AssertionError("not raised")
        it = interpreters.create()
        assert it.whence == "_interpreters module"
        it.close()
        print("ok")
    """
    r = run_script(env_src)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
