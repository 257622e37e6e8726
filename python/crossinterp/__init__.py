"""crossinterp: every CPU core from Python.

CPython subinterpreters with their own GIL (PEP 684) and free-threaded
CPython (PEP 703), with safe sharing between them. See ``crossinterp.interpreters``
for the drop-in replacement of ``concurrent.interpreters`` (PEP 734).
"""

import sys as _sys

from . import _native

TYPE_CHECKING = False
if TYPE_CHECKING:  # what __getattr__ below imports on first use, for type checkers
    from . import channels, futures, interpreters, queues
    from .channels import Channel
    from .futures import BrokenInterpreterPool, InterpreterPoolExecutor
    from .queues import UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE, Queue
from ._errors import (
    CycleWarning,
    ExecutionFailed,
    FinalizationWarning,
    InterpreterError,
    InterpreterFinalizingError,
    InterpreterGoneError,
    InterpreterNotFoundError,
    NotShareableError,
)
from ._native import (
    AtomicBool,
    AtomicDict,
    AtomicInt,
    AtomicRef,
    InterpreterGuard,
    InterpreterView,
    SharedBuffer,
    SharedMethodProxy,
    SharedObjectProxy,
)

# CPython 3.13 (issue 11, docs/guide.md "CPython 3.13 bugs worked around"):
# its sys._current_frames() and sys._current_exceptions() walk the threads of
# every interpreter, making frame objects for (and taking references into)
# own-GIL subinterpreters without their GIL, which corrupts their memory
# (profilers such as distributed's call them every few milliseconds). Here
# they map this interpreter's threads only, as on 3.14.
if _sys.version_info[:2] == (3, 13) and _sys._is_gil_enabled() and _native._own_threads_supported():
    _sys._current_frames = _native._current_frames
    _sys._current_exceptions = _native._current_exceptions
del _sys

AtomicFlag = AtomicBool
"""Alias of :class:`AtomicBool` (the name cereggii and ft_utils users know)."""

__version__: str = _native.__version__
"""The version (one source: the workspace version in Cargo.toml)."""

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "AtomicBool",
    "AtomicDict",
    "AtomicFlag",
    "AtomicInt",
    "AtomicRef",
    "BrokenInterpreterPool",
    "Channel",
    "CycleWarning",
    "ExecutionFailed",
    "FinalizationWarning",
    "InterpreterError",
    "InterpreterFinalizingError",
    "InterpreterGoneError",
    "InterpreterGuard",
    "InterpreterNotFoundError",
    "InterpreterPoolExecutor",
    "InterpreterView",
    "NotShareableError",
    "Queue",
    "SharedBuffer",
    "SharedMethodProxy",
    "SharedObjectProxy",
    "channels",
    "collect_cycles",
    "futures",
    "interpreters",
    "live_owners",
    "proxy_owner",
    "queues",
    "set_auto_collect_cycles",
    "set_finalize_warn_after",
    "share",
]


def share[T](obj: T) -> T:
    """Share ``obj`` with other interpreters.

    Returns ``obj`` itself when it crosses natively (``None``, ``bool``,
    ``int``, ``float``, ``str``, ``bytes``, tuples of these, queues, channels,
    shared buffers, atomics, memoryviews, and proxies), else a
    :class:`SharedObjectProxy` of it. Pass the proxy to another interpreter
    (``prepare_main``, ``call`` arguments, queues, channels): every operation on
    it there runs here, in the interpreter that owns ``obj``, with this
    interpreter attached. When the last proxy goes, ``obj`` is released here
    (its ``__del__`` runs here). If this interpreter is closed, its proxies
    elsewhere raise :class:`InterpreterGoneError`.

    Typed as returning ``obj``'s own type: a proxy of a ``dict[str, int]``
    supports the operations of one (``isinstance`` still sees a
    :class:`SharedObjectProxy`).
    """
    return _native.share(obj)


def proxy_owner(obj: object) -> int | None:
    """The id of the interpreter that owns the object ``obj`` is a proxy of,
    or ``None`` if ``obj`` is not a proxy."""
    info = _native.proxy_info(obj)
    return None if info is None else info[0]


def collect_cycles() -> int:
    """Collect cycles that run through proxies across interpreters.

    An object of interpreter A holding a proxy of an object of B, which holds a
    proxy of the first (or any longer such loop), is kept by the proxies' lend
    entries, which neither interpreter's garbage collector can see. This pass
    finds the lent objects that nothing outside such cycles reaches and
    releases them in their owners; each interpreter's own ``gc`` then collects
    the rest there (``__del__`` methods run in their own interpreters). Returns
    how many lent references were released. It runs by itself after garbage
    collections (only when more objects are lent than after the previous pass,
    at most once a second or once per 50 times the last pass's duration). Anything it cannot prove unreachable is
    kept. On free-threaded builds it collects nothing and returns 0 (see the
    guide), and warns (``RuntimeWarning``); there it checks instead whether two
    interpreters keep a growing number of proxies of each other's objects and
    warns about such a pair once (:class:`CycleWarning`)."""
    if not _native.cycles_supported():
        import warnings

        warnings.warn(
            "collect_cycles() collects nothing on free-threaded builds: another thread "
            "could mutate objects while it traverses them (no public way to stop an "
            "interpreter's threads); proxy cycles across interpreters live until one "
            "of the interpreters closes",
            RuntimeWarning,
            stacklevel=2,
        )
        # The detection (free-threaded builds): collects nothing, returns 0.
        return _native.collect_cycles()
    return _native.collect_cycles()


def set_auto_collect_cycles(enabled: bool) -> bool:
    """Turn the automatic :func:`collect_cycles` pass (after garbage
    collections) on or off, in every interpreter of the process. Returns the
    previous setting (default: on)."""
    return _native.set_auto_collect_cycles(enabled)


def live_owners() -> int:
    """Number of interpreters currently registered as owners (imported
    crossinterp and not yet finalized)."""
    return _native.live_owners()


def set_finalize_warn_after(seconds: float) -> float:
    """Set how long an interpreter's exit waits on open guards before it issues
    a :class:`FinalizationWarning` (and again every such interval; it never
    stops waiting).
    Returns the previous value. Default: 10 seconds."""
    if isinstance(seconds, bool):
        raise TypeError("seconds must be a number, not bool")
    return _native.set_finalize_warn_after(seconds)


if not TYPE_CHECKING:  # checkers see the names above, and reject any other

    def __getattr__(name: str) -> object:
        # `crossinterp.interpreters` is imported on first use: every interpreter
        # that imports crossinterp (each one `create()` makes does as soon as a
        # value is pickled to it or an error is raised there) pays only for what
        # it uses.
        import importlib

        if name in ("interpreters", "queues", "channels", "futures"):
            return importlib.import_module(f".{name}", __name__)
        if name in ("Queue", "UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE"):
            return getattr(importlib.import_module(".queues", __name__), name)
        if name in ("InterpreterPoolExecutor", "BrokenInterpreterPool"):
            return getattr(importlib.import_module(".futures", __name__), name)
        if name == "Channel":
            return importlib.import_module(".channels", __name__).Channel
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _warn_on_fork() -> None:
    # CPython's own after-fork code tears down the child's copies of every
    # subinterpreter without a thread state and crashes the child (3.13:
    # "Fatal Python error: PyThreadState_Get"; 3.14+: a segfault; CPython
    # gh-139759), whoever created them. Nothing we run in the child can come
    # before it, so we can only warn in the parent.
    try:
        import _interpreters

        n = len(_interpreters.list_all()) - 1
    except Exception:  # noqa: BLE001 - a warning must never break fork()
        return
    if n > 0:
        import warnings

        warnings.warn(
            f"os.fork() while {n} subinterpreter(s) are alive: CPython's after-fork "
            "code crashes the child (CPython gh-139759); close them before forking, "
            "or use the 'spawn' or 'forkserver' start method",
            RuntimeWarning,
            stacklevel=2,
        )


def _register_fork_hook() -> None:
    import os

    if hasattr(os, "register_at_fork"):
        import _interpreters

        if _interpreters.get_current()[0] != 0:
            return  # only the main interpreter can fork
        os.register_at_fork(before=_warn_on_fork)


_register_fork_hook()


def _register_gc_hook() -> None:
    import gc

    # On free-threaded builds the callback runs the cycle detection only.
    if _native.gc_callback not in gc.callbacks:
        import atexit

        gc.callbacks.append(_native.gc_callback)
        # Off again at exit: left in gc.callbacks, the callback (and through
        # it this package's native module) would outlive the interpreter's
        # module teardown, and CPython then keeps that interpreter's whole
        # allocator state after it is gone (about 3 MiB per closed
        # interpreter on 3.14).
        atexit.register(_unregister_gc_hook)


def _unregister_gc_hook() -> None:
    import gc

    while _native.gc_callback in gc.callbacks:
        gc.callbacks.remove(_native.gc_callback)


_register_gc_hook()

