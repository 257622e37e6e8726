"""Interpreter views and guards from Python (PEP 788's model)."""

import pickle
import threading
import time

import pytest
from conftest import run_script

import crossinterp
from crossinterp import InterpreterGuard, InterpreterView, interpreters


def test_view_is_weak_and_reports_liveness():
    it = interpreters.create()
    view = it.view()
    assert isinstance(view, InterpreterView)
    assert view.id == it.id
    assert view.is_alive() and view.state() == "running"
    assert view == it.view() and hash(view) == hash(it.view())
    it.close()  # the view does not keep it alive
    assert not view.is_alive()
    assert view.state() == "finalized"
    with pytest.raises(interpreters.InterpreterGoneError):
        view.guard()


def test_current_view():
    v = InterpreterView.current()
    assert v.id == interpreters.get_current().id
    assert v.is_alive()


def test_current_view_inside_a_subinterpreter(interp):
    interp.exec(
        """if True:
        from crossinterp.interpreters import InterpreterView, get_current
        assert InterpreterView.current().id == get_current().id
        """
    )


def test_guard_context_manager_and_close():
    it = interpreters.create()
    try:
        g = it.view().guard()
        assert isinstance(g, InterpreterGuard) and g.is_open()
        with g as same:
            assert same is g
        assert not g.is_open()
        g.close()  # idempotent
        with pytest.raises(interpreters.InterpreterError):
            g.__enter__()
        with it.view().guard():
            pass
    finally:
        it.close()


def test_close_waits_for_a_guard_held_by_another_thread():
    it = interpreters.create()
    view = it.view()
    held = threading.Event()

    def hold():
        with view.guard():
            held.set()
            time.sleep(0.5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    t0 = time.monotonic()
    it.close()
    waited = time.monotonic() - t0
    t.join()
    assert waited >= 0.4
    assert not view.is_alive()


def test_close_from_the_thread_holding_a_guard_is_refused():
    it = interpreters.create()
    g = it.view().guard()
    with pytest.raises(interpreters.InterpreterError, match="holds an open guard"):
        it.close()
    g.close()
    it.close()


def test_guard_refused_while_finalizing():
    it = interpreters.create()
    view = it.view()
    blocker = view.guard()
    closer = threading.Thread(target=it.close)
    closer.start()
    try:
        assert_eventually = time.monotonic() + 5
        while view.state() == "running" and time.monotonic() < assert_eventually:
            time.sleep(0.01)
        assert view.state() == "finalizing"
        with pytest.raises(interpreters.InterpreterFinalizingError):
            view.guard()
    finally:
        blocker.close()
        closer.join()
    assert view.state() == "finalized"


def test_guards_and_views_do_not_pickle():
    it = interpreters.create()
    try:
        view = it.view()
        with pytest.raises(crossinterp.NotShareableError):
            pickle.dumps(view)
        with view.guard() as g, pytest.raises(crossinterp.NotShareableError):
            pickle.dumps(g)
    finally:
        it.close()


def test_forgotten_guard_warns_and_exit_still_completes():
    r = run_script(
        """
        import threading, time
        import crossinterp
        from crossinterp import interpreters
        crossinterp.set_finalize_warn_after(0.1)
        it = interpreters.create()
        view = it.view()
        def hold():
            g = view.guard()
            time.sleep(0.6)
            g.close()
        t = threading.Thread(target=hold)
        t.start()
        time.sleep(0.05)
        it.close()
        t.join()
        print("closed", view.is_alive())
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "closed False"
    assert "FinalizationWarning: finalization of interpreter" in r.stderr and "open guard" in r.stderr


def test_guard_on_itself_left_open_does_not_hang_its_exit():
    r = run_script(
        """
        from crossinterp import interpreters
        it = interpreters.create()
        it.exec("from crossinterp.interpreters import InterpreterView\\n"
                "g = InterpreterView.current().guard()")
        it.close()
        print("closed")
        """,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "closed"
    assert "FinalizationWarning: interpreter" in r.stderr and "guard(s) on itself" in r.stderr


def test_process_exit_with_guards_held_by_main_objects_is_clean():
    r = run_script(
        """
        from crossinterp import interpreters
        it = interpreters.create()
        g = it.view().guard()   # never closed: the exit must not hang on it
        print("bye")
        """,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bye"


@pytest.mark.skipif(
    not crossinterp._native.has_pep788(), reason="PEP 788 guards exist on 3.15+ only"
)
def test_pep788_guard_held_by_c_code_keeps_the_owner_alive():
    # A PyInterpreterGuard taken through the C API (by ctypes, as C code
    # would) must hold off the interpreter's finalization, ours included.
    r = run_script(
        """
        import ctypes, threading, time
        from crossinterp import interpreters
        api = ctypes.pythonapi
        api.PyInterpreterView_FromCurrent.restype = ctypes.c_void_p
        api.PyInterpreterGuard_FromView.restype = ctypes.c_void_p
        api.PyInterpreterGuard_FromView.argtypes = [ctypes.c_void_p]
        api.PyInterpreterGuard_Close.argtypes = [ctypes.c_void_p]
        api.PyInterpreterView_Close.argtypes = [ctypes.c_void_p]
        it = interpreters.create()
        view = it.view()
        # A PEP 788 view of the sub-interpreter, made there.
        it.exec("import ctypes\\n"
                "ctypes.pythonapi.PyInterpreterView_FromCurrent.restype = ctypes.c_void_p\\n"
                "v = ctypes.pythonapi.PyInterpreterView_FromCurrent()")
        from helpers import main_eval
        v = it.call(main_eval, "v")
        g = api.PyInterpreterGuard_FromView(v)
        assert g
        closer = threading.Thread(target=it.close)
        t0 = time.monotonic()
        closer.start()
        time.sleep(0.5)
        alive_while_held = view.state() != "finalized"
        api.PyInterpreterGuard_Close(g)
        closer.join()
        api.PyInterpreterView_Close(v)
        print(alive_while_held, time.monotonic() - t0 >= 0.45, view.state())
        """,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "finalized"]
