"""asyncio support behind ``Queue.get_async``/``put_async``,
``Channel.recv_async``/``send_async`` and ``Interpreter.call_async``/
``exec_async`` (see docs/guide.md, "asyncio").

Queues and channels: one :class:`_Hub` per running event loop owns a native ``LoopWaker``
(a socket pair; the loop watches its read end with ``add_reader``). The first
awaiter of a queue side (getters or putters) in a loop registers the waker
with the queue (``Queue._watch``): from then on every put (for getters) or get
(for putters) writes one coalesced byte to it, from whatever thread or
interpreter made the change. No thread is parked per awaiter and nothing
polls.

The claim is the awaiter's: on a wake-up the hub only resolves the futures of
as many waiting awaiters (oldest first) as there are items (or free slots);
each resumed awaiter then takes its item itself with ``get_nowait`` (or puts
with ``put_nowait``) in the same step, so a cancelled awaiter never took
anything and no item is lost or delivered twice. An awaiter that was woken
but cancelled before it ran passes its wake-up on (the hub re-scans); one that
finds the item gone (another consumer was faster) waits again at the front.
A channel's ``send_async`` makes a pending offer in the engine (no thread
holds it) and is woken when offers are taken; its cancellation withdraws the
offer, which the engine decides against a receive in one critical section.

Interpreter calls run in a small thread pool per loop (an interpreter runs
code in a thread; the loop's thread must not block).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import os
import weakref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .channels import Channel
    from .interpreters import Interpreter
    from .queues import Queue

from . import _native
from ._errors import ChannelEmptyError, QueueEmpty, QueueFull

GET = 0
PUT = 1

#: Idle queue sides a loop keeps watching before it sweeps them.
IDLE_SIDES = 64

#: Threads per event loop for ``call_async``/``exec_async``.
CALL_WORKERS = max(2, min(8, os.cpu_count() or 2))


class _Side:
    """The awaiters of one side of one queue or channel, in one loop.
    ``ready(obj, waiting)``: how many of them a wake-up resolves."""

    __slots__ = ("idle", "queue", "ready", "side", "token", "waiters")

    def __init__(
        self, queue: Any, side: int, waker: _native.LoopWaker, ready: Callable[[Any, int], int]
    ) -> None:
        self.queue = queue
        self.side = side
        self.ready = ready
        self.waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.token = queue._watch(waker, side)
        #: No awaiter since the last wake-up (see _Hub._release).
        self.idle = False


class _Hub:
    """One event loop's wake-up fd, the queue sides it watches, its pool."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waker = _native.LoopWaker()
        self.sides: dict[tuple[int, int], _Side] = {}
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.fd = self.waker.fileno()
        loop.add_reader(self.fd, self._on_wake)

    def side(self, queue: Any, side: int, ready: Callable[[Any, int], int]) -> _Side:
        # Queue and channel ids are one id space: (id, side) names a side.
        key = (queue.id, side)
        s = self.sides.get(key)
        if s is None:
            s = self.sides[key] = _Side(queue, side, self.waker, ready)
        return s

    def _release(self, s: _Side) -> None:
        """A side's awaiter left. With none left the side goes idle but stays
        watched: the next wake-up that finds it still idle (``_serve``), a
        sweep or the loop's end un-registers it. A round trip (await, get,
        await again) so re-uses the registration instead of paying a
        ``_watch``/``_unwatch`` pair each time; a put meanwhile costs one
        coalesced byte."""
        if s.waiters:
            return
        s.idle = True
        if len(self.sides) > IDLE_SIDES:
            self.sweep()

    def _unwatch(self, s: _Side) -> None:
        key = (s.queue.id, s.side)
        if self.sides.get(key) is s:
            del self.sides[key]
            s.queue._unwatch(s.side, s.token)

    def sweep(self) -> None:
        """Stop watching every idle side (many sides, or the loop is gone)."""
        for s in list(self.sides.values()):
            if s.idle and not s.waiters:
                self._unwatch(s)

    def discard(self, s: _Side, fut: asyncio.Future[bool]) -> None:
        try:
            s.waiters.remove(fut)
        except ValueError:
            pass
        self._release(s)

    def kick(self) -> None:
        """Re-scan at the next loop iteration (a woken awaiter gave up)."""
        self.waker._notify()

    def _on_wake(self) -> None:
        self.waker._drain()
        for s in list(self.sides.values()):
            self._serve(s)

    def _serve(self, s: _Side) -> None:
        q = s.queue
        if not s.waiters:
            if s.idle:
                self._unwatch(s)
            return
        n = s.ready(q, len(s.waiters))
        waiters = s.waiters
        while n > 0 and waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                n -= 1

    def call_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(
                CALL_WORKERS, thread_name_prefix="crossinterp-call_async"
            )
        return self.pool


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _shutdown(hub: _Hub) -> None:
    for s in list(hub.sides.values()):
        s.waiters.clear()
        s.idle = True
    hub.sweep()
    if hub.pool is not None:
        hub.pool.shutdown(wait=False)


def _hub(loop: asyncio.AbstractEventLoop) -> _Hub:
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub(loop)
        weakref.finalize(loop, _shutdown, hub)
    return hub


def _timeout_of(timeout: float | None) -> float | None:
    """As the blocking calls check theirs (same exceptions, same messages)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool):
        raise TypeError("timeout must be a number or None, not bool")
    t = float(timeout) if isinstance(timeout, int) else timeout
    if not isinstance(t, float):
        raise TypeError(f"must be real number, not {type(timeout).__name__}")
    if not t >= 0:
        raise ValueError("timeout must be a non-negative number or None")
    return t


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def _get_ready(q: Queue, waiting: int) -> int:
    return q.qsize()


def _put_ready(q: Queue, waiting: int) -> int:
    return q.maxsize - q.qsize() if q.maxsize > 0 else waiting


def _recv_ready(ch: Channel, waiting: int) -> int:
    pending = ch.pending
    if ch.recv_closed or (ch.send_closed and pending == 0):
        return waiting  # every receive ends (ChannelClosedError)
    return pending


def _send_ready(ch: Channel, waiting: int) -> int:
    return waiting  # each sender looks at its own offer


async def _wait(
    queue: Any,
    side: int,
    ready: Callable[[Any, int], int],
    attempt: Callable[[], Any],
    full: type[Exception],
    timeout: float | None,
    expired: Callable[[], BaseException] | None = None,
) -> Any:
    """Run ``attempt`` (a non-blocking get, put or receive raising ``full``
    when it cannot proceed) until it succeeds, awaiting the wake-ups of
    ``queue``'s ``side``. At the deadline: ``full`` from a last attempt, or
    ``expired()`` if given."""
    timeout = _timeout_of(timeout)
    try:
        return attempt()
    except full:
        pass
    loop = asyncio.get_running_loop()
    hub = _hub(loop)
    deadline = None if timeout is None else loop.time() + timeout
    front = False
    while True:
        s = hub.side(queue, side, ready)
        # Registered (above), then re-try: no wake-up can be missed.
        try:
            result = attempt()
        except full:
            pass
        else:
            hub._release(s)
            return result
        fut: asyncio.Future[bool] = loop.create_future()
        s.idle = False
        if front:
            s.waiters.appendleft(fut)
        else:
            s.waiters.append(fut)
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, _expire, fut)
        try:
            woken = await fut
        except BaseException:
            # Cancelled. Woken already: hand the wake-up on, nothing was taken.
            if fut.done() and not fut.cancelled():
                hub.kick()
            hub.discard(s, fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not woken:
            # The deadline: a last try (an item that is there is taken
            # before the deadline is looked at, as in the blocking calls).
            hub.discard(s, fut)
            if expired is None:
                return attempt()
            try:
                return attempt()
            except full:
                raise expired() from None
        front = True


async def queue_get(queue: Queue, timeout: float | None) -> object:
    return await _wait(queue, GET, _get_ready, queue.get_nowait, QueueEmpty, timeout)


async def queue_put(
    queue: Queue, obj: object, timeout: float | None, unbounditems: object, strict: bool
) -> None:
    attempt = functools.partial(queue.put_nowait, obj, unbounditems=unbounditems, strict=strict)
    await _wait(queue, PUT, _put_ready, attempt, QueueFull, timeout)


async def channel_recv(ch: Channel, timeout: float | None) -> object:
    return await _wait(
        ch,
        GET,
        _recv_ready,
        ch.recv_nowait,
        ChannelEmptyError,
        timeout,
        lambda: TimeoutError("recv timed out"),
    )


async def channel_send(ch: Channel, obj: object, timeout: float | None, strict: bool) -> None:
    """Offer ``obj`` (no thread blocks), then await its fate. Cancelled or
    timed out: the offer is withdrawn in one critical section, so it is
    either received (the send completed: it returns normally even if it was
    being cancelled at that moment) or never received (``CancelledError`` /
    ``TimeoutError``)."""
    timeout = _timeout_of(timeout)
    ticket = ch._offer(obj, strict)
    if ticket < 0:
        return  # a blocked receive took it
    loop = asyncio.get_running_loop()
    hub = _hub(loop)
    deadline = None if timeout is None else loop.time() + timeout
    try:
        while True:
            s = hub.side(ch, PUT, _send_ready)
            if ch._offer_done(ticket):
                hub._release(s)
                return
            fut: asyncio.Future[bool] = loop.create_future()
            s.idle = False
            s.waiters.append(fut)
            timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
            try:
                woken = await fut
            finally:
                if timer is not None:
                    timer.cancel()
                hub.discard(s, fut)
            if not woken:
                if ch._withdraw(ticket):
                    raise TimeoutError("send timed out")
                ch._offer_done(ticket)  # received just now, or ChannelClosedError
                return
            ticket_done = ch._offer_done(ticket)
            if ticket_done:
                return
    except asyncio.CancelledError:
        if ch._withdraw(ticket):
            raise  # never received
        ch._offer_done(ticket)  # force-closed: ChannelClosedError
        return  # received before the cancellation could take it back
    except BaseException:
        ch._withdraw(ticket)
        raise


async def interp_call[R](
    interp: Interpreter, callable: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    loop = asyncio.get_running_loop()
    pool = _hub(loop).call_pool()
    return await loop.run_in_executor(pool, functools.partial(interp.call, callable, *args, **kwargs))


async def interp_exec(interp: Interpreter, code: str | Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    pool = _hub(loop).call_pool()
    await loop.run_in_executor(pool, interp.exec, code)
