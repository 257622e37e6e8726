"""The exceptions of crossinterp (importable from ``crossinterp`` and
``crossinterp.interpreters``)."""

from __future__ import annotations

import queue as _queue
from types import SimpleNamespace

__all__ = [
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelError",
    "ChannelNotEmptyError",
    "ChannelNotFoundError",
    "ExceptionInfo",
    "ExecutionFailed",
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


class InterpreterError(Exception):
    """An operation on an interpreter failed (e.g. closing a running one, or
    closing the current one)."""


class InterpreterNotFoundError(InterpreterError):
    """The interpreter does not exist (any more): it was closed, or it never
    imported crossinterp."""


class InterpreterGoneError(InterpreterError):
    """The interpreter that owns what is being used (memory lent by a
    memoryview, later a proxied object) is finalizing or gone."""


class InterpreterFinalizingError(InterpreterError):
    """The interpreter has begun finalizing: no new work can enter it."""


class NotShareableError(ValueError):
    """An object cannot cross to another interpreter: it is not natively
    shareable and either cannot be pickled or strict sharing was requested."""


class ExceptionInfo(SimpleNamespace):
    """A snapshot of an exception raised in another interpreter.

    Attributes: ``type`` (with ``__name__``, ``__qualname__``, ``__module__``),
    ``msg`` (``str(exc)``), ``formatted`` (the full formatted traceback) and
    ``errdisplay`` (the last line of it).
    """

    @classmethod
    def from_tuple(cls, info: tuple[str, str, str, str, str, str]) -> ExceptionInfo:
        name, qualname, module, msg, formatted, errdisplay = info
        t = SimpleNamespace(__name__=name, __qualname__=qualname, __module__=module)
        return cls(type=t, msg=msg, formatted=formatted, errdisplay=errdisplay)

    def __str__(self) -> str:
        return f"{self.type.__name__}: {self.msg}" if self.msg else self.type.__name__


class ExecutionFailed(InterpreterError):
    """An exception was raised, and not caught, in another interpreter.

    ``excinfo`` (an :class:`ExceptionInfo`) describes it: type name, message
    and the traceback formatted in that interpreter.
    """

    excinfo: ExceptionInfo

    def __init__(self, excinfo: ExceptionInfo | tuple) -> None:
        if isinstance(excinfo, tuple):
            excinfo = ExceptionInfo.from_tuple(excinfo)
        super().__init__(str(excinfo))
        self.excinfo = excinfo

    def __str__(self) -> str:
        return (
            f"{self.excinfo}\n\nUncaught in the interpreter:\n\n"
            f"{self.excinfo.formatted.rstrip()}"
        )


class QueueError(RuntimeError):
    """An operation on a cross-interpreter queue failed."""


class QueueNotFoundError(QueueError):
    """No live queue has that id."""


class QueueEmpty(QueueError, _queue.Empty):
    """``get`` found the queue empty (non-blocking, or the timeout passed)."""


class QueueFull(QueueError, _queue.Full):
    """``put`` found the queue full (non-blocking, or the timeout passed)."""


class ItemInterpreterDestroyed(QueueError):
    """The interpreter that put this item was destroyed, and the item's
    policy is ``UNBOUND_ERROR``."""


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
