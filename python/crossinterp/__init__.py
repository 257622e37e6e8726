"""crossinterp: every CPU core from Python.

CPython subinterpreters with their own GIL (PEP 684) and free-threaded
CPython (PEP 703), with safe sharing between them. See ``crossinterp.interpreters``
for the drop-in replacement of ``concurrent.interpreters`` (PEP 734).
"""

import sys as _sys

from . import _native

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
from ._errors import (
    ExecutionFailed,
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

AtomicFlag = AtomicBool
"""Alias of :class:`AtomicBool` (the name cereggii and ft_utils users know)."""

__version__ = "0.1.0"

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "AtomicBool",
    "AtomicDict",
    "AtomicFlag",
    "AtomicInt",
    "AtomicRef",
    "Channel",
    "ExecutionFailed",
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
    "futures",
    "interpreters",
    "live_owners",
    "proxy_owner",
    "queues",
    "set_finalize_warn_after",
    "share",
]


def share(obj: object) -> object:
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
    """
    return _native.share(obj)


def proxy_owner(obj: object) -> int | None:
    """The id of the interpreter that owns the object ``obj`` is a proxy of,
    or ``None`` if ``obj`` is not a proxy."""
    info = _native.proxy_info(obj)
    return None if info is None else info[0]


def live_owners() -> int:
    """Number of interpreters currently registered as owners (imported
    crossinterp and not yet finalized)."""
    return _native.live_owners()


def set_finalize_warn_after(seconds: float) -> float:
    """Set how long an interpreter's exit waits on open guards before it prints
    a warning to stderr (and again every such interval; it never stops waiting).
    Returns the previous value. Default: 10 seconds."""
    if isinstance(seconds, bool):
        raise TypeError("seconds must be a number, not bool")
    return _native.set_finalize_warn_after(seconds)


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
    if name == "InterpreterPoolExecutor":
        return importlib.import_module(".futures", __name__).InterpreterPoolExecutor
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

