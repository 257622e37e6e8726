"""Dask on crossinterp: the interpreter pool as a Dask scheduler, on one
machine and in ``distributed`` workers.

**One machine.** :class:`~crossinterp.futures.InterpreterPoolExecutor` is a
:class:`concurrent.futures.Executor`, which Dask takes as a scheduler
(``dask.compute(..., scheduler=ex)``, ``dask.config.set(scheduler=ex)``):
each task runs in one of the pool's own-GIL interpreters. Nothing of this
module is needed for that. Graphs whose tasks carry objects of extension
modules that refuse subinterpreters (numpy: every ``dask.array`` and
``dask.dataframe`` graph) cannot run there; :func:`scheduler` returns a
Dask scheduler that runs such a task in a thread of the main interpreter
instead (as Dask's threaded scheduler would), and every other task in the
pool.

**distributed.** A ``distributed`` worker runs its tasks with
``distributed.worker._run_task_simple`` (its bookkeeping: timings, sizes,
error messages), which imports ``distributed.worker`` and through it psutil,
a C extension that refuses subinterpreters. :class:`InterpreterWorkerPlugin`
is a ``distributed.WorkerPlugin`` that gives the worker a
:class:`DistributedExecutor` as its default executor: distributed's own code
keeps running in the worker's main interpreter, in a thread, and only the
task itself (the user's function on its inputs) crosses into an interpreter
of the pool. Why a plugin, not a worker subclass or an executor passed as
``Worker(executor=...)``: a plugin is what distributed supports for changing
a running worker from the client (``client.register_plugin(...)``), it
reaches every worker of any cluster (including ones started by a nanny in
another process, where an executor object cannot be sent), and it needs no
change to how clusters are started.

A worker interpreter closed under the pool (or gone) loses no task: the
executor replaces the pool and runs the task again once; a second failure
fails the task with :class:`~crossinterp.futures.BrokenInterpreterPool`,
which distributed reports as the task's error.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from .futures import BrokenInterpreterPool, InterpreterPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["DistributedExecutor", "InterpreterWorkerPlugin", "scheduler"]


def _run_node(node: Callable[[Mapping[object, object]], object], data: Mapping[object, object]) -> object:
    """In a worker interpreter: a Dask graph node on its dependencies."""
    return node(data)


class _InPool:
    """A Dask graph node whose call runs in an interpreter of the pool."""

    __slots__ = ("_executor", "_node")

    def __init__(self, executor: DistributedExecutor, node: Callable[..., object]) -> None:
        self._executor = executor
        self._node = node

    def __call__(self, data: Mapping[object, object]) -> object:
        return self._executor._run_in_pool(self._node, data)

    def __getattr__(self, name: str) -> object:
        # distributed reads attributes of the node (key, is_coro, ...).
        return getattr(self._node, name)


class DistributedExecutor(Executor):
    """The executor :class:`InterpreterWorkerPlugin` gives a distributed worker.

    ``submit(fn, *args)`` runs ``fn`` in one of ``max_workers`` threads of the
    worker's main interpreter; when ``fn`` is distributed's task runner, the
    task it runs (the graph node) is called in an interpreter of an
    :class:`InterpreterPoolExecutor` of the same size. Owned by the worker
    (made in the plugin's ``setup``, shut down in its ``teardown``); usable
    from any thread of the main interpreter.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "crossinterp-dask") -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._threads = ThreadPoolExecutor(max_workers, thread_name_prefix + "-main")
        self._lock = threading.Lock()
        self._pool = InterpreterPoolExecutor(max_workers, thread_name_prefix)
        self._runner: object = None
        self.replaced = 0
        """How many times a broken interpreter pool was replaced."""

    def _task_runner(self) -> object:
        if self._runner is None:
            try:
                from distributed.worker import _run_task_simple
            except ImportError:  # no distributed: nothing to recognise
                _run_task_simple = None
            self._runner = _run_task_simple
        return self._runner

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a thread of the main interpreter;
        distributed's task runner gets its graph node run in the pool."""
        if fn is self._task_runner() and args:
            args = (_InPool(self, args[0]), *args[1:])
        return self._threads.submit(fn, *args, **kwargs)

    def _run_in_pool(self, node: Callable[..., object], data: Mapping[object, object]) -> object:
        for attempt in (1, 2):
            pool = self._pool
            try:
                return pool.submit(_run_node, node, data).result()
            except BrokenInterpreterPool:
                if attempt == 2:
                    raise
                self._replace(pool)
        raise AssertionError("unreachable")

    def _replace(self, broken: InterpreterPoolExecutor) -> None:
        """A worker interpreter was closed under the pool: a new pool (once per
        broken pool, whichever thread sees it first)."""
        with self._lock:
            if self._pool is broken:
                self._pool = InterpreterPoolExecutor(self._max_workers, self._prefix)
                self.replaced += 1
        broken.shutdown(wait=False, cancel_futures=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut down the threads, then the interpreter pool."""
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


if TYPE_CHECKING:
    # Checkers see distributed's class (`Any` where distributed is not
    # installed: pyproject.toml's mypy overrides).
    from distributed import WorkerPlugin as _WorkerPluginBase
else:
    try:
        from distributed import WorkerPlugin as _WorkerPluginBase
    except ImportError:  # distributed is optional: the plugin needs it at use
        _WorkerPluginBase = object


class InterpreterWorkerPlugin(_WorkerPluginBase):
    """A ``distributed.WorkerPlugin``: the worker's tasks run in crossinterp
    interpreters (one own-GIL interpreter per worker thread)::

        client.register_plugin(InterpreterWorkerPlugin())

    ``setup`` replaces the worker's ``"default"`` executor with a
    :class:`DistributedExecutor` of ``worker.state.nthreads`` workers (or
    ``max_workers``); ``teardown`` restores the previous one and shuts ours
    down. Tasks annotated with another executor (``dask.annotate(executor=...)``)
    are left alone.
    """

    name = "crossinterp"
    idempotent = True

    def __init__(self, max_workers: int | None = None) -> None:
        if _WorkerPluginBase is object:
            raise ImportError("InterpreterWorkerPlugin needs distributed (pip install distributed)")
        self.max_workers = max_workers
        self._previous: Executor | None = None

    def setup(self, worker: Any) -> None:
        n = self.max_workers or worker.state.nthreads
        self._previous = worker.executors.get("default")
        worker.executors["default"] = DistributedExecutor(n)

    def teardown(self, worker: Any) -> None:
        ours = worker.executors.get("default")
        if isinstance(ours, DistributedExecutor):
            if self._previous is not None:
                worker.executors["default"] = self._previous
            ours.shutdown(wait=False)


# --------------------------------------------------------------- local scheduler

_REFUSED = ("does not support loading in subinterpreters", "not supported in subinterpreters",
            "cannot load module more than once per process", "Importing the numpy C-extensions failed")


def _refused_here(exc: BaseException) -> bool:
    """Whether a task failed to cross because a module it needs refuses
    subinterpreters (or its objects cannot be pickled for them)."""
    from ._errors import NotShareableError

    e: BaseException | None = exc
    while e is not None:
        # The executor's error for a callable or arguments that did not
        # cross ("the result ..." is another matter: the task ran).
        if isinstance(e, NotShareableError) and str(e) == "args not shareable":
            return True
        if isinstance(e, ImportError) and any(s in str(e) for s in _REFUSED):
            return True
        e = e.__cause__ or e.__context__
    return False


class _Routed(Executor):
    """What :func:`scheduler` gives Dask's local scheduler: submits to the
    pool, and runs in a main-interpreter thread what cannot cross."""

    def __init__(self, pool: InterpreterPoolExecutor) -> None:
        self._pool = pool
        self._max_workers = pool._max_workers
        self._threads = ThreadPoolExecutor(self._max_workers, "crossinterp-dask-main")
        self.in_main = 0
        """Tasks that ran in the main interpreter (they could not cross)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        out: Future[Any] = Future()
        first = self._pool.submit(fn, *args, **kwargs)

        def done(f: Future[Any]) -> None:
            exc = f.exception()
            if exc is not None and _refused_here(exc):
                self.in_main += 1
                second = self._threads.submit(fn, *args, **kwargs)
                second.add_done_callback(lambda s: _copy(s, out))
            else:
                _copy(f, out)

        first.add_done_callback(done)
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)


def _copy(src: Future[Any], dst: Future[Any]) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


def scheduler(pool: InterpreterPoolExecutor) -> Callable[..., Any]:
    """A Dask scheduler (a ``get`` function) running tasks in ``pool``, and in
    a thread of the main interpreter those that cannot cross into a
    subinterpreter (numpy's objects and functions, for instance)::

        with InterpreterPoolExecutor(4) as ex:
            x.sum().compute(scheduler=crossinterp.dask.scheduler(ex))

    The returned function's ``routed`` attribute counts the tasks that ran
    in the main interpreter.
    """
    if not isinstance(pool, InterpreterPoolExecutor):
        raise TypeError(f"pool must be an InterpreterPoolExecutor, not {type(pool).__name__}")
    from dask import local

    routed = _Routed(pool)

    def get(dsk: Mapping[object, object], keys: object, **kwargs: Any) -> object:
        n = kwargs.pop("num_workers", None) or routed._max_workers
        return local.get_async(routed.submit, n, dsk, keys, **kwargs)

    get.routed = routed  # type: ignore[attr-defined]
    return get
