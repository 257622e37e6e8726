"""The worker-interpreter side of :class:`crossinterp.futures.InterpreterPoolExecutor`
(not public API).

Every worker interpreter imports only this module (and ``_xi``), not
``crossinterp.futures``: ``concurrent.futures`` and its threads are the
caller's business, and every module a worker imports costs memory in each one.
"""

from __future__ import annotations

from . import _xi, _xiload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# key -> the function rebuilt here from the caller's pickle (one per key, so a
# function is rebuilt once per worker, not once per task). Keys are the
# executor's, unique in the caller's interpreter; a worker serves one executor.
_functions: dict[int, Callable[..., object]] = {}
# Beyond this many cached functions the cache starts over (an executor fed an
# endless stream of distinct lambdas must not grow without bound).
_MAX_FUNCTIONS = 1024

OK = 0
RAISED = 1
MISSING = 2  # the function of that key is not (or no longer) cached here: send it again
UNSHAREABLE = 3  # the result could not cross back: (UNSHAREABLE, message)
ARGS_UNSHAREABLE = 4  # the callable or an argument did not unpickle here: (.., message)
SKIPPED = 5  # a cancelled task seen here: (task id, SKIPPED, its cell's index)
OK_PACKED = 6  # a result that needed pickle: (task id, OK_PACKED, _xi.dumps(result))
CANCELLED = 1  # a claim cell's value once the caller cancelled the task


def serve(
    tasks: Any, results: Any, cells: tuple[Any, ...], claim: int, store: Any, interp_id: int
) -> None:
    """The worker's loop: run the tasks got from ``tasks`` (the pool's queue)
    until ``None`` comes. A task is ``(task id, claim cell (an index into
    ``cells`` or the cell itself), key, data, main, packed, (fn, args, kwargs)
    or their pickle if packed, chunk)``: run only if this worker moves the
    claim cell (an ``AtomicInt``) from 0 to ``claim`` first (else it was cancelled or
    the pool broke). A function
    not rebuilt here yet is found by its key in ``store`` (a proxy of the
    caller's dict of pickles). The reply goes on ``results`` as
    ``(task id, *run's reply)``, or ``(task id, UNSHAREABLE, message)`` when
    the result cannot cross. The thread running it stays parked here, in a
    blocking ``get``, between tasks: a task crosses in one put and one get."""
    functions = _functions
    while True:
        item: Any = tasks.get()
        if item is None:
            return
        tid, cref, key, data, main, packed, payload, chunk = item
        reply: tuple[Any, ...]
        cell = cells[cref] if type(cref) is int else cref
        if not cell.compare_and_set(0, claim):
            # Cancelled (its cell can be reused now), or failed with a broken pool.
            if type(cref) is int and cell.get() == CANCELLED:
                results.put((tid, SKIPPED, cref))
            continue
        if packed:  # pickled by the caller: the callable or an argument needed it
            try:
                unpacked: Any = _xiload.loads(*payload)
                fn, args, kwargs = unpacked
            except BaseException as e:  # noqa: BLE001 - goes back to the caller
                results.put((tid, ARGS_UNSHAREABLE, f"{type(e).__name__}: {e}"))
                continue
        else:
            fn, args, kwargs = payload
        f = functions.get(key) if key is not None else fn
        if f is None and key is not None and data is None:
            # First time here: the pickle from the caller's store (a proxy).
            try:
                found = store.get(key)
            except Exception:  # noqa: BLE001 - not found: run() says MISSING, it comes again
                found = None
            if found is not None:
                data, main = found
        if f is None:
            # Not cached here: run() loads it from `data` (or says MISSING).
            reply = (tid, *run(key, data, main, fn, args, kwargs, chunk))
        else:
            try:
                if chunk:
                    r: object = tuple([f(*a) for a in args])
                elif kwargs:
                    r = f(*args, **kwargs)
                else:
                    r = f(*args)
            except BaseException as e:  # noqa: BLE001 - every exception goes back to the caller
                reply = (tid, RAISED, *describe(e))
            else:
                reply = (tid, OK, r)
            r = None
        # Natively (containers included, never pickled by the queue), so that
        # the caller's `get` cannot fail on it: a result that needs pickle is
        # pickled here, and unpickled by the caller as the task's result (or
        # its error).
        try:
            if not results._put_native(reply):
                if reply[1] != OK:  # a RAISED reply is strings and bytes: native
                    raise NotImplementedError(f"reply {reply[1]} not native")
                results.put((tid, OK_PACKED, _xi.dumps(reply[2])), strict=True)
        except Exception as e:  # noqa: BLE001 - the result does not cross: said instead
            results.put(
                (tid, UNSHAREABLE, f"the result could not leave the interpreter {interp_id}: {e}"),
                strict=True,
            )
        # Nothing of the task stays alive here while the loop waits.
        item = cell = cref = payload = args = kwargs = f = fn = data = None
        del reply


def run(
    key: int | None,
    data: bytes | None,
    main: str | None,
    fn: Callable[..., object] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    chunk: bool,
) -> tuple[Any, ...]:
    """Run one task here (the reply's first item says which shape it has):
    ``(OK, result)``, or ``(RAISED, pickled exception |
    None, excinfo)`` for an exception (caught here: the
    caller re-raises it with the same type when it crosses).

    ``key`` names a function cached here; ``data``/``main`` (the caller's
    ``_xi.dumps`` of it) come with the first task of each key this worker
    sees (``(MISSING,)`` when a key comes without them and is not cached
    here, e.g. after the cache started over: the caller sends it again). Without a key, ``fn`` is the callable itself. ``chunk``: ``args`` is
    a tuple of argument tuples, the result the tuple of the results."""
    try:
        if key is not None:
            f = _functions.get(key)
            if f is None:
                if data is None:
                    return (MISSING,)
                # The executor pickled a callable (`_FunctionCache.lookup`);
                # what `loads` returns is not known statically: `Any`.
                loaded: Any = _xiload.loads(data, main)
                f = loaded
                if len(_functions) >= _MAX_FUNCTIONS:
                    _functions.clear()
                _functions[key] = f
        else:
            f = fn
        assert f is not None
        if chunk:
            return (OK, tuple([f(*a) for a in args]))
        if kwargs:
            return (OK, f(*args, **kwargs))
        return (OK, f(*args))
    except BaseException as e:  # noqa: BLE001 - every exception goes back to the caller
        return (RAISED, *describe(e))


def describe(
    e: BaseException,
) -> tuple[tuple[bytes, str | None] | None, tuple[str, str, str, str, str, str]]:
    """(the exception pickled by ``_xi.dumps`` or None if it does not
    pickle, ``_xi.excinfo``: its type, message and formatted traceback)."""
    info = _xi.excinfo(e)
    try:
        data: tuple[bytes, str | None] | None = _xi.dumps(e)
    except Exception:  # noqa: BLE001 - an exception that cannot cross is described instead
        data = None
    return data, info
