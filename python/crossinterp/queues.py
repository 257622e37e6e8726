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

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing at run time (PEP 781's idiom)
    from typing import Self

from . import _native
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
]

#: The largest ``maxsize`` accepted (items are counted in a machine word).
MAXSIZE_LIMIT = 2**48


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


class Queue(_native.QueueBase):
    """A multi-producer, multi-consumer FIFO queue shared between interpreters.

    ``Queue(maxsize=0, *, unbounditems=UNBOUND)`` makes a new queue
    (``maxsize`` 0: unbounded). Any thread of any interpreter may use it.
    """

    __slots__ = ()

    def __new__(cls, maxsize: int = 0, *, unbounditems: object = UNBOUND) -> Self:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0 (0: unbounded), got {maxsize}")
        if maxsize > MAXSIZE_LIMIT:
            raise OverflowError(f"maxsize must be <= {MAXSIZE_LIMIT}, got {maxsize}")
        return super().__new__(cls, maxsize, _policy_code(unbounditems))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, maxsize={self.maxsize})"

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (_from_id, (self.id,))

    @property
    def unbounditems(self) -> object:
        """The default policy for items whose interpreter is destroyed."""
        return _POLICIES[self._unbound_default]

    # put(obj, block=True, timeout=None, *, unbounditems=None, strict=False),
    # put_nowait(obj, *, unbounditems=None, strict=False), get(block=True,
    # timeout=None), get_nowait(), qsize(), empty() and full() are the native
    # base's (no Python frame on the hot path): see _native.pyi.


def _from_id(qid: int) -> Queue:
    return Queue.__base__.__new__(Queue, -1, qid)


def create(maxsize: int = 0, *, unbounditems: object = UNBOUND) -> Queue:
    """Make a new queue (``maxsize`` 0: unbounded)."""
    return Queue(maxsize, unbounditems=unbounditems)
