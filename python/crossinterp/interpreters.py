"""Subinterpreters with their own GIL: a drop-in for ``concurrent.interpreters``
(PEP 734, as of Python 3.14), on every supported Python (3.13, 3.13t, 3.14, 3.15).

Implemented on the C API by ``crossinterp._native``, so it behaves the same
on 3.13 and later; interpreters are created by CPython's ``_interpreters``
(so CPython records them as its module's, and ``_interpreters`` accepts them),
then run in and closed by crossinterp.

Differences from the stdlib, all additive:

- a new interpreter starts with a copy of the creator's ``sys.path``;
- ``create(site=False)`` makes one without importing ``site`` there (faster);
- interpreters :func:`create` made that are still open at exit are closed
  cleanly by the main interpreter (without the stdlib's warning).

Arguments and results of :meth:`Interpreter.call` and values given to
:meth:`Interpreter.prepare_main` cross by copy for ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes`` and tuples of these, and by pickle otherwise.
Functions and classes defined in the caller's guarded main script are found
in the target by loading that script there as ``<fake __main__>``; functions
that cannot be found by reference (lambdas, closures, functions of an
unguarded script or of ``-c``) cross by value (see ``crossinterp._xi``).
"""

from __future__ import annotations

import os as _os
import threading
import weakref

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing at run time (PEP 781's idiom)
    from collections.abc import Callable
    from typing import Any, Self

    # `X as X`: re-exported (PEP 484), what __getattr__ below returns at run time
    from .queues import Queue as Queue  # noqa: PLC0414
    from .queues import QueueEmpty as QueueEmpty  # noqa: PLC0414
    from .queues import QueueError as QueueError  # noqa: PLC0414
    from .queues import QueueFull as QueueFull  # noqa: PLC0414
    from .queues import QueueNotFoundError as QueueNotFoundError  # noqa: PLC0414

from . import _native
from ._errors import (
    ExceptionInfo,
    ExecutionFailed,
    InterpreterError,
    InterpreterFinalizingError,
    InterpreterGoneError,
    InterpreterNotFoundError,
    NotShareableError,
)
from ._native import InterpreterGuard, InterpreterView

__all__ = [
    "ExecutionFailed",
    "Interpreter",
    "InterpreterError",
    "InterpreterFinalizingError",
    "InterpreterGoneError",
    "InterpreterGuard",
    "InterpreterNotFoundError",
    "InterpreterView",
    "NotShareableError",
    "create",
    "create_queue",
    "get_current",
    "get_main",
    "is_shareable",
    "list_all",
]

WHENCE_CROSSINTERP = "crossinterp"

# One live object per id (PEP 734's identity), without keeping it alive:
# the last object of an interpreter made by create() closes it.
_cache: weakref.WeakValueDictionary[int, Interpreter] = weakref.WeakValueDictionary()
_cache_lock = threading.Lock()
# Interpreters whose thread parks in a loop inside them between tasks (the
# workers of crossinterp.futures.InterpreterPoolExecutor): id -> a callable
# that makes the loop leave (or raises InterpreterError if it is busy) and
# returns once no thread runs there, so that `close()` can go on. Set and
# removed by their owner; `close()` calls it first.
_close_hooks: dict[int, Callable[[], None]] = {}

try:  # CPython's own registry of interpreters (3.13+), for the ones not ours
    import _interpreters as _stdlib
except ImportError:  # pragma: no cover - every supported build has it
    _stdlib = None  # type: ignore[assignment]

_WHENCE_STDLIB = "_interpreters module"
if _stdlib is not None:
    _WHENCE_NAMES = {
        _stdlib.WHENCE_UNKNOWN: "unknown",
        _stdlib.WHENCE_RUNTIME: "runtime init",
        _stdlib.WHENCE_LEGACY_CAPI: "legacy C-API",
        _stdlib.WHENCE_CAPI: "C-API",
        _stdlib.WHENCE_XI: "cross-interpreter C-API",
        _stdlib.WHENCE_STDLIB: _WHENCE_STDLIB,
    }


def _not_found(iid: int) -> InterpreterNotFoundError:
    return InterpreterNotFoundError(f"interpreter {iid} not found (it was closed)")


def _is_ours(iid: int) -> bool:
    """Whether :func:`create` made interpreter ``iid`` (it is then closed by
    crossinterp, and its ``Interpreter`` objects count references natively)."""
    try:
        return _native.whence(iid) == WHENCE_CROSSINTERP
    except InterpreterNotFoundError:
        return False


def _whence_of(iid: int) -> str:
    """What CPython records (``"_interpreters module"`` for the interpreters
    :func:`create` makes: CPython's ``_interpreters`` creates them);
    ``"crossinterp"`` for ours only without ``_interpreters``."""
    if _stdlib is None:
        return _native.whence(iid)
    try:
        return _WHENCE_NAMES.get(_stdlib.whence(iid), "unknown")
    except _stdlib.InterpreterNotFoundError:
        raise _not_found(iid) from None


def _native_running(iid: int) -> bool:
    """Whether crossinterp runs a call in ``iid`` now (not counting the
    calling thread's own interpreter, which runs code but maybe not its
    ``__main__``)."""
    try:
        return _native.is_running(iid) and iid != _native.get_current()[0]
    except InterpreterNotFoundError:
        return False


# Interpreters whose __main__ crossinterp runs code in (exec, call,
# prepare_main): the stdlib's rule (only the ones its module made), plus the
# main interpreter.
_RUNNABLE = (_WHENCE_STDLIB, WHENCE_CROSSINTERP, "runtime init")


def create(*, site: bool = True) -> Interpreter:
    """Create a new interpreter with its own GIL and return it.

    ``site=False`` (crossinterp only) skips the ``site`` import in the new
    interpreter, most of the cost of creating one: it still gets the
    creator's ``sys.path`` (so it imports what the creator can), but no
    ``sitecustomize``/``usercustomize``, ``.pth`` processing or ``site``'s
    builtins (``exit``, ``quit``, ``help``, ...), and its ``sys.flags.no_site``
    is 1. Where the build does not allow it, ``site`` runs.
    """
    site = bool(site)
    iid = _native.create(site) if site else _create_off_main_thread(site)
    return Interpreter(iid, _ownsref=True)


def _create_off_main_thread(site: bool) -> int:
    """``_native.create(site)``, on a helper thread when called on the
    process's main thread: there, each thread state CPython initialises
    (about a dozen per new interpreter) asks glibc for the thread's stack,
    which on the main thread parses ``/proc/self/maps`` (measured: ~40% of a
    creation without ``site``). Only for ``site=False``: no code of the user
    (``sitecustomize``) runs during that creation, so which thread makes the
    interpreter is not observable there."""
    if threading.get_native_id() != _os.getpid():  # not the main thread (Linux)
        return _native.create(site)
    result: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            result.append((True, _native.create(site)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            result.append((False, e))

    t = threading.Thread(target=run, name="crossinterp-create")
    try:
        t.start()
    except RuntimeError:  # no new threads (at shutdown, say): create here
        return _native.create(site)
    t.join()
    ok, value = result[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    assert isinstance(value, int)
    return value


if not TYPE_CHECKING:  # checkers see the names imported above, and reject any other

    def __getattr__(name: str) -> object:
        # PEP 734's module also exports the queue type and its errors.
        if name in ("Queue", "QueueEmpty", "QueueFull", "QueueError", "QueueNotFoundError"):
            from . import queues

            return getattr(queues, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_queue(maxsize: int = 0, *, unbounditems: object = None) -> Queue[Any]:
    """Make a new cross-interpreter queue: see :mod:`crossinterp.queues`."""
    from . import queues

    if unbounditems is None:
        unbounditems = queues.UNBOUND
    return queues.create(maxsize, unbounditems=unbounditems)


def list_all() -> list[Interpreter]:
    """All live interpreters of the process (the main one included): on
    3.13+ every interpreter CPython knows, however it was made; without the
    stdlib's ``_interpreters``, those registered with crossinterp."""
    if _stdlib is None:
        listed = list(_native.list_all())
    else:
        listed = list(_stdlib.list_all(require_ready=True))
    interps = []
    for iid, whence in listed:
        try:
            interps.append(Interpreter(iid, _whence=whence))
        except InterpreterNotFoundError:
            pass  # closed after it was listed
    return interps


def get_current() -> Interpreter:
    """The interpreter the calling thread is running in."""
    if _stdlib is not None:
        iid, whence = _stdlib.get_current()
    else:
        iid, whence = _native.get_current()
    return Interpreter(iid, _whence=whence)


def get_main() -> Interpreter:
    """The main interpreter."""
    iid, whence = _native.get_main()
    return Interpreter(iid, _whence=whence)


try:  # CPython's own low-level module (3.13+): its cross-interpreter registry
    import _interpreters as _cpython
except ImportError:  # pragma: no cover - every supported build has it
    _cpython = None  # type: ignore[assignment]


def _cpython_only(obj: object) -> bool:
    """Whether CPython's own cross-interpreter registry shares ``obj`` and
    crossinterp does not natively: objects of CPython's modules such as the
    ends of ``_interpchannels`` channels and the stdlib's queues."""
    if _cpython is None or _native.is_shareable(obj):
        return False
    return bool(_cpython.is_shareable(obj))


def is_shareable(obj: object) -> bool:
    """Whether ``obj`` crosses interpreters natively, without pickling:
    crossinterp's own values, or an object CPython's own registry shares
    (``prepare_main`` hands those over with CPython's machinery)."""
    return _native.is_shareable(obj) or _cpython_only(obj)


class Interpreter:
    """A single interpreter in the current process.

    Instances are cached per id: ``Interpreter(i) is Interpreter(i)``. An
    ``Interpreter`` object may be used from any thread of any interpreter;
    operations on a closed interpreter raise :class:`InterpreterNotFoundError`.
    """

    _id: int
    _whence: str
    _ownsref: object  # the module whose decref() owns our reference, or None
    _ours: bool  # made by create()

    # The stdlib's signature: ``_whence`` is CPython's whence (an int of
    # ``_interpreters.WHENCE_*``, or its name), ``_ownsref`` whether this
    # object owns a reference to the interpreter (default: if a create()
    # made it). Not `-> Self`: the instance cached for `id` is returned
    # whatever `cls` is.
    def __new__(  # noqa: PYI034
        cls, id: int, /, _whence: int | str | None = None, _ownsref: bool | None = None
    ) -> Interpreter:
        if not isinstance(id, int) or isinstance(id, bool):
            raise TypeError(f"id must be an int, got {id!r}")
        if id < 0:
            raise ValueError(f"id must be a non-negative int, got {id!r}")
        if isinstance(_whence, int) and not isinstance(_whence, bool) and _stdlib is not None:
            try:
                _whence = _WHENCE_NAMES[_whence]
            except KeyError:
                raise ValueError(f"unknown whence {_whence!r}") from None
        if _whence is not None and not isinstance(_whence, str):
            raise TypeError(f"_whence must be an int or a str, got {_whence!r}")
        with _cache_lock:
            self = _cache.get(id)
            if self is not None:
                if _whence is None and _ownsref is None:
                    _whence_of(id)  # still alive? (it may have been closed elsewhere)
                return self
            ours = _is_ours(id)
            if _whence is None:
                _whence = _WHENCE_STDLIB if _ownsref and _stdlib is not None else _whence_of(id)
            if _ownsref is None:
                _ownsref = ours or _whence == _WHENCE_STDLIB
            self = super().__new__(cls)
            self._id = id
            self._whence = _whence
            self._ours = ours
            self._ownsref = None
            # As in the stdlib, each object of an interpreter made by a
            # create() owns a reference to it: the last one closes it.
            if _ownsref and ours:
                _native.incref(id)
                self._ownsref = _native
            elif _ownsref and _stdlib is not None:
                try:
                    _stdlib.incref(id)
                except _stdlib.InterpreterNotFoundError:
                    raise _not_found(id) from None
                self._ownsref = _stdlib
            _cache[id] = self
            return self

    def _check_runnable(self, what: str) -> None:
        """The stdlib's refusal for interpreters neither module made."""
        if not self._ours and self._whence not in _RUNNABLE:
            raise InterpreterError(f"cannot {what} unrecognized interpreter {self._id}")

    def __del__(self) -> None:
        self._decref()

    # Globals may be gone when this runs at exit: everything it needs is bound.
    def _decref(self, *, _errors: tuple[type[BaseException], ...] = (Exception,)) -> None:
        owner = getattr(self, "_ownsref", None)
        if owner is None:
            return
        self._ownsref = None
        try:
            # The last reference closes an idle interpreter made by create();
            # one that is running, current, guarded or gone is left alone.
            owner.decref(self._id)
        except _errors:
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id}, whence={self._whence!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """``with interpreters.create() as interp:`` closes it at the end of
        the block (as :meth:`close`; nothing if it was closed already)."""
        try:
            self.close()
        except InterpreterNotFoundError:
            pass

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[type[Interpreter], tuple[int]]:
        return (type(self), (self._id,))

    @property
    def id(self) -> int:
        """The interpreter's id (CPython's, as in ``concurrent.interpreters``)."""
        return self._id

    @property
    def whence(self) -> str:
        """How the interpreter was created, as CPython records it:
        ``"runtime init"`` (main), ``"_interpreters module"`` (:func:`create`,
        which creates through CPython's ``_interpreters``), ``"C-API"``, ..."""
        return self._whence

    def view(self) -> InterpreterView:
        """A weak view of the interpreter (PEP 788): it never keeps the
        interpreter alive. ``view.guard()`` holds off its finalization;
        ``view.is_alive()`` tells whether it is still running."""
        return _native.view(self._id)

    def is_running(self) -> bool:
        """Whether the interpreter is running its ``__main__`` now (an
        ``exec``/``call``/``prepare_main``, ours or the stdlib's; the main
        interpreter's main thread), as ``concurrent.interpreters`` says: code
        run in an interpreter without marking it (``PyRun_SimpleString`` in
        a C-API interpreter, say) is not."""
        if _stdlib is None:
            return _native.is_running(self._id)
        # crossinterp marks the interpreter as running its __main__ (CPython's
        # own mark) for the duration of each of its calls.
        if _native_running(self._id):
            return True
        try:
            return _stdlib.is_running(self._id)
        except _stdlib.InterpreterNotFoundError:
            raise _not_found(self._id) from None

    def close(self) -> None:
        """Finalize and destroy the interpreter.

        Waits for guards held on it (warning on stderr every
        ``set_finalize_warn_after`` seconds), runs its pending calls, releases
        the objects it shared (their proxies elsewhere are dead from then on),
        then ends it. Raises :class:`InterpreterError` if it is running (or is
        the current interpreter, or was created neither by crossinterp nor by
        the stdlib's ``interpreters`` module, or this thread holds a guard on
        it), and :class:`InterpreterNotFoundError` if it is already closed.
        """
        hook = _close_hooks.get(self._id)
        if hook is not None:
            hook()
        if self._ours or _stdlib is None:
            _native.destroy(self._id)
        else:
            # Made elsewhere: CPython's rules (it closes only its own).
            try:
                _stdlib.destroy(self._id, restrict=True)
            except _stdlib.InterpreterNotFoundError:
                raise _not_found(self._id) from None
            except _stdlib.InterpreterError as e:
                raise InterpreterError(str(e)) from None
        with _cache_lock:
            if _cache.get(self._id) is self:
                del _cache[self._id]
        self._ownsref = None

    def prepare_main(self, ns: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Bind the given names in the interpreter's ``__main__`` module.

        Values cross by copy for the natively shareable types, by pickle
        otherwise (:class:`NotShareableError` if they cannot). Nothing to
        bind (no names at all) is a ``ValueError``, as in the stdlib.
        """
        self._check_runnable("update __main__ for")
        items = dict(ns) if ns is not None else {}
        items.update(kwargs)
        if not items:
            raise ValueError("prepare_main() needs at least one name to bind")
        # Objects only CPython's own registry shares (a channel end of
        # _interpchannels, a stdlib queue) cross with CPython's machinery, as
        # in the stdlib; everything else crossinterp's way.
        theirs = {k: v for k, v in items.items() if _cpython_only(v)}
        if theirs:
            assert _cpython is not None
            _cpython.set___main___attrs(self._id, theirs, restrict=False)
            items = {k: v for k, v in items.items() if k not in theirs}
            if not items:
                return
        excinfo = _native.set_main_attrs(self._id, items)
        if excinfo is not None:
            raise ExecutionFailed(ExceptionInfo.from_tuple(excinfo))

    def exec(self, code: str | Callable[[], object], /) -> None:
        """Run source code (or the body of a function taking no arguments, or
        a code object) in the interpreter's ``__main__``, in this thread.

        An uncaught exception raises :class:`ExecutionFailed` here, with the
        remote traceback in ``excinfo``.
        """
        self._check_runnable("exec in")
        info = _native.exec(self._id, code)
        if info is not None:
            # this line as the stdlib's, which tracebacks show
            excinfo = ExceptionInfo.from_tuple(info)
            raise ExecutionFailed(excinfo)

    def call[**P, R](self, callable: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``callable(*args, **kwargs)`` in the interpreter, in this thread,
        and return its result.

        The callable, the arguments and the result cross interpreters by copy
        or pickle; an uncaught exception raises :class:`ExecutionFailed`.
        """
        self._check_runnable("call in")
        res, excinfo = _native.call(self._id, callable, args, kwargs or None)
        if excinfo is not None:
            raise ExecutionFailed(ExceptionInfo.from_tuple(excinfo))
        return res  # type: ignore[no-any-return]  # R: what `callable` returned there

    async def call_async[**P, R](
        self, callable: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Awaitable :meth:`call`: runs in a thread of the event loop's small
        pool (``crossinterp-call_async-*``), so the loop keeps running.

        Cancelling the awaiter does not stop the call already running in the
        interpreter: its result (or exception) is discarded.
        """
        self._check_runnable("call in")
        from . import _asyncio

        return await _asyncio.interp_call(self, callable, args, kwargs)

    async def exec_async(self, code: str | Callable[[], object], /) -> None:
        """Awaitable :meth:`exec`, run as :meth:`call_async` runs."""
        self._check_runnable("exec in")
        from . import _asyncio

        await _asyncio.interp_exec(self, code)

    def call_in_thread[**P](
        self, callable: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
    ) -> threading.Thread:
        """Like :meth:`call`, in a new (started) thread, which is returned.
        The result is discarded; an exception goes to ``threading.excepthook``."""
        t = threading.Thread(target=self.call, args=(callable, *args), kwargs=kwargs)
        t.start()
        return t
