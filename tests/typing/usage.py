"""A user program that exercises every documented API of crossinterp.

Checked by ``mypy --strict`` and pyright in strict mode (tests/typing/
test_typing.py: neither may report anything), and run, so that what the
checkers accept also works. ``assert_type`` lines pin what the checkers infer.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, assert_type

import crossinterp
from crossinterp import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    AtomicBool,
    AtomicDict,
    AtomicFlag,
    AtomicInt,
    AtomicRef,
    Channel,
    CycleWarning,
    ExecutionFailed,
    FinalizationWarning,
    InterpreterError,
    InterpreterFinalizingError,
    InterpreterGoneError,
    InterpreterGuard,
    InterpreterNotFoundError,
    InterpreterView,
    NotShareableError,
    Queue,
    SharedBuffer,
    SharedMethodProxy,
    SharedObjectProxy,
    channels,
    interpreters,
    queues,
)
from crossinterp.futures import BrokenInterpreterPool, InterpreterPoolExecutor


def square(x: int) -> int:
    return x * x


def greet(name: str, *, punct: str = "!") -> str:
    return f"hello {name}{punct}"


def run_interpreters() -> None:
    interp = interpreters.create()
    assert_type(interp, interpreters.Interpreter)
    assert_type(interp.id, int)
    assert_type(interp.whence, str)
    assert_type(interp.is_running(), bool)
    interp.prepare_main({"a": 1}, b="two")
    interp.prepare_main(c=3.0)
    interp.exec("x = a + 1")
    interp.exec(lambda: None)
    assert_type(interp.call(square, 7), int)
    assert interp.call(greet, "you", punct="?") == "hello you?"
    t = interp.call_in_thread(square, 3)
    assert_type(t, threading.Thread)
    t.join()
    view = interp.view()
    assert_type(view, InterpreterView)
    assert_type(view.id, int)
    assert_type(view.is_alive(), bool)
    assert_type(view.state(), str)
    with view.guard() as guard:
        assert_type(guard, InterpreterGuard)
        assert guard.is_open()
        assert guard.view().id == interp.id
    guard.close()
    assert_type(InterpreterView.current(), InterpreterView)
    try:
        interp.exec("raise ValueError('boom')")
    except ExecutionFailed as e:
        assert e.excinfo.type.__name__ == "ValueError"
    assert_type(interpreters.list_all(), list[interpreters.Interpreter])
    assert_type(interpreters.get_current(), interpreters.Interpreter)
    assert_type(interpreters.get_main(), interpreters.Interpreter)
    assert interpreters.is_shareable(1)
    assert interpreters.Interpreter(interp.id) is interp
    interp.close()
    with interpreters.create() as scoped:
        assert_type(scoped, interpreters.Interpreter)
        scoped.exec("pass")
    warning: type[RuntimeWarning] = FinalizationWarning
    leak: type[RuntimeWarning] = CycleWarning
    assert issubclass(leak, Warning)
    assert issubclass(warning, Warning)
    errors: tuple[type[Exception], ...] = (
        InterpreterError,
        InterpreterNotFoundError,
        InterpreterGoneError,
        InterpreterFinalizingError,
        NotShareableError,
        interpreters.InterpreterError,
    )
    assert all(issubclass(e, Exception) for e in errors)


def run_queues() -> None:
    q: Queue[int] = queues.create(maxsize=4, unbounditems=UNBOUND_ERROR)
    q.put(1)
    q.put(2, block=True, timeout=1.0)
    q.put_nowait(3, unbounditems=UNBOUND_REMOVE, strict=True)
    assert_type(q.get(), int)
    assert_type(q.get(timeout=0.5), int)
    assert_type(q.get_nowait(), int)
    assert_type(q.qsize(), int)
    assert_type(q.empty(), bool)
    assert_type(q.full(), bool)
    assert_type(q.id, int)
    assert_type(q.maxsize, int)
    assert q.unbounditems is UNBOUND_ERROR
    assert Queue(q.id) is q
    try:
        q.get_nowait()
    except queues.QueueEmpty:
        pass
    except interpreters.QueueError:
        raise
    q2: Queue[str] = interpreters.create_queue(unbounditems=UNBOUND)
    q2.put("x")
    assert q2.get() == "x"
    assert q in queues.list_all()
    alias = Queue[int]
    assert isinstance(alias, types.GenericAlias)
    full: type[Exception] = interpreters.QueueFull
    assert issubclass(full, queues.QueueError)
    assert issubclass(queues.QueueNotFoundError, interpreters.QueueNotFoundError)
    assert issubclass(queues.ItemInterpreterDestroyed, queues.QueueError)


def run_channels() -> None:
    ch: Channel[bytes] = channels.create()
    assert_type(ch.send_nowait(b"x"), bool)
    assert_type(ch.recv_nowait(None), bytes | None)
    assert_type(ch.id, int)
    assert_type(ch.pending, int)
    assert_type(ch.closed, bool)
    try:
        ch.recv_nowait()
    except channels.ChannelEmptyError:
        pass
    done: list[bytes] = []
    t = threading.Thread(target=lambda: done.append(ch.recv(timeout=10)))
    t.start()
    ch.send(b"hi", timeout=10)
    t.join()
    assert done == [b"hi"]
    ch.close(send=True)
    for item in ch:
        assert_type(item, bytes)
    assert_type(ch.close(), int)
    assert ch.send_closed and ch.recv_closed
    assert isinstance(Channel[bytes], types.GenericAlias)
    assert issubclass(channels.ChannelClosedError, channels.ChannelError)
    assert issubclass(channels.ChannelNotEmptyError, channels.ChannelError)
    assert issubclass(channels.ChannelNotFoundError, channels.ChannelError)


def run_sharing() -> None:
    counts: dict[str, int] = {"a": 1}
    proxy = crossinterp.share(counts)
    assert_type(proxy, dict[str, int])
    proxy["b"] = 2
    total: int = sum(proxy.values())
    assert total == 3
    assert crossinterp.proxy_owner(proxy) is None or isinstance(crossinterp.proxy_owner(proxy), int)
    assert_type(crossinterp.live_owners(), int)
    old = crossinterp.set_finalize_warn_after(10.0)
    assert_type(old, float)
    proxy_types: tuple[type, ...] = (SharedObjectProxy, SharedMethodProxy)
    assert len(proxy_types) == 2


def run_buffers() -> None:
    buf = SharedBuffer(16)
    assert_type(buf.nbytes, int)
    assert_type(buf.readonly, bool)
    assert_type(buf.released, bool)
    with memoryview(buf) as m:
        m[0] = 7
    copy = SharedBuffer.copy_of(b"abc", readonly=True)
    assert bytes(copy) == b"abc"
    assert len(buf) == 16
    buf.release()
    with SharedBuffer(8) as scoped:
        assert_type(scoped, SharedBuffer)
    assert scoped.released


def run_atomics() -> None:
    n = AtomicInt(1)
    assert_type(n.add(2), int)
    assert_type(n.fetch_add(), int)
    assert_type(n.compare_and_set(4, 5), bool)
    assert_type(n.update(lambda v: v * 2), int)
    n += 1
    assert int(n) == 11
    flag: AtomicBool = AtomicFlag(False)
    assert_type(flag.toggle(), bool)
    ref: AtomicRef[list[int]] = AtomicRef([1])
    assert_type(ref.get(), list[int])
    assert_type(ref.get_and_set([2]), list[int])
    assert ref.compare_and_set(ref.get(), [3])
    empty = AtomicRef()
    assert_type(empty, AtomicRef[None])
    d: AtomicDict[str, int] = AtomicDict({"a": 1})
    d["b"] = 2
    assert_type(d["a"], int)
    assert_type(d.get("z"), int | None)
    assert_type(d.update("a", lambda v: v + 1, 0), int)
    d.reduce_count(["a", "a"])
    d.reduce([("a", 1)], lambda x, y: x + y)
    assert_type(d.to_dict(), dict[str, int])
    assert_type(d.items(), list[tuple[str, int]])
    assert isinstance(AtomicDict[str, int], types.GenericAlias)
    assert isinstance(AtomicRef[int], types.GenericAlias)


def run_executor() -> None:
    with InterpreterPoolExecutor(max_workers=2, thread_name_prefix="usage") as ex:
        assert_type(ex, InterpreterPoolExecutor)
        fut = ex.submit(square, 6)
        assert_type(fut, concurrent.futures.Future[int])
        assert fut.result(timeout=120) == 36
        assert_type(ex.submit(greet, "you", punct="?").result(timeout=120), str)
        squares = ex.map(square, range(10), chunksize=3)
        assert_type(squares, Iterator[int])
        assert list(squares) == [x * x for x in range(10)]
        pairs = ex.map(greet, ["a", "b"], timeout=120)
        assert list(pairs) == ["hello a!", "hello b!"]
    ex.shutdown(wait=True, cancel_futures=False)
    assert crossinterp.InterpreterPoolExecutor is InterpreterPoolExecutor
    assert crossinterp.BrokenInterpreterPool is BrokenInterpreterPool
    executor: concurrent.futures.Executor = crossinterp.InterpreterPoolExecutor(1)
    executor.shutdown()
    assert issubclass(BrokenInterpreterPool, concurrent.futures.thread.BrokenThreadPool)
    # An initializer that fails (square of a str) breaks the pool.
    broken = InterpreterPoolExecutor(1, initializer=square, initargs=("x",))
    try:
        broken.submit(square, 2).result(timeout=120)
    except BrokenInterpreterPool as e:
        assert_type(e, BrokenInterpreterPool)
    else:
        raise AssertionError("the pool should be broken")
    finally:
        broken.shutdown(wait=True)


def run_dask() -> None:
    import crossinterp.dask

    with InterpreterPoolExecutor(max_workers=1) as ex:
        if importlib.util.find_spec("dask") is None:  # Dask is optional
            try:
                crossinterp.dask.scheduler(ex)
            except ImportError:
                pass
            else:
                raise AssertionError("scheduler() without Dask")
        else:
            get = crossinterp.dask.scheduler(ex)
            assert_type(get, Callable[..., Any])
            assert get({"x": (square, 3)}, "x") == 9
    if importlib.util.find_spec("distributed") is not None:
        plugin = crossinterp.dask.InterpreterWorkerPlugin(max_workers=2)
        assert plugin.max_workers == 2


def main() -> None:
    run_interpreters()
    run_queues()
    run_channels()
    run_sharing()
    run_buffers()
    run_atomics()
    run_executor()
    run_dask()
    print("usage: ok")


if __name__ == "__main__":
    main()
