"""Zero-copy memoryviews of interpreter-owned objects: the memory is pinned
in its owner, read-only elsewhere, released in its owner."""

import threading
import time

import helpers
import pytest

from crossinterp import _native, interpreters
from crossinterp.queues import Queue


def test_memoryview_crosses_without_copy(interp):
    data = bytearray(b"hello world")
    name, content, readonly = interp.call(helpers.view_info, memoryview(data))
    assert (name, content, readonly) == ("BorrowedBuffer", b"hello world", True)


def test_same_memory_not_a_copy(interp):
    data = bytearray(b"before")
    q = Queue()
    interp.prepare_main(q=q)
    q.put(memoryview(data))
    interp.exec("b = q.get(timeout=5)")
    data[:6] = b"after!"  # the owner writes; the other side sees it
    assert interp.call(helpers.main_eval, "bytes(memoryview(b))") == b"after!"
    interp.exec("del b")


def test_back_in_its_owner_it_is_a_memoryview(interp):
    src = b"round trip"
    q = Queue()
    interp.prepare_main(q=q)
    q.put(memoryview(src))
    interp.exec("q.put(q.get(timeout=5))")  # B forwards the lent buffer back
    back = q.get(timeout=5)
    assert type(back) is memoryview and back.obj is src


def test_export_pins_the_owner_and_close_waits():
    owner = interpreters.create()
    owner.exec("data = bytearray(b'x' * 64)")
    q = Queue()
    owner.prepare_main(q=q)
    owner.exec("q.put(memoryview(data))")
    b = q.get(timeout=5)
    assert type(b).__name__ == "BorrowedBuffer" and b.owner == owner.id and b.alive
    mv = memoryview(b)
    closed = []
    t = threading.Thread(target=lambda: (owner.close(), closed.append(time.monotonic())))
    t.start()
    time.sleep(0.3)
    assert closed == []  # finalization waits for our export
    assert mv.tobytes() == b"x" * 64  # the memory is still valid
    released_at = time.monotonic()
    mv.release()
    t.join(10)
    assert closed and closed[0] >= released_at
    # The owner is gone: no new export.
    assert not b.alive
    with pytest.raises(interpreters.InterpreterGoneError):
        memoryview(b)


def test_release_runs_in_the_owner():
    owner = interpreters.create()
    owner.exec("import sys; data = bytearray(16)")
    q = Queue()
    owner.prepare_main(q=q)
    owner.exec("q.put(memoryview(data))")
    b = q.get(timeout=5)
    # While lent, the owner's bytearray is exported: resizing it must fail.
    with pytest.raises(interpreters.ExecutionFailed) as ei:
        owner.exec("data.extend(b'more')")
    assert ei.value.excinfo.type.__name__ == "BufferError"
    b.release()
    with pytest.raises(ValueError):
        len(b)
    # The release was queued on the owner; its next entry runs it first.
    owner.exec("data.extend(b'more')")
    assert owner.call(helpers.main_eval, "len(data)") == 20
    owner.close()


def test_release_refused_while_exported(interp):
    data = bytes(8)
    interp.prepare_main(v=memoryview(data))
    with pytest.raises(interpreters.ExecutionFailed) as ei:
        interp.exec("m = memoryview(v); v.release()")
    assert ei.value.excinfo.type.__name__ == "BufferError"
    interp.exec("m.release(); v.release()")


def test_non_contiguous_memoryview_is_refused(interp):
    mv = memoryview(bytes(range(10)))[::2]
    with pytest.raises(BufferError):
        interp.call(helpers.view_info, mv)


def test_failed_write_through_a_temporary_view_keeps_its_error(interp):
    q = interpreters.create_queue()
    interp.prepare_main(q=q)
    q.put(memoryview(bytearray(b"abc")))
    interp.exec(
        "b = q.get(timeout=5)\n"
        "try:\n"
        "    memoryview(b)[0] = 1\n"
        "except BaseException as e:\n"
        "    q.put(type(e).__name__)\n"
        "del b"
    )
    assert q.get(timeout=5) == "TypeError"


def test_borrowed_buffer_cannot_be_instantiated():
    with pytest.raises(TypeError):
        _native.BorrowedBuffer()


def test_exit_while_holding_a_lent_memoryview_does_not_hang():
    from conftest import run_script

    r = run_script(
        """
        import crossinterp
        from crossinterp import interpreters
        from crossinterp.queues import Queue
        crossinterp.set_finalize_warn_after(0.2)
        owner = interpreters.create()
        q = Queue()
        owner.prepare_main(q=q)
        owner.exec("data = bytearray(b'z' * 32); q.put(memoryview(data))")
        b = q.get(timeout=5)
        mv = memoryview(b)  # still exported when the process exits
        assert mv.tobytes() == b'z' * 32
        print("exiting")
        """,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting"
    assert "process is exiting" in r.stderr and "must not be used" in r.stderr


def test_close_still_waits_for_lent_exports_outside_exit():
    # Outside process exit, a pin still holds the owner's close (as tested
    # above with a thread); the exit relaxation must not leak into close().
    owner = interpreters.create()
    q = Queue()
    owner.prepare_main(q=q)
    owner.exec("data = bytearray(4); q.put(memoryview(data))")
    b = q.get(timeout=5)
    mv = memoryview(b)
    done = []
    t = threading.Thread(target=lambda: (owner.close(), done.append(1)))
    t.start()
    time.sleep(0.3)
    assert done == []
    mv.release()
    t.join(10)
    assert done == [1]
