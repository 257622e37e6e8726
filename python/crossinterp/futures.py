"""``InterpreterPoolExecutor``: run callables on a pool of own-GIL subinterpreters.

The API and behaviour of the stdlib's
``concurrent.futures.InterpreterPoolExecutor`` (3.14), on 3.13, 3.13t, 3.14
and 3.15::

    from crossinterp.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(max_workers=4) as ex:
        total = sum(ex.map(score, records, chunksize=256))
        print(ex.submit(lambda a, b: a + b, 20, 22).result())

How it works (see docs/guide.md, "InterpreterPoolExecutor"):

- It is a :class:`concurrent.futures.ThreadPoolExecutor` (its queue, its
  futures, its shutdown) whose every worker thread owns one warm interpreter
  (:func:`crossinterp.interpreters.create`), made when the thread starts,
  reused for every task it runs, closed when it ends.
- A task crosses with :meth:`Interpreter.call` (crossinterp's native call,
  from the worker thread): the arguments and the result by the value rules of
  ``call`` (native copies, else pickle). The alternative, tasks over a
  crossinterp queue to a loop thread parked in each worker interpreter and a
  collector thread here completing the futures, is measured against this one
  by benchmarks/bench_executor.py (case 7, a prototype): on 3.14 ``call`` has
  the faster round trip (17 vs 31 us) and the queues the better throughput
  with many tasks in flight (4.3 vs 6.0 us per task); on 3.13t the queues
  win both (36 vs 88 us, 7.7 vs 11.5 us) (loaded 2-CPU machine, indicative).
  ``call`` is kept for now because a worker interpreter closed under the
  pool is seen by the next ``call`` at once, where the queue design strands
  a thread blocked inside it; moving to queues is a follow-up (issue 12).
- The function crosses once per worker: the executor pickles it once with
  ``crossinterp._xi.dumps`` (functions that cannot be imported go by value:
  code, defaults, closure cells, the globals they name), the worker rebuilds
  it on its first task and keeps it, keyed by the function's identity here.
  A plain function is therefore captured as it was at its first submission.
  ``_xi`` rather than ``cloudpickle``: see :data:`_BY_VALUE_CHOICE`.
- ``chunksize`` batches items into one crossing (a tuple of argument tuples).
- An exception raised by the task is caught in the worker, pickled back and
  re-raised here with its own type; its ``__cause__`` is an
  :class:`~crossinterp.interpreters.ExecutionFailed` whose message (and
  ``excinfo.errdisplay``) is the worker's formatted traceback: the stdlib
  executor's cause, which carries the remote traceback as
  ``concurrent.futures.process``'s ``_RemoteTraceback`` does. An exception
  whose type cannot cross (or that does not pickle) raises that
  ``ExecutionFailed`` itself.
- A failing initializer, or a worker interpreter closed (or gone) under the
  pool, breaks the pool: every pending future and every later ``submit``
  raise :class:`BrokenInterpreterPool`.
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
import types
import weakref
from concurrent.futures import _base
from concurrent.futures import thread as _thread

from . import _futures_worker, _xi
from ._errors import ExceptionInfo, ExecutionFailed, InterpreterError, NotShareableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, TypeVar

    from .interpreters import Interpreter

    _T = TypeVar("_T")

__all__ = ["BrokenInterpreterPool", "InterpreterPoolExecutor"]

# Why crossinterp's own `_xi` pickler sends functions by value, not cloudpickle:
# both are correct for lambdas, closures and main-script functions (tests:
# tests/test_executor.py, tests/test_interpreters.py), and `_xi` is faster:
# `PYTHONPATH=$(scripts/bench_peers 3.14) scripts/py 3.14
# benchmarks/bench_executor.py --quick --only 5` (3.14, AMD EPYC, 2 CPUs,
# loaded machine) gave dumps + loads of a closure 26 us (_xi) vs 59 us
# (cloudpickle), a lambda task with a new function each time 165 vs 208 us,
# and the same lambda again (cached: rebuilt once per worker) 70 vs 167 us.
# `_xi` is plain pickle plus a reducer for functions only, and every worker
# interpreter then needs no third-party import. cloudpickle stays a
# benchmark peer.
_BY_VALUE_CHOICE = "crossinterp._xi"


def _broken_base() -> type[Exception]:
    # 3.14+: the stdlib's own class, so that `except
    # concurrent.futures.interpreter.BrokenInterpreterPool` catches ours.
    if sys.version_info >= (3, 14):
        try:
            from concurrent.futures.interpreter import BrokenInterpreterPool as std
        except ImportError:
            pass
        else:
            return std
    return _thread.BrokenThreadPool


_BROKEN_STD = _broken_base()
if _BROKEN_STD is not _thread.BrokenThreadPool:
    BrokenInterpreterPool = _BROKEN_STD
else:

    class BrokenInterpreterPool(_thread.BrokenThreadPool):  # type: ignore[no-redef]
        """The pool cannot run tasks any more: a worker's initializer failed,
        or a worker interpreter was closed under it."""


_keys = itertools.count(1)


class _Chunk:
    """Marks a ``map`` batch for ``submit``: ``fn`` over a tuple of argument tuples."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., object]) -> None:
        self.fn = fn


# Callables cached by identity (rebuilt once per worker): plain functions and
# builtins, whose pickle does not change; anything else (a partial, a bound
# method, a callable object) may change between tasks and is sent each time.
_CACHED_TYPES = (types.FunctionType, types.BuiltinFunctionType)
_MAX_CACHED = 1024


class _WorkItem:
    __slots__ = ("args", "chunk", "fn", "future", "kwargs")

    def __init__(
        self,
        future: _base.Future,
        fn: Callable[..., object],
        args: tuple,
        kwargs: dict,
        chunk: bool,
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.chunk = chunk


class _Broken(Exception):
    """Internal: the worker's interpreter is gone (carries the cause)."""


class _Worker:
    """One worker thread's interpreter and what it has been sent."""

    def __init__(self, pool: InterpreterPoolExecutor) -> None:
        from . import interpreters

        self.cache = pool._functions
        self.interp: Interpreter | None = interpreters.create()
        self.sent: set[int] = set()  # keys this worker has been sent

    def call(self, fn: Callable[..., object], args: tuple, kwargs: dict, chunk: bool) -> object:
        interp = self.interp
        assert interp is not None
        try:
            key, data, main, plain = self.cache.lookup(fn)
        except Exception as e:
            # The function does not pickle (a closure over a lock, say): the
            # stdlib's error, the reason as its cause.
            raise NotShareableError("args not shareable") from e
        if key is not None and key in self.sent:
            data = main = None
        try:
            out = interp.call(
                _futures_worker.run, key, data, main, plain, args, kwargs or None, chunk
            )
            if out[0] == _futures_worker.MISSING:  # the worker's cache started over
                self.sent.discard(key)  # type: ignore[arg-type]
                _, data, main, _ = self.cache.lookup(fn)
                out = interp.call(
                    _futures_worker.run, key, data, main, plain, args, kwargs or None, chunk
                )
        except InterpreterError as e:
            if not isinstance(e, ExecutionFailed):
                raise _Broken(e) from e
            raise
        except NotShareableError as e:
            if str(e).startswith("the result"):
                raise  # "the result could not leave the interpreter N: ..."
            # The function or an argument did not cross: the stdlib's error.
            why = NotShareableError(
                f"the callable or its arguments could not be pickled here or unpickled in the worker: {e}"
            )
            raise NotShareableError("args not shareable") from why
        if key is not None:
            if len(self.sent) >= _MAX_CACHED:
                self.sent.clear()  # bounded: at worst a function is sent again
            self.sent.add(key)
        if out[0] == _futures_worker.OK:
            return out[1]
        _, pickled, info = out
        exc: BaseException | None = None
        if pickled is not None:
            try:
                exc = _xi.loads(*pickled)  # type: ignore[assignment]
            except Exception:  # noqa: BLE001 - its type does not exist here: described instead
                exc = None
            if not isinstance(exc, BaseException):
                exc = None
        failed = ExecutionFailed(ExceptionInfo.from_tuple(info))
        if exc is None:
            raise failed  # its type does not cross: described by the ExecutionFailed
        # The worker's traceback: in the ExecutionFailed it is the cause of
        # (its message and `excinfo.errdisplay`), as in the stdlib's executor.
        raise exc from failed

    def close(self) -> None:
        interp, self.interp = self.interp, None
        if interp is not None:
            try:
                interp.close()
            except Exception:  # noqa: BLE001, S110 - already closed under the pool, or exiting
                pass


class _FunctionCache:
    """The executor's pickles of the functions it was given, by identity."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(fn) -> (fn kept alive so that its id is not reused, key, data, main)
        self._entries: dict[int, tuple[object, int, bytes, str | None]] = {}

    def lookup(
        self, fn: Callable[..., object]
    ) -> tuple[int | None, bytes | None, str | None, Callable[..., object] | None]:
        """(key, pickle, main, None) for a cached callable, else (None, None,
        None, fn): ``fn`` then crosses as an argument of each call."""
        if type(fn) not in _CACHED_TYPES:
            return None, None, None, fn
        with self._lock:
            hit = self._entries.get(id(fn))
        if hit is not None and hit[0] is fn:
            return hit[1], hit[2], hit[3], None
        data, main = _xi.dumps(fn)  # outside the lock: may be slow; a race pickles twice
        with self._lock:
            hit = self._entries.get(id(fn))
            if hit is not None and hit[0] is fn:
                return hit[1], hit[2], hit[3], None
            if len(self._entries) >= _MAX_CACHED:
                self._entries.clear()  # keys are never reused: the workers' stale ones are harmless
            key = next(_keys)
            self._entries[id(fn)] = (fn, key, data, main)
        return key, data, main, None


def _worker(
    pool_ref: weakref.ref[InterpreterPoolExecutor],
    work_queue: queue.SimpleQueue,
    initializer: Callable[..., object] | None,
    initargs: tuple,
) -> None:
    pool = pool_ref()
    if pool is None:
        return
    try:
        worker = _Worker(pool)
    except BaseException as e:  # noqa: BLE001 - no interpreter: the pool is broken
        _base.LOGGER.critical("Could not create a worker interpreter:", exc_info=True)
        pool._break(f"a worker interpreter could not be created: {e!r}")
        return
    try:
        if initializer is not None:
            try:
                worker.call(initializer, initargs, {}, False)
            except BaseException:  # noqa: BLE001 - logged, and the pool is broken
                _base.LOGGER.critical("Exception in initializer:", exc_info=True)
                pool._initializer_failed()
                return
        del pool
        while True:
            try:
                item = work_queue.get_nowait()
            except queue.Empty:
                pool = pool_ref()
                if pool is not None:
                    pool._idle_semaphore.release()
                del pool
                item = work_queue.get(block=True)
            if item is not None:
                if not _run(item, worker, pool_ref):
                    return
                del item
                continue
            pool = pool_ref()
            if _thread._shutdown or pool is None or pool._shutdown:
                if pool is not None:
                    pool._shutdown = True
                work_queue.put(None)  # wake the next worker
                return
            del pool
    except BaseException:  # noqa: BLE001 - as the thread pool: log, end this worker
        _base.LOGGER.critical("Exception in worker", exc_info=True)
    finally:
        worker.close()


def _run(item: _WorkItem, worker: _Worker, pool_ref: weakref.ref[InterpreterPoolExecutor]) -> bool:
    """Run one task; False if this worker's interpreter is gone (pool broken)."""
    if not item.future.set_running_or_notify_cancel():
        return True
    try:
        result = worker.call(item.fn, item.args, item.kwargs, item.chunk)
    except _Broken as e:
        cause = e.__cause__
        msg = f"a worker interpreter was closed under the pool ({cause})"
        err = BrokenInterpreterPool(msg)
        err.__cause__ = cause
        item.future.set_exception(err)
        pool = pool_ref()
        if pool is not None:
            pool._break(msg)
        return False
    except BaseException as e:  # noqa: BLE001 - the task's exception goes to its future
        item.future.set_exception(e)
        del e
    else:
        item.future.set_result(result)
    return True


def _flatten(batches: Iterator[tuple]) -> Iterator[object]:
    for batch in batches:
        yield from batch


class InterpreterPoolExecutor(_thread.ThreadPoolExecutor):
    """An executor running each task in one of a pool of own-GIL subinterpreters.

    The stdlib's ``concurrent.futures.InterpreterPoolExecutor`` (3.14) API:
    ``max_workers`` interpreters at most (default: the thread pool's
    ``min(32, cpu count + 4)``), each in its own worker thread named
    ``thread_name_prefix`` + ``_N``, made when the thread starts and reused;
    ``initializer(*initargs)`` runs in each new worker interpreter (a failure
    breaks the pool: :class:`BrokenInterpreterPool`).

    Functions, arguments and results cross as in
    :meth:`crossinterp.interpreters.Interpreter.call` (lambdas and closures by
    value); a function is pickled once and rebuilt once per worker.
    """

    BROKEN = BrokenInterpreterPool
    _functions: _FunctionCache

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool)
        ):
            raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
        if not isinstance(thread_name_prefix, str):
            raise TypeError(
                f"thread_name_prefix must be a str, not {type(thread_name_prefix).__name__}"
            )
        prefix = thread_name_prefix or f"InterpreterPoolExecutor-{self._counter()}"
        super().__init__(max_workers, prefix)
        self._init = initializer
        self._initargs = initargs
        self._functions = _FunctionCache()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _base.Future[_T]:
        """Schedule ``fn(*args, **kwargs)`` on a worker interpreter; returns
        its :class:`concurrent.futures.Future`."""
        # As the stdlib's, `fn` is not checked here: a non-callable fails in
        # its future ("'X' object is not callable", TypeError).
        chunk = type(fn) is _Chunk
        if chunk:
            f = fn.fn  # type: ignore[attr-defined]
            args = args[0]
        else:
            f = fn
        with self._shutdown_lock, _thread._global_shutdown_lock:
            if self._broken:
                raise BrokenInterpreterPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _thread._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            future: _base.Future[_T] = _base.Future()
            self._work_queue.put(_WorkItem(future, f, args, kwargs, chunk))
            self._adjust_thread_count()
            return future

    submit.__doc__ = _base.Executor.submit.__doc__

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[_T]:
        """``map(fn, *iterables)`` on the workers, results in order.

        ``chunksize`` items cross together (one task per batch); ``timeout``
        as :meth:`concurrent.futures.Executor.map`; ``buffersize`` (Python
        3.14+, as the stdlib's) bounds how many tasks are scheduled ahead.
        """
        if not isinstance(chunksize, int) or isinstance(chunksize, bool):
            raise TypeError(f"chunksize must be an int, not {type(chunksize).__name__}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        extra: dict[str, Any] = {}
        if buffersize is not None:
            if sys.version_info < (3, 14):
                raise TypeError(
                    "map() got an unexpected keyword argument 'buffersize' (Python 3.14+)"
                )
            extra["buffersize"] = buffersize
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout, **extra)
        batches = itertools.batched(zip(*iterables), chunksize)
        results = super().map(_Chunk(fn), batches, timeout=timeout, **extra)  # type: ignore[arg-type]
        return _flatten(results)  # type: ignore[arg-type]

    def _adjust_thread_count(self) -> None:
        if self._idle_semaphore.acquire(timeout=0):
            return  # an idle worker takes the task

        def wake(_: object, q: queue.SimpleQueue = self._work_queue) -> None:
            q.put(None)

        n = len(self._threads)
        if n < self._max_workers:
            t = threading.Thread(
                name=f"{self._thread_name_prefix}_{n}",
                target=_worker,
                args=(weakref.ref(self, wake), self._work_queue, self._init, self._initargs),
            )
            t.start()
            self._threads.add(t)
            _thread._threads_queues[t] = self._work_queue

    def _initializer_failed(self) -> None:
        self._break("A worker initializer failed, the interpreter pool is not usable anymore")

    def _break(self, msg: str) -> None:
        """Mark the pool broken and fail every task not yet started."""
        with self._shutdown_lock:
            if not self._broken:
                self._broken = msg
            while True:
                try:
                    item = self._work_queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.future.set_exception(BrokenInterpreterPool(self._broken))
            self._work_queue.put(None)  # wake idle workers: they end at shutdown

    def __exit__(self, exc_type: object, exc_val: object, exc_tb: object) -> None:
        # Ctrl-C (or any BaseException that is not an Exception) out of the
        # `with` block: cancel the tasks not yet started instead of running
        # them all before returning.
        interrupted = isinstance(exc_val, BaseException) and not isinstance(exc_val, Exception)
        self.shutdown(wait=True, cancel_futures=interrupted)
