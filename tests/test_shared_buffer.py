"""SharedBuffer: owner-free, zero-copy memory shared by interpreters."""

import array
import gc

import helpers
import pytest

from crossinterp import SharedBuffer, interpreters
from crossinterp.queues import Queue


def test_zero_filled_aligned_writable():
    buf = SharedBuffer(1000)
    assert len(buf) == buf.nbytes == 1000 and not buf.readonly
    mv = memoryview(buf)
    assert mv.nbytes == 1000 and not mv.readonly and mv.tobytes() == bytes(1000)
    mv[:4] = b"abcd"
    assert bytes(memoryview(buf)[:4]) == b"abcd"
    # 64-byte aligned: visible through ctypes' address of the exported buffer.
    import ctypes

    addr = ctypes.addressof(ctypes.c_char.from_buffer(mv))
    assert addr % 64 == 0
    mv.release()


def test_empty_buffer():
    buf = SharedBuffer(0)
    assert len(buf) == 0 and memoryview(buf).tobytes() == b""


def test_readonly():
    buf = SharedBuffer(8, readonly=True)
    assert buf.readonly
    mv = memoryview(buf)
    assert mv.readonly
    with pytest.raises(TypeError):
        mv[0] = 1
    mv.release()


def test_failed_write_through_a_temporary_memoryview_keeps_its_error():
    # The temporary memoryview is released while the TypeError is pending;
    # the release must neither report it as its own failure nor lose it.
    buf = SharedBuffer(8, readonly=True)
    with pytest.raises(TypeError, match="read-only"):
        memoryview(buf)[0] = 1
    with pytest.raises(ValueError, match="invalid literal"), memoryview(buf):
        int("x")
    assert memoryview(buf).tobytes() == bytes(8)


def test_copy_of():
    src = array.array("i", range(10))
    buf = SharedBuffer.copy_of(src)
    assert bytes(memoryview(buf)) == src.tobytes()
    assert SharedBuffer.copy_of(b"xyz", readonly=True).readonly
    with pytest.raises(TypeError):
        SharedBuffer.copy_of("not a buffer")


def test_bad_sizes():
    with pytest.raises(ValueError):
        SharedBuffer(-1)
    with pytest.raises(TypeError):
        SharedBuffer("10")
    with pytest.raises((MemoryError, OverflowError)):
        SharedBuffer(2**62)
    with pytest.raises(OverflowError):
        SharedBuffer(2**64)


def test_release_rules():
    buf = SharedBuffer(16)
    mv = memoryview(buf)
    with pytest.raises(BufferError):
        buf.release()
    mv.release()
    buf.release()
    assert buf.released
    with pytest.raises(ValueError):
        len(buf)
    with pytest.raises(BufferError):
        memoryview(buf)
    buf.release()  # idempotent


def test_zero_copy_across_interpreters(interp):
    buf = SharedBuffer(64 * 1024)
    q = Queue()
    interp.prepare_main(q=q, buf=buf)
    interp.exec("mv = memoryview(buf); mv[:4] = b'done'; q.put(('ok', len(mv))); mv.release()")
    assert q.get(timeout=5) == ("ok", 64 * 1024)
    assert bytes(memoryview(buf)[:4]) == b"done"
    # And back: the other interpreter's object is the same memory.
    other = interp.call(helpers.main_eval, "buf")
    memoryview(other)[4:8] = b"back"
    assert interp.call(helpers.main_eval, "bytes(memoryview(buf)[4:8])") == b"back"


def test_memory_outlives_the_interpreter_that_made_it():
    it = interpreters.create()
    it.exec("from crossinterp import SharedBuffer; b = SharedBuffer(8); memoryview(b)[:] = b'12345678'")
    buf = it.call(helpers.main_eval, "b")
    it.close()
    gc.collect()
    assert bytes(memoryview(buf)) == b"12345678"


def test_shareable():
    assert interpreters.is_shareable(SharedBuffer(1))
    released = SharedBuffer(1)
    released.release()
    with pytest.raises(ValueError):
        interpreters.is_shareable(released)


def test_memoryview_of_a_whole_shared_buffer_crosses_as_the_buffer(interp):
    buf = SharedBuffer(16)
    got = interp.call(helpers.identity, memoryview(buf))
    assert type(got) is SharedBuffer and not got.readonly
    memoryview(got)[:2] = b"ok"
    assert bytes(memoryview(buf)[:2]) == b"ok"
    # A slice is lent (read-only) instead.
    part = interp.call(helpers.view_info, memoryview(buf)[2:4])
    assert part == ("BorrowedBuffer", bytes(2), True)


def test_nbytes_bool_is_refused():
    with pytest.raises(TypeError):
        SharedBuffer(True)
    with pytest.raises(TypeError):
        SharedBuffer(nbytes=False)
