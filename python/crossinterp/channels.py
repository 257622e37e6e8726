"""Rendezvous channels between interpreters (PEP 554 style).

``Channel.send`` returns once a ``recv`` — in any thread of any interpreter —
has taken the item; ``send_nowait`` hands an item only to a receiver that is
waiting right now. A channel is owned by no interpreter and crosses natively
(``prepare_main``, ``call`` arguments, queues, other channels). Items cross by
the data rules of :mod:`crossinterp.interpreters`.

Closing follows PEP 554: ``close(send=True)`` closes the send end (pending
sends stay receivable); ``close(recv=True)`` or ``close()`` closes the channel,
refused with :class:`ChannelNotEmptyError` while sends are pending unless
``force=True``, which hands each pending item back to its sender (whose
``send`` raises :class:`ChannelClosedError`). Iterating a channel receives until
it is closed.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing at run time (PEP 781's idiom)
    from typing import Any, Self, TypeVar, overload

    _T = TypeVar("_T", default=Any)
else:

    def overload(f: object) -> object:  # the last definition is the one that runs
        return f

    # `Channel[bytes]` at run time is the native base's `__class_getitem__`
    # (a `types.GenericAlias`); this stands for the type variable there.
    _T = "_T"

from collections.abc import Iterator

from . import _native
from ._errors import (
    ChannelClosedError,
    ChannelEmptyError,
    ChannelError,
    ChannelNotEmptyError,
    ChannelNotFoundError,
)

__all__ = [
    "Channel",
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelError",
    "ChannelNotEmptyError",
    "ChannelNotFoundError",
    "create",
]

_NOT_SET = object()


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, got {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
    return float(timeout)


class Channel(_native.ChannelBase[_T]):
    """A rendezvous channel: ``Channel()`` makes a new one.

    Generic for type checkers: ``Channel[bytes]`` (a ``types.GenericAlias``
    at run time) types the items sent and received."""

    __slots__ = ()

    def __new__(cls) -> Self:
        return super().__new__(cls, -1)

    def __repr__(self) -> str:
        # pending: the size (sends waiting); the closed ends only when closed
        closed = ", send_closed=True" if self.send_closed else ""
        closed += ", recv_closed=True" if self.recv_closed else ""
        return f"{type(self).__name__}(id={self.id}, pending={self.pending}{closed})"

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (_from_id, (self.id,))

    @property
    def closed(self) -> bool:
        """Whether the channel is fully closed."""
        return self.send_closed and self.recv_closed

    def send(self, obj: _T, timeout: float | None = None, *, strict: bool = False) -> None:
        """Send ``obj`` and wait until a receiver has taken it.

        ``TimeoutError`` if none did within ``timeout`` seconds (the item is
        withdrawn, never received later); :class:`ChannelClosedError` if the
        channel is closed, or was force-closed while waiting. With
        ``strict=True`` an object that does not cross natively raises
        ``NotShareableError`` instead of being pickled.
        """
        self._send(obj, True, _check_timeout(timeout), strict)

    def send_nowait(self, obj: _T, *, strict: bool = False) -> bool:
        """Hand ``obj`` to a receiver blocked in ``recv`` right now: True if
        one took it, False (nothing sent) if none was waiting."""
        return self._send(obj, False, None, strict)

    def recv(self, timeout: float | None = None) -> _T:
        """Receive the next item, waiting up to ``timeout`` seconds
        (``TimeoutError``); :class:`ChannelClosedError` once closed and empty."""
        _, obj = self._recv(True, _check_timeout(timeout))
        return obj

    @overload
    def recv_nowait(self) -> _T: ...
    @overload
    def recv_nowait[D](self, default: D) -> _T | D: ...  # noqa: F811
    def recv_nowait(self, default: object = _NOT_SET) -> object:  # noqa: F811
        """Receive a pending item if there is one, else return ``default``
        (or raise :class:`ChannelEmptyError` if none was given)."""
        found, obj = self._recv(False, None)
        if found:
            return obj
        if default is _NOT_SET:
            raise ChannelEmptyError("no item pending on the channel")
        return default

    async def send_async(
        self, obj: object, timeout: float | None = None, *, strict: bool = False
    ) -> None:
        """Awaitable :meth:`send`: offer ``obj`` and wait, without blocking
        the event loop or a thread, until a receiver has taken it.

        ``TimeoutError`` after ``timeout`` seconds and ``CancelledError`` on
        cancellation both withdraw the offer: it was never received. (If a
        receiver took it at the moment of the cancellation, the send has
        completed and returns normally.)
        """
        from . import _asyncio

        await _asyncio.channel_send(self, obj, timeout, strict)

    async def recv_async(self, timeout: float | None = None) -> object:
        """Awaitable :meth:`recv`: woken by the sends themselves (no polling,
        no thread per awaiter). A cancelled ``recv_async`` received nothing."""
        from . import _asyncio

        return await _asyncio.channel_recv(self, timeout)

    def close(self, *, send: bool = False, recv: bool = False, force: bool = False) -> int:
        """Close an end (``send=True`` or ``recv=True``) or, with neither,
        the whole channel. Returns how many pending items ``force`` handed back.
        ``force`` applies to closing the receive end (``ValueError`` with
        ``send=True`` alone: closing the send end never strands an item)."""
        if force and send and not recv:
            raise ValueError("force=True applies to closing the receive end, not send=True alone")
        return self._close(send, recv, force)

    def __iter__(self) -> Iterator[_T]:
        while True:
            try:
                yield self.recv()
            except ChannelClosedError:
                return


def _from_id(cid: int) -> Channel[Any]:
    return _native.ChannelBase.__new__(Channel, cid)


def create() -> Channel[Any]:
    """Make a new channel."""
    return Channel()
