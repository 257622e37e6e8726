"""Python conventions (issue 15 part 4): context managers, FinalizationWarning
through `warnings`, reprs that say what a debugger needs, generic classes
subscriptable at run time."""

import types
import warnings

import pytest
from conftest import run_script

import crossinterp
from crossinterp import (
    AtomicDict,
    AtomicRef,
    Channel,
    FinalizationWarning,
    Queue,
    SharedBuffer,
    _native,
    interpreters,
    share,
)

# --- with-blocks ------------------------------------------------------------


def test_with_interpreter_closes_it_on_exit():
    with interpreters.create() as interp:
        assert interp.call(int, "7") == 7
        iid = interp.id
    assert iid not in [i.id for i in interpreters.list_all()]
    with pytest.raises(interpreters.InterpreterNotFoundError):
        interp.exec("1")


def test_with_interpreter_closes_it_when_the_block_raises():
    with pytest.raises(ZeroDivisionError), interpreters.create() as interp:
        1 / 0  # noqa: B018
    with pytest.raises(interpreters.InterpreterNotFoundError):
        interp.exec("1")


def test_with_interpreter_closed_inside_the_block_is_fine():
    with interpreters.create() as interp:
        interp.close()
    # no error on exit, and it stays closed
    with pytest.raises(interpreters.InterpreterNotFoundError):
        interp.exec("1")


def test_with_shared_buffer_releases_it():
    with SharedBuffer(8) as buf:
        assert isinstance(buf, SharedBuffer)
        memoryview(buf)[0] = 1
    assert buf.released
    with pytest.raises(ValueError, match="released"):
        len(buf)
    with pytest.raises(ValueError, match="released"), buf:
        pass


def test_with_shared_buffer_with_a_live_memoryview_raises_buffer_error():
    with pytest.raises(BufferError) as info, SharedBuffer(8) as buf:
        m = memoryview(buf)
        raise KeyError("inner")
    assert isinstance(info.value.__context__, KeyError)  # the block's error is kept
    assert not buf.released
    m.release()
    buf.release()


# --- FinalizationWarning ----------------------------------------------------


def test_finalization_warning_goes_through_warnings_in_the_closer():
    assert issubclass(FinalizationWarning, RuntimeWarning)
    old = crossinterp.set_finalize_warn_after(0.1)
    try:
        it = interpreters.create()
        _native._testing_hold_guard(it.id, 0.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            it.close()
    finally:
        crossinterp.set_finalize_warn_after(old)
    ours = [w for w in caught if issubclass(w.category, FinalizationWarning)]
    assert ours, [str(w.message) for w in caught]
    assert all(f"interpreter {it.id} " in str(w.message) for w in ours)
    assert all("open guard" in str(w.message) for w in ours)
    assert ours[0].filename == __file__  # stacklevel: the caller of close()


def test_finalization_warning_as_error_does_not_break_the_close():
    r = run_script(
        """
        import warnings
        import crossinterp
        from crossinterp import _native, interpreters
        warnings.simplefilter("error", crossinterp.FinalizationWarning)
        crossinterp.set_finalize_warn_after(0.1)
        it = interpreters.create()
        _native._testing_hold_guard(it.id, 0.4)
        it.close()
        print("closed", it.id in [i.id for i in interpreters.list_all()])
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "closed False"
    assert "FinalizationWarning" in r.stderr  # reported as unraisable


def test_finalization_warning_falls_back_to_stderr_without_a_closer():
    # A guard an interpreter holds on itself, closed by its own exit, which
    # CPython's _interpreters runs (not crossinterp's close()): no interpreter
    # can take the warning.
    r = run_script(
        """
        import _interpreters
        from crossinterp import interpreters
        it = interpreters.create()
        it.exec("from crossinterp.interpreters import InterpreterView\\n"
                "g = InterpreterView.current().guard()")
        print("id", it.id)
        _interpreters.destroy(it.id)
        """,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    iid = int(r.stdout.split()[1])
    assert f"crossinterp: FinalizationWarning: interpreter {iid} is exiting with 1 guard(s)" in r.stderr


# --- reprs ------------------------------------------------------------------


def test_proxy_repr_says_proxy_type_and_owner():
    p = share({"a": 1})
    assert repr(p) == "<SharedObjectProxy of dict owned by interpreter 0: {'a': 1}>"
    assert str(p) == "{'a': 1}"
    assert repr(p.get) == "<SharedMethodProxy dict.get owned by interpreter 0>"


def test_queue_and_channel_repr_say_id_and_size():
    q = interpreters.create_queue(maxsize=3)
    q.put(1)
    q.put(2)
    assert repr(q) == f"Queue(id={q.id}, maxsize=3, qsize=2)"
    ch = Channel()
    assert repr(ch) == f"Channel(id={ch.id}, pending=0)"
    ch.close(send=True)
    assert repr(ch) == f"Channel(id={ch.id}, pending=0, send_closed=True)"


def test_interpreter_repr_says_id_and_whence():
    main = interpreters.get_main()
    assert repr(main) == "Interpreter(id=0, whence='runtime init')"
    with interpreters.create() as interp:
        assert repr(interp) == f"Interpreter(id={interp.id}, whence='_interpreters module')"


def test_shared_buffer_repr_says_size_and_lend_state():
    buf = SharedBuffer(16, readonly=True)
    assert repr(buf) == "<SharedBuffer nbytes=16 readonly=True memoryviews=0>"
    with memoryview(buf):
        assert repr(buf) == "<SharedBuffer nbytes=16 readonly=True memoryviews=1>"
    buf.release()
    assert repr(buf) == "<SharedBuffer released>"


def test_borrowed_buffer_repr_says_size_owner_and_lend_state(interp):
    q = Queue()
    interp.prepare_main(q=q)
    interp.exec("q.put(memoryview(b'x' * 64))")
    b = q.get(timeout=10)
    assert repr(b) == f"<BorrowedBuffer nbytes=64 owner={interp.id} alive memoryviews=0>"
    with memoryview(b):
        assert repr(b).endswith("memoryviews=1>")


# --- generic classes at run time ---------------------------------------------


@pytest.mark.parametrize(
    ("alias", "origin", "args"),
    [
        (lambda: Queue[int], Queue, (int,)),
        (lambda: Channel[bytes], Channel, (bytes,)),
        (lambda: AtomicRef[list[int]], AtomicRef, (list[int],)),
        (lambda: AtomicDict[str, int], AtomicDict, (str, int)),
    ],
)
def test_generic_classes_subscript_to_generic_alias(alias, origin, args):
    a = alias()
    assert type(a) is types.GenericAlias
    assert a.__origin__ is origin and a.__args__ == args


def test_class_getitem_bad_arity_is_a_type_error():
    with pytest.raises(TypeError):
        AtomicRef.__class_getitem__()
    with pytest.raises(TypeError):
        Queue.__class_getitem__(int, str)
