"""Lifecycle conformance with ``concurrent.interpreters`` (issue 10, 2.4, 2.5,
2.11): interpreters made elsewhere, the last ``Interpreter`` object closing
one made by ``create()``, and exit with interpreters still open."""

import _interpreters
import gc
import sys
import threading
import time

import pytest
from conftest import run_script

from crossinterp import _native, interpreters

HAS_STDLIB = sys.version_info >= (3, 14)


def cpython_ids():
    return {iid for iid, _ in _interpreters.list_all()}


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def raw():
    """An interpreter made by CPython's ``_interpreters.create()``."""
    iid = _interpreters.create()
    yield iid
    if iid in cpython_ids():
        _interpreters.destroy(iid)


# 2.5: interpreters made by CPython's own module --------------------------------


def test_interpreter_made_by_cpython_is_seen_and_closed(raw):
    it = interpreters.Interpreter(raw)
    assert it.id == raw
    assert it is interpreters.Interpreter(raw)
    assert it.whence == "_interpreters module"
    assert raw in {i.id for i in interpreters.list_all()}
    assert it in interpreters.list_all()
    assert not it.is_running()
    it.close()
    assert raw not in cpython_ids()
    assert raw not in {i.id for i in interpreters.list_all()}
    with pytest.raises(interpreters.InterpreterNotFoundError):
        interpreters.Interpreter(raw)
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.close()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.is_running()


def test_list_all_is_every_interpreter_cpython_knows(raw):
    ours = interpreters.create()
    listed = [(i.id, i.whence) for i in interpreters.list_all()]
    assert [iid for iid, _ in listed] == [iid for iid, _ in _interpreters.list_all()]
    whence = dict(listed)
    assert whence[0] == "runtime init"
    assert whence[raw] == "_interpreters module"
    assert whence[ours.id] == "_interpreters module"
    ours.close()


@pytest.mark.skipif(not HAS_STDLIB, reason="concurrent.interpreters is 3.14+")
def test_side_by_side_with_the_stdlib_on_its_interpreters():
    import concurrent.interpreters as ci

    theirs = ci.create()
    ours = interpreters.Interpreter(theirs.id)
    assert ours.whence == theirs.whence == "_interpreters module"
    assert {i.id for i in interpreters.list_all()} == {i.id for i in ci.list_all()}
    assert ours.is_running() is theirs.is_running() is False
    ours.close()  # the stdlib's close() works on them: so does ours
    with pytest.raises(ci.InterpreterNotFoundError):
        theirs.is_running()


def test_stdlib_sees_a_crossinterp_exec_running(interp):
    iid = interp.id
    assert not _interpreters.is_running(iid)
    t = threading.Thread(target=interp.exec, args=("import time; time.sleep(0.6)",))
    t.start()
    try:
        assert wait_for(lambda: _interpreters.is_running(iid))
        assert interp.is_running()
        # CPython's destroy refuses it, as for its own running interpreters.
        with pytest.raises(_interpreters.InterpreterError, match="running"):
            _interpreters.destroy(iid)
    finally:
        t.join()
    assert not _interpreters.is_running(iid)
    assert not interp.is_running()


def test_stdlib_sees_a_crossinterp_call_running(interp):
    t = threading.Thread(target=interp.call, args=(time.sleep, 0.6))
    t.start()
    try:
        assert wait_for(lambda: _interpreters.is_running(interp.id))
    finally:
        t.join()
    assert not _interpreters.is_running(interp.id)


def test_crossinterp_sees_a_stdlib_exec_running_and_will_not_close(raw, interp):
    for iid in (raw, interp.id):
        t = threading.Thread(target=_interpreters.run_string, args=(iid, "import time; time.sleep(0.6)"))
        t.start()
        try:
            it = interpreters.Interpreter(iid)
            assert wait_for(it.is_running)
            # Closing an interpreter that runs someone else's code would end it
            # under them: refused, whoever made it.
            with pytest.raises(interpreters.InterpreterError, match="running"):
                it.close()
        finally:
            t.join()
        assert not interpreters.Interpreter(iid).is_running()
        assert iid in cpython_ids()


# 2.4: the last Interpreter object closes an interpreter made by create() ------


def test_last_interpreter_object_closes_it():
    iid = interpreters.create().id
    gc.collect()
    assert iid not in cpython_ids()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        interpreters.Interpreter(iid)


def test_objects_recreated_from_the_id_keep_it_alive():
    a = interpreters.create()
    iid = a.id
    b = interpreters.Interpreter(iid)
    assert b is a
    listed = [i for i in interpreters.list_all() if i.id == iid]
    assert listed == [a]
    assert listed[0] is a
    del a, b, listed
    gc.collect()
    assert iid not in cpython_ids()


def test_an_object_in_another_interpreter_keeps_it_alive(interp):
    target = interpreters.create()
    iid = target.id
    interp.prepare_main(t=target)  # an Interpreter object there, for the same id
    interp.exec(f"assert t.id == {iid} and t.whence == '_interpreters module'")
    del target
    gc.collect()
    assert iid in cpython_ids()  # the other interpreter's object holds it
    interp.exec("del t; import gc; gc.collect()")
    assert wait_for(lambda: iid not in cpython_ids())


def test_a_running_interpreter_is_never_closed_by_collection():
    it = interpreters.create()
    iid = it.id
    t = threading.Thread(target=_native.exec, args=(iid, "import time; time.sleep(0.5)"))
    t.start()
    try:
        assert wait_for(lambda: _native.is_running(iid))
        del it
        gc.collect()
        assert iid in cpython_ids()
    finally:
        t.join()
    assert iid in cpython_ids()  # it lives on until close() or exit
    interpreters.Interpreter(iid).close()
    assert iid not in cpython_ids()


@pytest.mark.skipif(not HAS_STDLIB, reason="concurrent.interpreters is 3.14+")
def test_our_object_holds_a_stdlib_interpreter_as_the_stdlib_does():
    import concurrent.interpreters as ci

    theirs = ci.create()
    iid = theirs.id
    ours = interpreters.Interpreter(iid)
    del theirs
    gc.collect()
    assert iid in cpython_ids()
    del ours
    gc.collect()
    assert iid not in cpython_ids()


# 2.11: exit with interpreters still open ---------------------------------------

EXIT_SCRIPT = """
import crossinterp.interpreters as xi
a = xi.create()
a.exec("import atexit; atexit.register(lambda: print('sub atexit ran', flush=True))")
b = xi.create()
print("ready", flush=True)
"""


def test_exit_closes_our_open_interpreters_cleanly():
    r = run_script(EXIT_SCRIPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ready", "sub", "atexit", "ran"]
    # Closed by crossinterp at exit, before CPython would warn about them.
    assert "remaining subinterpreters" not in r.stderr
    assert r.stderr == ""


@pytest.mark.skipif(not HAS_STDLIB, reason="the stdlib's warning is 3.14+")
def test_exit_leaves_the_stdlibs_interpreters_to_cpython():
    r = run_script(EXIT_SCRIPT + "import concurrent.interpreters as ci\nc = ci.create()\n")
    assert r.returncode == 0, r.stderr
    assert "sub atexit ran" in r.stdout
    assert "RuntimeWarning: remaining subinterpreters" in r.stderr
