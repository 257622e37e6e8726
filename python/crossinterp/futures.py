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

import collections
import functools
import itertools
import sys
import threading
import time
import types
import weakref
from concurrent.futures import _base
from concurrent.futures import thread as _thread

from . import _futures_worker, _xi, _xiload
from ._errors import ExceptionInfo, ExecutionFailed, InterpreterError, NotShareableError
from .queues import QueueEmpty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, ParamSpec, TypeVar

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


_DONE = frozenset({_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED})
# A reply that is no task's: makes the thread getting replies look again at
# what it waits for (a future completed or cancelled by another thread).
_WAKE = (-1, -1)
_INIT_FAILED = "A worker initializer failed, the interpreter pool is not usable anymore"


class _Task:
    """A task as the pool keeps it until its reply is collected."""

    __slots__ = ("args", "chunk", "fn", "future", "kwargs")

    def __init__(
        self,
        future: _Future[Any],
        fn: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        chunk: bool,
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.chunk = chunk


class _Worker:
    """One worker, as the pool sees it: its thread, its task queue, the one
    task handed to it (``task``, set under the hub's lock until the reply is
    collected), the functions it has been sent.

    Owned by its :class:`_Hub`; touched in the caller's interpreter only (the
    worker thread enters its interpreter to serve ``tasks``)."""

    __slots__ = ("closing", "gone", "index", "interp_id", "left", "sent", "task", "tasks", "thread")

    def __init__(self, index: int) -> None:
        from . import queues

        self.index = index
        self.tasks: Queue[Any] = queues.create()
        self.task: _Task | None = None
        self.sent: set[int] = set()  # function keys this worker has been sent
        self.closing = False  # its interpreter is being closed by someone else
        self.gone = False  # its loop has ended (or never started)
        self.interp_id: int | None = None
        self.left = threading.Event()  # its thread is out of its interpreter for good
        self.thread: threading.Thread | None = None


class _Waiters(list):  # type: ignore[type-arg]  # of `concurrent.futures._base._Waiter`
    """A future's ``_waiters`` (``concurrent.futures.wait``/``as_completed``
    add theirs there): adding one tells the hub that someone now waits
    without calling ``result()``, so the collector thread must collect."""

    __slots__ = ("_hub",)

    def __init__(self, hub: _Hub) -> None:
        super().__init__()
        self._hub = hub

    def append(self, waiter: Any, /) -> None:
        super().append(waiter)
        self._hub.want()


class _Future[T](_base.Future[T]):
    """The executor's futures: a :class:`concurrent.futures.Future` whose
    ``result()``/``exception()`` collect replies themselves (the waiting
    thread gets the worker's reply from the native queue: no thread hand-off),
    and whose ``done()`` collects the replies already there."""

    def __init__(self, hub: _Hub) -> None:
        super().__init__()
        self._hub = hub
        self._waiters = _Waiters(hub)

    def result(self, timeout: float | None = None) -> T:
        if self._state not in _DONE:
            self._hub.drive(self, timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state not in _DONE:
            self._hub.drive(self, timeout)
        return super().exception(0)

    def done(self) -> bool:
        if self._state not in _DONE:
            self._hub.poll()
        return super().done()

    def add_done_callback(self, fn: Callable[[_base.Future[T]], object]) -> None:
        super().add_done_callback(fn)
        if self._state not in _DONE:
            self._hub.want()


class _Hub:
    """The pool's machinery: the workers, the backlog, the replies queue and
    who collects it.

    Every worker has its own task queue and at most one task handed to it at
    a time (a task is handed over when its worker is free, so that a free
    worker always takes the next one, as in a thread pool, and a future is
    ``running()`` from then on); tasks beyond that wait in ``backlog``, here.
    Replies come back on one queue, ``results``. Whoever holds ``role`` gets
    from it and completes the futures (and hands the freed worker its next
    task): a thread in ``result()`` takes the role itself, so a round trip is
    one put and one get on native queues with no thread hand-off in this
    interpreter. A thread that finds the role taken sleeps on ``progress``,
    woken when a future completes or the role is released. A collector thread
    collects when no one else needs to: while there is a backlog, a future with
    waiters or callbacks, or a shutdown to finish.

    Owned by one executor (which does not own it back, so that dropping the
    executor stops the pool); the futures and the threads hold it. Touched
    from any thread of the caller's interpreter."""

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
        self.lock = threading.Lock()  # workers, their `task`, backlog, flags
        self.workers: list[_Worker] = []
        self.backlog: collections.deque[_Task] = collections.deque()
        self.broken: str | None = None
        self.shutdown = False
        self.stopped = False  # the workers were told to stop
        self.results: Queue[Any] = queues.create()
        self.role = threading.Lock()  # held by the one thread getting from `results`
        self.progress = threading.Condition(threading.Lock())
        self.sleepers = 0  # threads waiting on `progress` (under its lock)
        self.wake_collector = threading.Condition(self.progress._lock)  # type: ignore[attr-defined]
        self.collector: threading.Thread | None = None
        self.collector_idle = False

    # --- handing tasks out --------------------------------------------------

    def submit(self, task: _Task) -> None:
        with self.lock:
            self._check_open()
            w = self._take_free(task)
        if w is None and self.results.qsize():
            self.poll()  # replies already here free their workers
        if w is None:
            with self.lock:
                self._check_open()
                w = self._take_free(task)
                if w is None and len(self.workers) < self.max_workers:
                    w = self._add_worker()
                    w.task = task
                if w is None:
                    self.backlog.append(task)
            if w is None:
                self.want()  # the backlog advances even if no one collects
                return
        self._send(w, task)

    def _check_open(self) -> None:
        if self.broken:
            raise BrokenInterpreterPool(self.broken)
        if self.shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _thread._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _take_free(self, task: _Task) -> _Worker | None:
        """A started worker with no task, ``task`` handed to it (under ``lock``)."""
        for w in self.workers:
            if w.task is None and not w.closing and not w.gone:
                w.task = task
                return w
        return None

    def _add_worker(self) -> _Worker:
        w = _Worker(len(self.workers))
        self.workers.append(w)
        t = threading.Thread(
            name=f"{self.prefix}_{w.index}", target=_worker_main, args=(self, w), daemon=False
        )
        w.thread = t
        t.start()
        self.threads.add(t)
        return w

    def _send(self, w: _Worker, task: _Task | None) -> None:
        """Hand ``task`` (already ``w.task``) to ``w``; on to the backlog's
        next task if it was cancelled meanwhile or cannot be sent."""
        while task is not None:
            fut = task.future
            if fut.set_running_or_notify_cancel():
                try:
                    self._put(w, task)
                    return
                except BaseException as e:  # noqa: BLE001 - goes to the task's future
                    fut.set_exception(e)
                    del e
            with self.lock:
                w.task = None
                task = self._next_for(w)

    def _put(self, w: _Worker, task: _Task) -> None:
        fn = task.fn
        try:
            key, data, main, plain = self.functions.lookup(fn)
        except Exception as e:
            # The function does not pickle (a closure over a lock, say): the
            # stdlib's error, the reason as its cause.
            raise NotShareableError("args not shareable") from e
        if key is not None and key in w.sent:
            data = main = None
        try:
            w.tasks.put((key, data, main, plain, task.args, task.kwargs or None, task.chunk))
        except NotShareableError as e:
            why = NotShareableError(
                f"the callable or its arguments could not be pickled here or unpickled in the worker: {e}"
            )
            raise NotShareableError("args not shareable") from why
        if key is not None:
            if len(w.sent) >= _MAX_CACHED:
                w.sent.clear()  # bounded: at worst a function is sent again
            w.sent.add(key)

    def _next_for(self, w: _Worker) -> _Task | None:
        """The backlog's next task, taken for ``w`` (under ``lock``)."""
        if self.backlog and not w.closing and not w.gone and not self.broken:
            task = self.backlog.popleft()
            w.task = task
            return task
        return None

    # --- collecting replies -------------------------------------------------

    def drive(self, fut: _base.Future[Any] | None, timeout: float | None) -> bool:
        """Collect replies until ``fut`` is done (``None``: until the
        collector is not needed), at most ``timeout`` seconds; whether it is."""

        def ready() -> bool:
            if fut is not None:
                return fut._state in _DONE
            return not self._collector_needed()

        deadline = None if timeout is None else time.monotonic() + timeout
        role, progress = self.role, self.progress
        if ready():
            return True
        if not role.acquire(False):
            with progress:
                self.sleepers += 1
                try:
                    while True:
                        if ready():
                            return True
                        if role.acquire(False):
                            break
                        if deadline is None:
                            progress.wait()
                        else:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                return False
                            progress.wait(remaining)
                finally:
                    self.sleepers -= 1
        # This thread holds the role: the replies are its to get.
        results = self.results
        try:
            while not ready():
                try:
                    if deadline is None:
                        item = results.get()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        item = results.get(timeout=remaining)
                except QueueEmpty:
                    return ready()
                self._complete(item)
            return True
        finally:
            role.release()
            with progress:
                if self.sleepers:
                    progress.notify_all()

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
            with self.progress:
                if self.sleepers:
                    self.progress.notify_all()

    def _complete(self, item: tuple[Any, ...]) -> None:
        """Complete the future of one reply and hand its worker the next
        task (by the role holder). ``item``: ``(worker index, status, ...)``."""
        if item is _WAKE or item[0] < 0:
            return
        w = self.workers[item[0]]
        status = item[1]
        with self.lock:
            task = w.task
            if task is None:  # the worker failed and its task was failed meanwhile
                return
            if status == _futures_worker.MISSING:  # its cache started over: send it again
                w.sent.discard(self.functions.lookup(task.fn)[0] or 0)
                nxt: _Task | None = None
            else:
                w.task = None
                nxt = self._next_for(w)
        fut = task.future
        if status == _futures_worker.MISSING:
            try:
                self._put(w, task)
            except BaseException as e:  # noqa: BLE001 - goes to the task's future
                with self.lock:
                    w.task = None
                    nxt = self._next_for(w)
                fut.set_exception(e)
                del e
            else:
                return
        elif status == _futures_worker.OK:
            fut.set_result(item[2])
        elif status == _futures_worker.RAISED:
            fut.set_exception(_rebuild(item[2], item[3]))
        else:  # UNSHAREABLE: the result could not cross
            fut.set_exception(NotShareableError(item[2]))
        del task, fut, item
        if nxt is not None:
            self._send(w, nxt)
        with self.progress:
            if self.sleepers:
                self.progress.notify_all()

    # --- the collector thread -------------------------------------------------

    def _collector_needed(self) -> bool:
        """Whether replies must be collected by the collector thread if no
        one else does: a backlog, a future someone waits on without
        ``result()``, or a shutdown's remaining work."""
        if self.backlog:
            return True
        busy = False
        for w in self.workers:
            t = w.task
            if t is not None:
                busy = True
                if t.future._waiters or t.future._done_callbacks:
                    return True
        return busy and self.shutdown

    def _finishing(self) -> bool:
        return self.shutdown and not self.stopped

    def want(self) -> None:
        """Someone needs replies collected without calling ``result()``."""
        with self.progress:
            if self.collector is None:
                self.collector = threading.Thread(
                    name=f"{self.prefix}_collector", target=_collector_main, args=(self,), daemon=True
                )
                self.collector.start()
            elif self.collector_idle:
                self.wake_collector.notify()

    def idle(self) -> bool:
        """No task in the backlog or handed to a worker (under ``lock``)."""
        return not self.backlog and all(w.task is None for w in self.workers)

    # --- breaking, closing, stopping ----------------------------------------

    def worker_failed(self, w: _Worker, msg: str) -> None:
        """``w`` cannot run tasks any more: the pool is broken; its task and
        the backlog fail; the other workers stop after their current task."""
        with self.lock:
            w.gone = True
            if not self.broken:
                self.broken = msg
            failed = [t for t in (w.task, *self.backlog) if t is not None]
            w.task = None
            self.backlog.clear()
            others = [x for x in self.workers if not x.gone and not x.closing]
            self.stopped = True
        for t in failed:
            if not t.future.done():
                t.future.set_exception(BrokenInterpreterPool(msg))
        for x in others:
            x.tasks.put(None)
        self.results.put(_WAKE)  # a role holder blocked in `get` rechecks its future
        with self.progress:
            if self.sleepers:
                self.progress.notify_all()
            if self.collector is not None and self.collector_idle:
                self.wake_collector.notify()

    def close_requested(self, w: _Worker) -> None:
        """``Interpreter.close()`` of ``w``'s interpreter (from any thread):
        make its loop leave, then let the close go on (the pool is broken)."""
        self.poll()
        with self.lock:
            if not w.gone:
                if w.task is not None:
                    raise InterpreterError(
                        f"interpreter {w.interp_id} is running a task of an InterpreterPoolExecutor"
                    )
                w.closing = True
        w.tasks.put(None)
        w.left.wait()

    def stop(self, cancel_futures: bool) -> list[_Task]:
        """Shut down: no new tasks; the cancelled backlog is returned."""
        with self.lock:
            first = not self.shutdown
            self.shutdown = True
            cancelled = list(self.backlog) if cancel_futures else []
            if cancel_futures:
                self.backlog.clear()
            stopped = self.stopped
        if first and not stopped:
            self.want()  # the collector finishes the work and stops the workers
        if cancelled:
            self.results.put(_WAKE)  # for a role holder waiting on a cancelled one
        return cancelled

    def stop_workers(self) -> None:
        with self.lock:
            self.stopped = True
            workers = [w for w in self.workers if not w.gone and not w.closing]
        for w in workers:
            w.tasks.put(None)


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
    """The collector thread: collects while the hub needs it to; once a
    shutdown's work is done, stops the workers and ends."""
    try:
        while True:
            with hub.progress:
                while not (hub._collector_needed() or hub._finishing()):
                    hub.collector_idle = True
                    try:
                        hub.wake_collector.wait()
                    finally:
                        hub.collector_idle = False
            hub.drive(None, None)
            with hub.lock:
                finished = hub.shutdown and hub.idle()
            if finished:
                hub.stop_workers()
                return
    except BaseException:  # noqa: BLE001 - as the thread pool: log it
        _base.LOGGER.critical("Exception in the executor's collector thread", exc_info=True)


def _worker_main(hub: _Hub, w: _Worker) -> None:
    """A worker thread: make its interpreter, run the initializer there, then
    serve the tasks from inside it until told to stop."""
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
        interp.call(_futures_worker.serve, w.tasks, hub.results, w.index, iid)
        with hub.lock:
            w.gone = True
    except BaseException as e:  # noqa: BLE001 - the loop ended abnormally: the pool is broken
        if not w.closing:
            _base.LOGGER.critical("Exception in worker", exc_info=True)
            hub.worker_failed(w, f"a worker interpreter failed: {e!r}")
    finally:
        if hook:
            interpreters._close_hooks.pop(iid, None)
        if w.closing:
            # Someone is closing it (Interpreter.close): it is theirs to end.
            hub.worker_failed(w, f"a worker interpreter was closed under the pool (interpreter {iid})")
        else:
            try:
                interp.close()
            except Exception:  # noqa: BLE001, S110 - already gone, or exiting
                pass
        del interp
        w.left.set()


_hubs: weakref.WeakSet[_Hub] = weakref.WeakSet()


def _at_exit() -> None:
    # As the thread pool's own exit hook: the pending work is done, then the
    # workers stop and are joined.
    for hub in list(_hubs):
        hub.stop(cancel_futures=False)
    for hub in list(_hubs):
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

    @property  # type: ignore[override]
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
        hub = self._hub
        future: _Future[_T] = _Future(hub)
        hub.submit(_Task(future, f, call_args, kwargs, chunk))
        return future

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
        for task in hub.stop(cancel_futures):
            task.future.cancel()
        if wait:
            for t in list(self._threads):
                t.join()
            collector = hub.collector
            if collector is not None:
                collector.join()

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
