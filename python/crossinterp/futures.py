"""``InterpreterPoolExecutor``: run callables on a pool of own-GIL subinterpreters.

The API and behaviour of the stdlib's
``concurrent.futures.InterpreterPoolExecutor`` (3.14), on 3.13, 3.13t, 3.14
and 3.15::

    from crossinterp.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(max_workers=4) as ex:
        total = sum(ex.map(score, records, chunksize=256))
        print(ex.submit(lambda a, b: a + b, 20, 22).result())

How it works (see docs/guide.md, "InterpreterPoolExecutor"):

- It is a :class:`concurrent.futures.ThreadPoolExecutor` subclass whose
  every worker thread owns one warm interpreter
  (:func:`crossinterp.interpreters.create`), made when the thread starts,
  reused for every task, closed when it ends.
- Each worker thread runs a loop inside its interpreter
  (``_futures_worker.serve``), parked in a blocking ``get`` on the pool's
  task queue (a crossinterp queue): ``submit`` puts the task there, a free
  worker takes it, the reply comes back on the pool's reply queue. The
  thread waiting in ``result()`` gets the replies itself and completes the
  futures (see :class:`_Hub`): a round trip is a put and a get each way on
  native queues, with no thread hand-off in this interpreter. (The design
  before this one called ``Interpreter.call`` from each worker thread: two
  thread hand-offs per task, caller -> worker thread -> caller, which were
  most of its 27 us round trip on 3.14; benchmarks/README.md.)
- A task carries a claim cell (an ``AtomicInt``): the worker runs it only
  if it moves the cell first; ``cancel()`` wins otherwise, and a cancelled
  task never runs. The future is ``running()`` once a worker has claimed it.
- The function crosses once per worker: the executor pickles it once with
  ``crossinterp._xi.dumps`` (functions that cannot be imported go by value:
  code, defaults, closure cells, the globals they name), the task carries
  only its key; a worker meeting the key first fetches the pickle (through a
  proxy of the executor's store), rebuilds the function and keeps it.
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
  pool, breaks the pool: every task not yet started and every later
  ``submit`` raise :class:`BrokenInterpreterPool`.
"""

from __future__ import annotations

import functools
import itertools
import sys
import threading
import time
import types
import weakref
from concurrent.futures import _base
from concurrent.futures import thread as _thread

from . import _futures_worker, _native, _xi, _xiload
from ._errors import ExceptionInfo, ExecutionFailed, InterpreterError, NotShareableError
from .queues import QueueEmpty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, ParamSpec, TypeVar

    from ._native import AtomicInt
    from .queues import Queue

    _T = TypeVar("_T")
    _P = ParamSpec("_P")

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


if TYPE_CHECKING:
    # What checkers see: the class the runtime picks below (on 3.14+ the
    # stdlib's, which every build crossinterp runs on has), a real class (a
    # variable of type `type[Exception]` could not annotate anything).
    if sys.version_info >= (3, 14):
        from concurrent.futures.interpreter import BrokenInterpreterPool
    else:

        class BrokenInterpreterPool(_thread.BrokenThreadPool):
            """The pool cannot run tasks any more: a worker's initializer failed,
            or a worker interpreter was closed under it."""

else:
    _BROKEN_STD = _broken_base()
    if _BROKEN_STD is not _thread.BrokenThreadPool:
        BrokenInterpreterPool = _BROKEN_STD
    else:

        class BrokenInterpreterPool(_thread.BrokenThreadPool):
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
_CACHED_TYPES: tuple[type[object], ...] = (types.FunctionType, types.BuiltinFunctionType)
_MAX_CACHED = 1024


class _FunctionCache:
    """The executor's pickles of the functions it was given, by identity."""

    def __init__(self) -> None:
        from . import share  # the package imports this module

        self._lock = threading.Lock()
        # id(fn) -> (fn kept alive so that its id is not reused, key, data, main)
        self._entries: dict[int, tuple[object, int, bytes, str | None]] = {}
        # key -> (data, main), read by the workers through a proxy (`store`)
        # when they meet a key they have not rebuilt yet: a task carries only
        # the key. Entries live two generations of `_entries` (a key still
        # queued when `_entries` starts over is found; one queued across two
        # is asked for again: MISSING).
        self._store: dict[int, tuple[bytes, str | None]] = {}
        self._generations: tuple[list[int], list[int]] = ([], [])
        self.store = share(self._store)

    def lookup(
        self, fn: Callable[..., object]
    ) -> tuple[int | None, bytes | None, str | None, Callable[..., object] | None]:
        """(key, pickle, main, None) for a cached callable, else (None, None,
        None, fn): ``fn`` then crosses as an argument of each call."""
        if type(fn) not in _CACHED_TYPES:
            return None, None, None, fn
        hit = self._entries.get(id(fn))  # one dict read: atomic, no lock needed
        if hit is not None and hit[0] is fn:
            return hit[1], hit[2], hit[3], None
        data, main = _xi.dumps(fn)  # outside the lock: may be slow; a race pickles twice
        with self._lock:
            hit = self._entries.get(id(fn))
            if hit is not None and hit[0] is fn:
                return hit[1], hit[2], hit[3], None
            if len(self._entries) >= _MAX_CACHED:
                self._entries.clear()  # keys are never reused: the workers' stale ones are harmless
                old, current = self._generations
                for k in old:
                    self._store.pop(k, None)
                self._generations = (current, [])
            key = next(_keys)
            self._entries[id(fn)] = (fn, key, data, main)
            self._store[key] = (data, main)
            self._generations[1].append(key)
        return key, data, main, None


# Whether this build runs with the GIL (free-threaded builds may enable it
# at run time, never disable it: True stays true).
_GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
_DONE = frozenset({_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED})
_FINISHED = _base.FINISHED
_INIT_FAILED = "A worker initializer failed, the interpreter pool is not usable anymore"
# A reply that is no task's: makes the thread getting replies look again at
# what it waits for (a future completed or cancelled by another thread).
_WAKE = (-1, -1)
# A task's claim cell (an AtomicInt shared with the workers): whoever moves
# it from PENDING first decides the task's fate: a worker (CLAIMED: it runs
# the task), `Future.cancel()` (CANCELLED) or a broken pool (FAILED).
# A worker claims with _CLAIMED + its index (the pool knows who runs what).
_PENDING, _CANCELLED, _FAILED, _CLAIMED = 0, 1, 2, 16
_CELLS = 256  # claim cells per pool sent to the workers once


class _Task:
    """A task as the pool keeps it until its reply is collected."""

    __slots__ = ("args", "cell", "chunk", "cref", "fn", "future", "kwargs", "tid")

    def __init__(
        self,
        tid: int,
        future: _Future[Any],
        cell: AtomicInt,
        cref: int | AtomicInt,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        chunk: bool,
    ) -> None:
        self.tid = tid
        self.future = future
        self.cell = cell
        self.cref = cref  # what the task item carries: the cell's index, or the cell
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.chunk = chunk


class _Worker:
    """One worker as the pool sees it: its index, its interpreter's id, the
    value it claims tasks with (``claim``: a task's cell holds it while the
    worker runs the task).

    Owned by its :class:`_Hub`, touched in the caller's interpreter."""

    __slots__ = ("claim", "closing", "index", "interp_id", "left")

    def __init__(self, index: int) -> None:
        self.index = index
        self.claim = _CLAIMED + index
        self.closing = False  # its interpreter is being closed by someone else
        self.interp_id: int | None = None
        self.left = threading.Event()  # its thread is out of its interpreter for good


class _Waiters(list):  # type: ignore[type-arg]  # of `concurrent.futures._base._Waiter`
    """A future's ``_waiters`` (``concurrent.futures.wait``/``as_completed``
    add theirs there): adding one tells the hub that someone now waits
    without calling ``result()``, so the collector thread must collect.

    Each hub has its subclass, with ``_hub`` as a class attribute, so that
    making one per future is a plain list construction (no Python
    ``__init__``)."""

    __slots__ = ("_tid",)
    _hub: _Hub
    _tid: int

    def append(self, waiter: object, /) -> None:
        super().append(waiter)
        self._hub.want(self._tid)


class _Future[T](_base.Future[T]):
    """The executor's futures: a :class:`concurrent.futures.Future` whose
    ``result()``/``exception()`` collect the replies themselves (the waiting
    thread gets the worker's reply from the native queue: no thread hand-off
    here), whose ``done()`` collects the replies already there, and whose
    ``running()``/``cancel()`` go by the task's claim cell (a task is running
    from the moment a worker claims it).

    Made and completed by the executor; used from any thread of its
    interpreter."""

    def __init__(self, hub: _Hub, tid: int, cell: AtomicInt) -> None:
        super().__init__()
        self._hub = hub
        self._tid = tid
        self._cell = cell
        self._waiters = waiters = hub.waiters_class()
        waiters._tid = tid

    def result(self, timeout: float | None = None) -> T:
        if self._state not in _DONE:
            self._hub.drive(self, timeout)
        # Finished with a value (the common case): that value, without the
        # base class's lock (300 -> 35 ns on 3.14). A finished future's state
        # and result never change again, and this thread either completed it
        # (as the collector) or saw it done after the collector's lock.
        if self._state == _FINISHED and self._exception is None:
            return self._result  # type: ignore[return-value]  # FINISHED, no exception: a T
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state not in _DONE:
            self._hub.drive(self, timeout)
        return super().exception(0)

    def done(self) -> bool:
        if self._state not in _DONE:
            self._hub.poll()
        return super().done()

    def running(self) -> bool:
        if super().running():
            return True
        return self._state == _base.PENDING and self._cell.get() >= _CLAIMED

    def cancel(self) -> bool:
        if self._state != _base.PENDING:
            return super().cancel()
        if self._hub.cancel(self._tid, self._cell):
            # Before any worker claimed it: it will never run. Its waiters
            # (`wait`, `as_completed`) are told now (a thread pool tells them
            # when a worker dequeues it; no worker will look at it here).
            cancelled = super().cancel()
            self.set_running_or_notify_cancel()
            return cancelled
        if self._cell.get() >= _CLAIMED:
            with self._condition:
                if self._state == _base.PENDING:
                    self._state = _base.RUNNING
        return super().cancel()  # running (False) or already failed (False)

    def add_done_callback(self, fn: Callable[[_base.Future[T]], object]) -> None:
        super().add_done_callback(fn)
        if self._state not in _DONE:
            self._hub.want(self._tid)


class _Hub:
    """The pool's machinery: the workers, the task and reply queues, the
    tasks not yet replied to, and who collects the replies.

    Tasks go on one native queue, ``tasks``, that every worker's loop gets
    from, inside its interpreter (a free worker takes the next task, as in a
    thread pool); each carries a claim cell (``_PENDING``...). Replies come
    back on one queue, ``results``. Whoever holds ``role`` gets from it and
    completes the futures: a thread in ``result()`` takes the role itself, so
    a round trip is one put and one get on each queue, with no thread hand-off
    in this interpreter. A thread that finds the role taken sleeps on
    ``progress``, woken when a future completes or the role is released. The
    collector thread collects while some future is waited on without
    ``result()`` (``concurrent.futures.wait``, ``as_completed``, done
    callbacks: asyncio's ``run_in_executor``).

    Owned by one executor (which the hub does not reference, so that dropping
    the executor stops the pool); the futures and the threads hold it.
    Touched from any thread of the caller's interpreter."""

    def __init__(
        self,
        max_workers: int,
        prefix: str,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        threads: set[threading.Thread],
    ) -> None:
        from . import queues

        self.max_workers = max_workers
        self.prefix = prefix
        self.initializer = initializer
        self.initargs = initargs
        self.threads = threads  # the executor's `_threads`: the worker threads
        self.functions = _FunctionCache()
        self.tasks: Queue[Any] = queues.create()
        self.results: Queue[Any] = queues.create()
        self.lock = threading.Lock()  # pending, wanted, workers, the flags
        self.pending: dict[int, _Task] = {}  # not yet replied to (or collected)
        self.wanted: set[int] = set()  # pending tasks waited on without result()
        self.workers: list[_Worker] = []
        self.tids = itertools.count(1)
        self.sent: dict[int, int] = {}  # function key -> tasks sent with its pickle
        # Claim cells crossing once: every worker gets the tuple when it
        # starts, a task carries an index into it (a cell crossing with each
        # task would cost an object crossing). A cell is reused once its
        # task's reply is collected (or, cancelled, once a worker skipped
        # it: SKIPPED); with none free, a task carries a new cell itself.
        self.cells = tuple(_native.AtomicInt(_PENDING) for _ in range(_CELLS))
        self.free_cells = list(range(_CELLS - 1, -1, -1))
        self.broken: str | None = None
        self.shutdown = False
        self.role = threading.Lock()  # held by the one thread getting from `results`
        self.progress = threading.Condition(threading.Lock())
        self.sleepers = 0  # threads waiting on `progress` (under its lock)
        self.wake_collector = threading.Condition(self.progress._lock)  # type: ignore[attr-defined]
        self.collector: threading.Thread | None = None
        self.collector_idle = False
        self.waiters_class: type[_Waiters] = type(
            "_Waiters", (_Waiters,), {"__slots__": (), "_hub": self}
        )

    # --- handing tasks out --------------------------------------------------

    def submit(
        self, fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], chunk: bool
    ) -> _Future[Any]:
        if self.results.qsize():
            self.poll()  # replies already here: their tasks are not pending
        with self.lock:
            if self.broken:
                raise BrokenInterpreterPool(self.broken)
            if self.shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _thread._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            tid = next(self.tids)
            cref: int | AtomicInt
            if self.free_cells:
                cref = self.free_cells.pop()
                cell = self.cells[cref]
                cell.set(_PENDING)
            else:
                cref = cell = _native.AtomicInt(_PENDING)
            future: _Future[Any] = _Future(self, tid, cell)
            task = _Task(tid, future, cell, cref, fn, args, kwargs, chunk)
            self.pending[tid] = task
            # As the thread pool: a new worker when there are more tasks than
            # workers, up to max_workers.
            if len(self.pending) > len(self.workers) and len(self.workers) < self.max_workers:
                self._add_worker()
        try:
            self._put(task, False)
        except BaseException as e:  # noqa: BLE001 - goes to its future
            with self.lock:
                self.pending.pop(tid, None)
                self.wanted.discard(tid)
                self._recycle(cref)
            future.set_exception(e)
        return future

    def _recycle(self, cref: int | AtomicInt) -> None:
        # (under `lock`) no task item refers to this cell any more
        if type(cref) is int:
            self.free_cells.append(cref)

    def _add_worker(self) -> None:
        w = _Worker(len(self.workers))
        self.workers.append(w)
        t = threading.Thread(name=f"{self.prefix}_{w.index}", target=_worker_main, args=(self, w))
        t.start()
        self.threads.add(t)

    def _put(self, task: _Task, with_pickle: bool) -> None:
        try:
            key, data, main, plain = self.functions.lookup(task.fn)
        except Exception as e:
            # The function does not pickle (a closure over a lock, say): the
            # stdlib's error, the reason as its cause.
            raise NotShareableError("args not shareable") from e
        if not with_pickle and key is not None:
            # The first `max_workers` tasks of a function carry its pickle (a
            # free worker takes each: most workers get it inline); later ones
            # only the key, and a worker that has not met it yet finds it in
            # the store (a proxy call into this interpreter: slower, rare).
            with self.lock:
                sent = self.sent.get(key, 0)
                if sent < self.max_workers:
                    if len(self.sent) >= _MAX_CACHED:
                        self.sent.clear()  # bounded: at worst sent inline again
                    self.sent[key] = sent + 1
            if sent >= self.max_workers:
                data = main = None
        # A task item crosses natively (strict): what would need pickle (the
        # callable, the arguments) is pickled apart, into bytes that the
        # worker unpickles itself, so that a failure there is the task's
        # (an item the queue had pickled would fail in the worker's `get`,
        # before the task id is known).
        payload: object = (plain, task.args, task.kwargs or None)
        try:
            if not self.tasks._put_native(
                (task.tid, task.cref, key, data, main, False, payload, task.chunk)
            ):
                payload = _xi.dumps(payload)
                self.tasks.put(
                    (task.tid, task.cref, key, data, main, True, payload, task.chunk), strict=True
                )
        except Exception as e:  # noqa: BLE001 - any pickling failure: the stdlib's error, the reason as its cause
            why = NotShareableError(
                f"the callable or its arguments could not be pickled here or unpickled in the worker: {e}"
            )
            raise NotShareableError("args not shareable") from why

    # --- collecting replies -------------------------------------------------

    def drive(self, fut: _base.Future[Any] | None, timeout: float | None) -> bool:
        """Collect replies until ``fut`` is done (``None``: until no task is
        waited on without ``result()``), at most ``timeout`` seconds (the
        replies already there are collected even when it has passed); whether
        it is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        role = self.role
        if not role.acquire(False) and not self._wait_for_role(fut, deadline):
            return True if fut is None else fut._state in _DONE
        # This thread holds the role: the replies are its to get.
        results = self.results
        try:
            while (fut._state not in _DONE) if fut is not None else self.wanted:
                try:
                    if deadline is None:
                        item = results.get()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining > 0:
                            item = results.get(timeout=remaining)
                        else:
                            item = results.get_nowait()
                except QueueEmpty:
                    break
                self._complete(item)
        finally:
            role.release()
            self._notify_sleepers()
        return True if fut is None else fut._state in _DONE

    def _wait_for_role(self, fut: _base.Future[Any] | None, deadline: float | None) -> bool:
        """Sleep until the role is this thread's (True) or ``fut`` is done
        (``None``: no task is waited on) or ``deadline`` passed (False)."""
        progress = self.progress
        with progress:
            self.sleepers += 1  # before the checks: see _notify_sleepers
            try:
                while (fut._state not in _DONE) if fut is not None else self.wanted:
                    if self.role.acquire(False):
                        return True
                    if deadline is None:
                        progress.wait()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        progress.wait(remaining)
                return False
            finally:
                self.sleepers -= 1

    def _notify_sleepers(self) -> None:
        """Wake the threads in ``_wait_for_role`` (a future completed, or the
        role was released). A sleeper counts itself before it checks its
        future and the role, under ``progress``; this runs after the change it
        tells of. With the GIL (one place for this build difference: `_GIL`)
        the unlocked read of the count is ordered after that change, so a
        count of 0 means no sleeper can miss it; without the GIL (free-threaded)
        the count is read under the lock."""
        if _GIL and not self.sleepers:
            return
        with self.progress:
            if self.sleepers:
                self.progress.notify_all()

    def poll(self) -> None:
        """Collect the replies already there, if no one else is collecting."""
        if not self.results.qsize() or not self.role.acquire(False):
            return
        try:
            while True:
                try:
                    item = self.results.get_nowait()
                except QueueEmpty:
                    return
                self._complete(item)
        finally:
            self.role.release()
            self._notify_sleepers()

    def _complete(self, item: tuple[Any, ...]) -> None:
        """Complete the future of one reply (by the role holder). ``item``:
        ``(task id, status, ...)`` (``_futures_worker``'s replies)."""
        tid, status = item[0], item[1]
        if tid < 0:  # _WAKE
            return
        with self.lock:
            if status == _futures_worker.SKIPPED:  # a cancelled task, seen by a worker
                self._recycle(item[2])
                return
            if status == _futures_worker.MISSING:
                task = self.pending.get(tid)
            else:
                task = self.pending.pop(tid, None)
                self.wanted.discard(tid)
                if task is not None:
                    self._recycle(task.cref)
        if task is None:  # failed meanwhile (a broken pool)
            return
        fut = task.future
        if status == _futures_worker.MISSING:
            # Its function left the store (queued across two generations):
            # again, with the function's pickle.
            task.cell.set(_PENDING)
            try:
                if self.shutdown:
                    # The workers may have taken their last task already.
                    raise RuntimeError(
                        "a task's function was evicted from the workers' cache during shutdown"
                    )
                self._put(task, True)
            except BaseException as e:  # noqa: BLE001 - goes to its future
                with self.lock:
                    self.pending.pop(tid, None)
                    self.wanted.discard(tid)
                    self._recycle(task.cref)
                fut.set_exception(e)
            return
        if status == _futures_worker.OK:
            fut.set_result(item[2])
        elif status == _futures_worker.OK_PACKED:  # a result that needed pickle
            try:
                value = _xiload.loads(*item[2])
            except BaseException as e:  # noqa: BLE001 - it does not unpickle here: the task's error
                err = NotShareableError(f"the result could not be unpickled here: {e!r}")
                err.__cause__ = e
                fut.set_exception(err)
            else:
                fut.set_result(value)
        elif status == _futures_worker.RAISED:
            fut.set_exception(_rebuild(item[2], item[3]))
        elif status == _futures_worker.UNSHAREABLE:  # the result could not cross
            fut.set_exception(NotShareableError(item[2]))
        else:  # ARGS_UNSHAREABLE: the stdlib's error, the reason as its cause
            err = NotShareableError("args not shareable")
            err.__cause__ = NotShareableError(
                "the callable or its arguments could not be pickled here or unpickled in the worker: "
                + item[2]
            )
            fut.set_exception(err)
        self._notify_sleepers()

    def cancel(self, tid: int, cell: AtomicInt) -> bool:
        """Cancel the pending task ``tid`` if no worker has claimed it."""
        with self.lock:
            # Under the lock: a task still pending has not had its cell
            # recycled (a reply is taken out of `pending` under it first).
            if tid not in self.pending or not cell.compare_and_set(_PENDING, _CANCELLED):
                return False
            del self.pending[tid]
            self.wanted.discard(tid)
        if self.role.locked():
            self.results.put(_WAKE)  # its waiter may be the one blocked in `get`
        return True

    # --- the collector thread -------------------------------------------------

    def want(self, tid: int) -> None:
        """The task ``tid`` is waited on without ``result()``: collect."""
        with self.lock:
            if tid not in self.pending:
                return
            self.wanted.add(tid)
        with self.progress:
            if self.collector is None:
                self.collector = threading.Thread(
                    name=f"{self.prefix}_collector", target=_collector_main, args=(self,), daemon=True
                )
                self.collector.start()
            elif self.collector_idle:
                self.wake_collector.notify()

    def _collector_done(self) -> bool:
        return self.shutdown and not self.pending

    # --- breaking, closing, stopping ----------------------------------------

    def worker_failed(self, w: _Worker, msg: str) -> None:
        """``w`` cannot run tasks any more: the pool is broken, the tasks no
        worker has claimed fail (and ``w``'s own), the workers stop."""
        with self.lock:
            if not self.broken:
                self.broken = msg
            tasks = list(self.pending.values())
        failed = [
            t for t in tasks if t.cell.compare_and_set(_PENDING, _FAILED) or t.cell.get() == w.claim
        ]
        with self.lock:
            for t in failed:
                self.pending.pop(t.tid, None)
                self.wanted.discard(t.tid)
        for t in failed:
            if not t.future.done():
                t.future.set_exception(BrokenInterpreterPool(msg))
        self._stop_workers()
        self.results.put(_WAKE)  # a role holder blocked in `get` rechecks its future
        with self.progress:
            if self.sleepers:
                self.progress.notify_all()
            if self.collector_idle:
                self.wake_collector.notify()

    def close_requested(self, w: _Worker) -> None:
        """``Interpreter.close()`` of ``w``'s interpreter (from any thread):
        unless it runs a task, its loop leaves (the pool is broken), then the
        close goes on."""
        self.poll()
        with self.lock:
            tasks = list(self.pending.values())
        if any(t.cell.get() == w.claim for t in tasks):
            raise InterpreterError(
                f"interpreter {w.interp_id} is running a task of an InterpreterPoolExecutor"
            )
        with self.lock:
            w.closing = True
        self.worker_failed(w, f"a worker interpreter was closed under the pool (interpreter {w.interp_id})")
        w.left.wait()

    def stop(self, cancel_futures: bool) -> None:
        """Shut down: no new tasks; the workers end once the tasks before
        are done (``cancel_futures``: those no worker has claimed are cancelled)."""
        with self.lock:
            if self.shutdown:
                return
            self.shutdown = True
            tasks = list(self.pending.values()) if cancel_futures else []
        for t in tasks:
            t.future.cancel()
        self._stop_workers()
        with self.progress:
            if self.collector_idle:
                self.wake_collector.notify()

    def rebind_replies(self) -> None:
        """Put the replies not yet collected again, from here: an item is
        bound to the interpreter that put it, and a worker's interpreter is
        about to be closed (its items would become ``UNBOUND``). By the
        worker's thread once its loop has ended (no reply of it is on the way)."""
        for _ in range(self.results.qsize()):
            try:
                item = self.results.get_nowait()
            except QueueEmpty:
                return
            self.results.put(item)

    def _stop_workers(self) -> None:
        # One `None` per worker (any worker's loop ends at the first it
        # gets; behind every task already queued).
        with self.lock:
            n = len(self.workers)
        for _ in range(n):
            self.tasks.put(None)


def _rebuild(pickled: tuple[bytes, str | None] | None, info: Any) -> BaseException:
    """The exception a task raised, for its future: its own type with the
    worker's traceback as the cause, else the ExecutionFailed describing it."""
    exc: BaseException | None = None
    if pickled is not None:
        loaded: object
        try:
            loaded = _xiload.loads(*pickled)
        except Exception:  # noqa: BLE001 - its type does not exist here: described instead
            loaded = None
        if isinstance(loaded, BaseException):
            exc = loaded
    failed = ExecutionFailed(ExceptionInfo.from_tuple(info))
    if exc is None:
        return failed  # its type does not cross: described by the ExecutionFailed
    # The worker's traceback: in the ExecutionFailed it is the cause of
    # (its message and `excinfo.errdisplay`), as in the stdlib's executor.
    exc.__cause__ = failed
    return exc


def _collector_main(hub: _Hub) -> None:
    """The collector thread: collects while some pending task is waited on
    without ``result()``; ends once the pool is shut down with nothing pending."""
    try:
        while True:
            with hub.progress:
                while not hub.wanted and not hub._collector_done():
                    hub.collector_idle = True
                    try:
                        hub.wake_collector.wait()
                    finally:
                        hub.collector_idle = False
            if hub._collector_done():
                return
            hub.drive(None, None)
    except BaseException:  # noqa: BLE001 - as the thread pool: log it
        _base.LOGGER.critical("Exception in the executor's collector thread", exc_info=True)


def _worker_main(hub: _Hub, w: _Worker) -> None:
    """A worker thread: make its interpreter, run the initializer there, then
    serve the pool's tasks from inside it until told to stop."""
    from . import interpreters

    try:
        interp = interpreters.create()
    except BaseException as e:  # noqa: BLE001 - no interpreter: the pool is broken
        _base.LOGGER.critical("Could not create a worker interpreter:", exc_info=True)
        hub.worker_failed(w, f"a worker interpreter could not be created: {e!r}")
        w.left.set()
        return
    w.interp_id = iid = interp.id
    hook = False
    try:
        if hub.initializer is not None:
            try:
                out = interp.call(
                    _futures_worker.run, None, None, None, hub.initializer, hub.initargs, None, False
                )
                if out[0] != _futures_worker.OK:
                    raise _rebuild(out[1], out[2])
            except BaseException:  # noqa: BLE001 - logged, and the pool is broken
                _base.LOGGER.critical("Exception in initializer:", exc_info=True)
                hub.worker_failed(w, _INIT_FAILED)
                return
        interpreters._close_hooks[iid] = functools.partial(hub.close_requested, w)
        hook = True
        interp.call(
            _futures_worker.serve,
            hub.tasks,
            hub.results,
            hub.cells,
            w.claim,
            hub.functions.store,
            iid,
        )
    except BaseException as e:  # noqa: BLE001 - the loop ended abnormally: the pool is broken
        if not w.closing:
            _base.LOGGER.critical("Exception in worker", exc_info=True)
            hub.worker_failed(w, f"a worker interpreter failed: {e!r}")
    finally:
        if hook:
            interpreters._close_hooks.pop(iid, None)
        hub.rebind_replies()
        if not w.closing:  # else someone is closing it (Interpreter.close): theirs to end
            try:
                interp.close()
            except Exception:  # noqa: BLE001, S110 - already gone, or exiting
                pass
        del interp
        w.left.set()


_hubs: weakref.WeakSet[_Hub] = weakref.WeakSet()


def _at_exit() -> None:
    # As the thread pool's own exit hook: the queued work is done, then the
    # workers stop and are joined.
    hubs = list(_hubs)
    for hub in hubs:
        hub.stop(cancel_futures=False)
    for hub in hubs:
        for t in list(hub.threads):
            t.join()


threading._register_atexit(_at_exit)  # type: ignore[attr-defined]


def _flatten[T](batches: Iterator[tuple[T, ...]]) -> Iterator[T]:
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

    Owned by the thread that made it; ``submit``, ``map`` and ``shutdown``
    may be called from any thread of the interpreter that made it, its
    futures waited on from any of them.
    """

    BROKEN = BrokenInterpreterPool
    # The thread pool's private state this subclass keeps, as it is at run
    # time (concurrent/futures/thread.py): its pool numbering
    # (`itertools.count().__next__`), absent from typeshed;
    _counter: Callable[[], int]
    # a set (typeshed: an AbstractSet) of the worker threads.
    _threads: set[threading.Thread]

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
        self._hub = hub = _Hub(self._max_workers, prefix, initializer, initargs, self._threads)
        _hubs.add(hub)
        # Dropped without shutdown: the workers stop once their work is done.
        self._finalizer = weakref.finalize(self, hub.stop, False)

    # `_broken` and `_shutdown` as the thread pool has them (read by code
    # that knows it): the hub's state. The setters take the base class's
    # initial assignments.
    @property  # type: ignore[override]
    def _broken(self) -> bool | str:
        hub: _Hub | None = self.__dict__.get("_hub")
        return (hub.broken if hub is not None else None) or False

    @_broken.setter
    def _broken(self, value: bool | str) -> None:
        pass

    @property
    def _shutdown(self) -> bool:
        hub: _Hub | None = self.__dict__.get("_hub")
        return hub is not None and hub.shutdown

    @_shutdown.setter
    def _shutdown(self, value: bool) -> None:
        pass

    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _base.Future[_T]:
        """Schedule ``fn(*args, **kwargs)`` on a worker interpreter; returns
        its :class:`concurrent.futures.Future`."""
        # As the stdlib's, `fn` is not checked here: a non-callable fails in
        # its future ("'X' object is not callable", TypeError).
        marker: object = fn  # `map` passes a `_Chunk` (not a callable) as `fn`
        f: Callable[..., object]
        call_args: tuple[Any, ...]
        if type(marker) is _Chunk:
            batch: Any = args[0]  # `map`'s batch: a tuple of argument tuples
            f, call_args, chunk = marker.fn, batch, True
        else:
            f, call_args, chunk = fn, args, False
        return self._hub.submit(f, call_args, kwargs, chunk)

    submit.__doc__ = _base.Executor.submit.__doc__

    def map(
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
        # Each batch's results, in order: `_Chunk(fn)` is a marker that our
        # `submit` unpacks (a private protocol of this class, not a callable).
        results: Iterator[tuple[_T, ...]] = super().map(
            _Chunk(fn),  # type: ignore[arg-type]
            batches,
            timeout=timeout,
            **extra,
        )
        return _flatten(results)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As :meth:`concurrent.futures.Executor.shutdown`: no new tasks; the
        pending ones run (or, with ``cancel_futures``, those not started are
        cancelled); with ``wait``, returns once every worker has ended."""
        hub = self._hub
        hub.stop(cancel_futures)
        if wait:
            for t in list(self._threads):
                t.join()
            hub.poll()  # every reply is there: the futures are done on return

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    def _adjust_thread_count(self) -> None:
        raise NotImplementedError  # the hub starts the workers

    def _initializer_failed(self) -> None:
        raise NotImplementedError  # the hub breaks the pool

    def __exit__(self, exc_type: object, exc_val: object, exc_tb: object) -> None:
        # Ctrl-C (or any BaseException that is not an Exception) out of the
        # `with` block: cancel the tasks not yet started instead of running
        # them all before returning.
        interrupted = isinstance(exc_val, BaseException) and not isinstance(exc_val, Exception)
        self.shutdown(wait=True, cancel_futures=interrupted)
