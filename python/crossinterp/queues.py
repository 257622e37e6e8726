"""Cross-interpreter queues: PEP 734's ``Queue`` (as ``concurrent.interpreters``
has it in 3.14), on every supported Python.

A queue is owned by no interpreter: pass it to another interpreter (with
``prepare_main``, ``call`` arguments, or inside another queue) and both hold the
same queue. It lives while any interpreter holds it.

Items cross by the data rules of :mod:`crossinterp.interpreters` (copied for
``None``/``bool``/``int``/``float``/``str``/``bytes``/tuples of these, shared for
queues, pickled otherwise). Each item is bound to the interpreter that put it;
if that interpreter is destroyed before the item is got, the item's
``unbounditems`` policy applies:

- ``UNBOUND`` — ``get`` returns the ``UNBOUND`` sentinel in its place;
- ``UNBOUND_ERROR`` — ``get`` raises :class:`ItemInterpreterDestroyed`;
- ``UNBOUND_REMOVE`` — the item is removed from the queue.

Unlike the stdlib, blocked ``put``/``get`` release the GIL and are woken by the
event itself (no sleep-polling); timeouts are floats on a monotonic clock;
negative timeouts raise ``ValueError``.
"""

from __future__ import annotations

import threading
import time  # noqa: F401  (the native put/get read `queues.time.monotonic` for timeouts)
import weakref

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing at run time (PEP 781's idiom)
    from typing import Any, Self, TypeVar

    _T = TypeVar("_T", default=Any)
else:
    # `Queue[int]` at run time is the native base's `__class_getitem__`
    # (a `types.GenericAlias`); this stands for the type variable there.
    _T = "_T"

from . import _errors, _native
from ._errors import (
    ItemInterpreterDestroyed,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
)

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "ItemInterpreterDestroyed",
    "Queue",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "create",
    "list_all",
]

#: The largest ``maxsize`` accepted (items are counted in a machine word).
MAXSIZE_LIMIT = 2**48
#: The largest queue id (ids are signed 64-bit, as in the stdlib).
_ID_LIMIT = 2**63 - 1

class _Interned:
    """This interpreter's one ``Queue`` object per live queue id (as the stdlib
    has): ``Queue(q.id) is q``, and a queue that crosses back is the same
    object. Weakly held: ``refs`` maps an id to a weak reference (with no
    callback: a queue object's death runs no Python code), which the native
    side reads and fills directly (a queue that arrives here costs a dict
    lookup and a weakref read, or a new object and a dict insertion, and no
    Python call). Dead entries are swept once the table has doubled since
    the last sweep (``sweep``; the native side calls it as it inserts).

    One rule keeps one object per id on free-threaded builds, where the
    native side takes no lock: a missing id is filled only by an atomic
    insert-if-absent (``dict.setdefault``, ``PyDict_SetDefaultRef``); an
    entry that is there (alive or dead) is replaced or removed only under
    ``lock``. The native side, finding a dead entry, replaces it under
    ``lock`` too (``_known_acquire``/``_known_release``)."""

    __slots__ = ("lock", "refs", "swept")

    def __init__(self) -> None:
        self.refs: dict[int, weakref.ref[Queue[Any]]] = {}
        self.lock = threading.Lock()
        self.swept = 64  # sweep when the table holds twice this many entries

    def get(self, qid: int) -> Queue[Any] | None:
        r = self.refs.get(qid)
        return None if r is None else r()

    def setdefault(self, qid: int, q: Queue[Any]) -> Queue[Any]:
        new = weakref.ref(q)
        with self.lock:
            r = self.refs.setdefault(qid, new)
            if r is not new:
                old = r()
                if old is not None:
                    return old
                self.refs[qid] = new  # a dead entry
        self.sweep()
        return q

    def sweep(self) -> None:
        """Drop dead entries if the table has doubled since the last sweep."""
        if len(self.refs) < 2 * self.swept:
            return
        with self.lock:
            for qid, r in list(self.refs.items()):
                if r() is None and self.refs.get(qid) is r:
                    del self.refs[qid]
            self.swept = max(64, len(self.refs))


_known = _Interned()
#: Read and filled by the native side: id -> weak reference.
_known_refs = _known.refs
#: Called by the native side after it inserts.
_known_sweep = _known.sweep
#: The table's lock, for the native side's replacement of a dead entry.
_known_acquire = _known.lock.acquire
_known_release = _known.lock.release
_NEW = object()  # "argument not given"


class _UnboundPolicy:
    __slots__ = ("_code", "_name")

    def __init__(self, name: str, code: int) -> None:
        self._name = name
        self._code = code

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


UNBOUND = _UnboundPolicy("UNBOUND", 1)
UNBOUND_ERROR = _UnboundPolicy("UNBOUND_ERROR", 2)
UNBOUND_REMOVE = _UnboundPolicy("UNBOUND_REMOVE", 3)
_POLICIES = {1: UNBOUND, 2: UNBOUND_ERROR, 3: UNBOUND_REMOVE}


def _policy_code(unbounditems: object) -> int:
    if isinstance(unbounditems, _UnboundPolicy):
        return unbounditems._code
    raise TypeError(
        f"unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, got {unbounditems!r}"
    )


class Queue(_native.QueueBase[_T]):
    """A multi-producer, multi-consumer FIFO queue shared between interpreters.

    ``Queue(id)`` is the queue with that id (``QueueNotFoundError`` if there is
    no live one), as in the stdlib: the same object each time in one
    interpreter. Make a new queue with :func:`create` (or, as before,
    ``Queue()`` / ``Queue(maxsize=..., unbounditems=...)`` with keywords only).
    Any thread of any interpreter may use it.

    Generic for type checkers: ``Queue[int]`` (a ``types.GenericAlias`` at
    run time) types ``put``'s item and ``get``'s result.
    """

    __slots__ = ("__weakref__",)

    def __new__(
        cls,
        id: object = _NEW,
        /,
        *,
        maxsize: object = _NEW,
        unbounditems: object = _NEW,
    ) -> Self:
        if id is _NEW:
            return _create(  # type: ignore[return-value]
                cls,
                0 if maxsize is _NEW else maxsize,
                UNBOUND if unbounditems is _NEW else unbounditems,
            )
        if maxsize is not _NEW or unbounditems is not _NEW:
            raise TypeError(
                "Queue(id) attaches to an existing queue; make a new one with "
                "create(maxsize, unbounditems=...)"
            )
        if not isinstance(id, int):
            raise TypeError(f"id must be an int, got {id!r}")
        qid = int(id)
        if qid < 0:
            raise ValueError(f"queue id must be a non-negative int, got {qid}")
        if qid > _ID_LIMIT:
            raise OverflowError(f"max queue id is {_ID_LIMIT}, got {qid}")
        q = _known.get(qid)
        if q is None:
            q = _known.setdefault(qid, super().__new__(cls, qid))
        return q  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, maxsize={self.maxsize}, qsize={self.qsize()})"

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (type(self), (self.id,))

    @property
    def unbounditems(self) -> object:
        """The default policy for items whose interpreter is destroyed."""
        return _POLICIES[self._unbound_default]

    async def get_async(self, timeout: float | None = None) -> object:
        """Awaitable :meth:`get`: the next item, waiting up to ``timeout``
        seconds (:class:`QueueEmpty`) without blocking the event loop.

        Woken by the puts themselves (no polling, no thread per awaiter).
        Cancellation takes nothing: an awaiter that raises ``CancelledError``
        left every item in the queue.
        """
        from . import _asyncio

        return await _asyncio.queue_get(self, timeout)

    async def put_async(
        self,
        obj: object,
        timeout: float | None = None,
        *,
        unbounditems: object = None,
        strict: bool = False,
    ) -> None:
        """Awaitable :meth:`put`: add ``obj``, waiting up to ``timeout``
        seconds for room in a bounded queue (:class:`QueueFull`) without
        blocking the event loop. A cancelled ``put_async`` put nothing."""
        from . import _asyncio

        await _asyncio.queue_put(self, obj, timeout, unbounditems, strict)

    # put(), get(), put_nowait(), get_nowait(), qsize(), empty() and full()
    # are the native base's (no Python frame on the hot path; a timeout's
    # deadline is taken on this module's `time.monotonic`): see _native.pyi.


def _create(cls: type[Queue[Any]], maxsize: object, unbounditems: object) -> Queue[Any]:
    try:
        size = maxsize.__index__()  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(
            f"maxsize must be an int, got {type(maxsize).__name__}"
        ) from None
    if size > MAXSIZE_LIMIT:
        raise OverflowError(f"maxsize must be <= {MAXSIZE_LIMIT}, got {size}")
    if size < -_ID_LIMIT:
        raise OverflowError(f"maxsize must be >= {-_ID_LIMIT}, got {size}")
    code = _policy_code(unbounditems)
    q = _native.QueueBase.__new__(cls, size, code)
    return _known.setdefault(q.id, q)


def _from_id(qid: int) -> Queue[Any]:
    """``Queue(qid)`` (what pickles made before 0.x named)."""
    return Queue(qid)


def create(maxsize: int = 0, *, unbounditems: object = UNBOUND) -> Queue[Any]:
    """Make a new queue (``maxsize`` 0 or negative: unbounded)."""
    return _create(Queue, maxsize, unbounditems)


def list_all() -> list[Queue[Any]]:
    """Every live queue (held by some interpreter), oldest first."""
    return Queue._live()


# --- CPython's low-level queues (3.14+, where this module is the stdlib's) --
#
# CPython's `_interpqueues` imports `concurrent.interpreters._queues` to learn
# its exception types (`QueueEmpty`, `QueueFull`) and the class that stands for
# one of its queues crossing between interpreters; the stdlib's module
# registers them at import. Where `concurrent.interpreters` is routed to
# crossinterp that import lands here, so register ours the same way (else its
# `get` on an empty queue has no type to raise). Where the stdlib's module is
# the real one it has registered its own already.


class _LowLevelQueue:
    """A reference to one of CPython's ``_interpqueues`` queues (its id space,
    not crossinterp's): what such a queue is in the receiver when it crosses
    through ``_interpqueues``. It holds a reference to the queue while alive."""

    __slots__ = ("__weakref__", "_id")
    _id: int

    def __new__(cls, id: int, /) -> _LowLevelQueue:  # noqa: PYI034 - one object per id
        import _interpqueues

        if not isinstance(id, int):
            raise TypeError(f"id must be an int, got {id!r}")
        self = _low_level_known.get(int(id))
        if self is None:
            self = super().__new__(cls)
            self._id = int(id)
            _interpqueues.bind(self._id)
            _low_level_known[self._id] = self
        return self

    def __del__(self) -> None:
        import _interpqueues

        try:
            _interpqueues.release(self._id)
        except (_interpqueues.QueueError, AttributeError):
            pass  # destroyed already, or never bound (failed __new__)

    @property
    def id(self) -> int:
        return self._id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id})"

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (type(self), (self._id,))


_low_level_known: weakref.WeakValueDictionary[int, _LowLevelQueue] = weakref.WeakValueDictionary()


def _register_low_level() -> None:
    import sys

    if sys.version_info < (3, 14) or _errors._STD is not None:
        return
    try:
        import _interpqueues
    except ImportError:
        return
    # CPython-internal (not in typeshed).
    _interpqueues._register_heap_types(  # type: ignore[attr-defined,unused-ignore]
        _LowLevelQueue, QueueEmpty, QueueFull
    )


_register_low_level()
