"""The exceptions of crossinterp (importable from ``crossinterp`` and
``crossinterp.interpreters``)."""

from __future__ import annotations

import queue as _queue
import sys
from types import SimpleNamespace

__all__ = [
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelError",
    "ChannelNotEmptyError",
    "ChannelNotFoundError",
    "CycleWarning",
    "ExceptionInfo",
    "ExecutionFailed",
    "FinalizationWarning",
    "InterpreterError",
    "InterpreterFinalizingError",
    "InterpreterGoneError",
    "InterpreterNotFoundError",
    "ItemInterpreterDestroyed",
    "NotShareableError",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
]


def _stdlib() -> tuple[object, object] | None:
    """``concurrent.interpreters`` and its ``_queues`` on 3.14+ (None before,
    or where the build lacks them)."""
    if sys.version_info < (3, 14):
        return None
    try:
        # (3.14+ only: typeshed has no 3.13 module to find)
        import concurrent.interpreters as std  # type: ignore[import-not-found,unused-ignore]
        from concurrent.interpreters import _queues as stdq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return std, stdq


_STD = _stdlib()

TYPE_CHECKING = False
if TYPE_CHECKING:
    # What the run-time branches below bind, whichever one runs (the stdlib's
    # classes on 3.14+, crossinterp's own on 3.13): the same names and bases.
    class InterpreterError(Exception): ...

    class InterpreterNotFoundError(InterpreterError): ...

    class NotShareableError(TypeError): ...

    class ExecutionFailed(InterpreterError):
        excinfo: ExceptionInfo

        def __init__(self, excinfo: ExceptionInfo) -> None: ...

    class QueueError(RuntimeError): ...

    class QueueNotFoundError(QueueError): ...

    class QueueEmpty(QueueError, _queue.Empty): ...

    class QueueFull(QueueError, _queue.Full): ...

    _ItemDestroyedBase = QueueError
    _STD_NAMES: bool
elif _STD is not None:
    # 3.14+: the stdlib's own classes, so that ``except
    # concurrent.interpreters.X`` catches what crossinterp raises and ``except
    # crossinterp.interpreters.X`` catches what CPython's modules raise.
    _std, _stdq = _STD
    InterpreterError = _std.InterpreterError
    InterpreterNotFoundError = _std.InterpreterNotFoundError
    NotShareableError = _std.NotShareableError
    ExecutionFailed = _std.ExecutionFailed
    QueueError = _stdq.QueueError
    QueueNotFoundError = _stdq.QueueNotFoundError
    QueueEmpty = _stdq.QueueEmpty
    QueueFull = _stdq.QueueFull
    _ItemDestroyedBase: type[Exception] = _stdq.ItemInterpreterDestroyed
else:
    if sys.version_info >= (3, 14):
        # 3.14+ where ``concurrent.interpreters`` is crossinterp itself (an
        # import hook routes the stdlib's names here, as a drop-in): CPython's
        # low-level classes, as the stdlib aliases them, and the stdlib's
        # pure-Python ones defined here under the stdlib's module names (the
        # names they are importable as then), so that tracebacks read the same.
        import _interpqueues
        import _interpreters

        InterpreterError = _interpreters.InterpreterError
        InterpreterNotFoundError = _interpreters.InterpreterNotFoundError
        NotShareableError = _interpreters.NotShareableError
        QueueError = _interpqueues.QueueError
        QueueNotFoundError = _interpqueues.QueueNotFoundError
        _STD_NAMES = True
    else:
        # 3.13: crossinterp's own, with the stdlib's (3.14) bases and behaviour.
        _STD_NAMES = False

        class InterpreterError(Exception):
            """An operation on an interpreter failed (e.g. closing a running
            one, or closing the current one)."""

        class InterpreterNotFoundError(InterpreterError):
            """The interpreter does not exist (any more)."""

        class NotShareableError(TypeError):
            """An object cannot cross to another interpreter: it is not
            natively shareable and either cannot be pickled or strict sharing
            was requested."""

        class QueueError(RuntimeError):
            """An operation on a cross-interpreter queue failed."""

        class QueueNotFoundError(QueueError):
            """No live queue has that id."""

    class ExecutionFailed(InterpreterError):
        """An exception was raised, and not caught, in another interpreter.

        ``excinfo`` (an :class:`ExceptionInfo`) describes it: type, message,
        the one-line summary (``formatted``) and the traceback formatted in
        that interpreter (``errdisplay``).
        """

        excinfo: ExceptionInfo

        def __init__(self, excinfo: ExceptionInfo) -> None:
            msg = excinfo.formatted
            if not msg:
                if excinfo.type and excinfo.msg:
                    msg = f"{excinfo.type.__name__}: {excinfo.msg}"
                else:
                    msg = excinfo.type.__name__ or excinfo.msg
            super().__init__(msg)
            self.excinfo = excinfo

        def __str__(self) -> str:
            try:
                tb = self.excinfo.errdisplay
            except Exception:  # noqa: BLE001 - a bad excinfo still gets a str
                return super().__str__()
            return f"{super().__str__()}\n\nUncaught in the interpreter:\n\n{tb}"

    class QueueEmpty(QueueError, _queue.Empty):
        """``get`` found the queue empty (non-blocking, or the timeout
        passed)."""

    class QueueFull(QueueError, _queue.Full):
        """``put`` found the queue full (non-blocking, or the timeout
        passed)."""

    if _STD_NAMES:
        ExecutionFailed.__module__ = "concurrent.interpreters"
        QueueEmpty.__module__ = QueueFull.__module__ = "concurrent.interpreters._queues"

    _ItemDestroyedBase = QueueError


class InterpreterGoneError(InterpreterError):
    """The interpreter that owns what is being used (memory lent by a
    memoryview, later a proxied object) is finalizing or gone."""


class InterpreterFinalizingError(InterpreterError):
    """The interpreter has begun finalizing: no new work can enter it."""


class ExceptionInfo(SimpleNamespace):
    """A snapshot of an exception raised in another interpreter, as the
    stdlib's ``excinfo``.

    Attributes: ``type`` (with ``__name__``, ``__qualname__``, ``__module__``),
    ``msg`` (``str(exc)``), ``formatted`` (the one-line summary,
    ``"Type: msg"``) and ``errdisplay`` (the full traceback formatted in that
    interpreter). ``str()`` and ``repr()`` are the stdlib's (a
    ``namespace(...)``).
    """

    @classmethod
    def from_tuple(cls, info: tuple[str, str, str, str, str, str]) -> ExceptionInfo:
        # The native tuple is (name, qualname, module, msg, traceback,
        # summary): see crossinterp._xi.excinfo.
        name, qualname, module, msg, traceback, summary = info
        t = SimpleNamespace(__name__=name, __qualname__=qualname, __module__=module)
        return cls(type=t, msg=msg, formatted=summary, errdisplay=traceback.rstrip())

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"namespace({items})"


class ItemInterpreterDestroyed(_ItemDestroyedBase):
    """The interpreter that put this item was destroyed, and the item's
    policy is ``UNBOUND_ERROR``."""


if _STD is None and _STD_NAMES:
    ItemInterpreterDestroyed.__module__ = "concurrent.interpreters._queues"


class ChannelError(RuntimeError):
    """An operation on a cross-interpreter channel failed."""


class ChannelNotFoundError(ChannelError):
    """No live channel has that id."""


class ChannelClosedError(ChannelError):
    """The channel (or the end used) is closed."""


class ChannelEmptyError(ChannelError):
    """``recv_nowait`` found no pending send (and no default was given)."""


class ChannelNotEmptyError(ChannelError):
    """Closing would strand pending sends; pass ``force=True`` to hand them back."""


class FinalizationWarning(RuntimeWarning):
    """An interpreter's finalization is held up or cut short: it waits on open
    guards (again every ``set_finalize_warn_after`` seconds), closes guards
    left open on itself, or ends at process exit while memory it lent is in
    use. Issued through :mod:`warnings` in the interpreter whose ``close()``
    ends it (its filters apply: ``-W error::crossinterp.FinalizationWarning``
    reports it as unraisable, since the close is already under way); where no
    interpreter can take it (an interpreter ended by its own exit, by CPython,
    or at process exit) the same text goes to stderr, prefixed
    ``crossinterp: FinalizationWarning:``. The message names the
    interpreter's id."""


class CycleWarning(RuntimeWarning):
    """Free-threaded builds: two interpreters keep a growing number of
    proxies of each other's objects that are never released, which is what
    reference cycles through proxies across interpreters look like. Such
    cycles are not collected there (:func:`crossinterp.collect_cycles` cannot
    traverse objects other threads may mutate) until one of the interpreters
    closes. Issued once per pair of interpreters, through :mod:`warnings`, by
    :func:`crossinterp.collect_cycles` or after a garbage collection (at most
    once a second, unless ``set_auto_collect_cycles(False)``), in the
    interpreter running it; the message names both interpreters' ids. Found
    from crossinterp's own counts of proxies per pair of interpreters (no
    object is traversed), so it is a heuristic: a cycle made once is not
    reported, and proxies kept on purpose in ever growing numbers both ways
    are. A ``RuntimeWarning`` (not a ``ResourceWarning``, which Python's
    default filters hide): the leak lasts until an interpreter closes."""
