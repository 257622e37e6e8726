"""The native core of crossinterp (``crossinterp._native``).

Low-level: the public API is ``crossinterp`` and ``crossinterp.interpreters``.
Interpreter ids are CPython's. Excinfo tuples are
``(type_name, type_qualname, type_module, msg, formatted, errdisplay)``.
"""

import types
from collections.abc import Buffer, Callable, Iterable, Iterator, Mapping
from types import GenericAlias
from typing import Any, NoReturn, Self, final, overload

from typing_extensions import disjoint_base

type ExcInfoTuple = tuple[str, str, str, str, str, str]

__version__: str
"""The package version (the workspace version in Cargo.toml)."""

def create(site: bool, /) -> int:
    """Create an interpreter with its own GIL; returns its id."""

def destroy(id: int, /) -> None:
    """Close an interpreter made by ``create()``. Raises InterpreterError if it
    is running, current or not ours; InterpreterNotFoundError if gone."""

def incref(id: int, /) -> None:
    """An ``Interpreter`` object now owns a reference to interpreter ``id``."""

def decref(id: int, /) -> bool:
    """Drop such a reference; the last one closes an idle interpreter made by
    ``create()`` (True if it did). Raises like ``destroy()`` when it refuses."""

def list_all() -> list[tuple[int, str]]:
    """``(id, whence)`` of every live owner interpreter."""

def get_current() -> tuple[int, str]:
    """``(id, whence)`` of the current interpreter."""

def get_main() -> tuple[int, str]:
    """``(id, whence)`` of the main interpreter."""

def whence(id: int, /) -> str:
    """How interpreter ``id`` was created; InterpreterNotFoundError if gone."""

def is_running(id: int, /) -> bool:
    """Whether interpreter ``id`` runs code for crossinterp now."""

def exec(id: int, code: str | Callable[[], object], /) -> ExcInfoTuple | None:
    """Run code in the interpreter's ``__main__``; the excinfo on failure."""

def call(
    id: int, callable: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None, /
) -> tuple[Any, ExcInfoTuple | None]:
    """Call in the interpreter: ``(result, None)`` or ``(None, excinfo)``."""

def set_main_attrs(id: int, attrs: dict[str, Any], /) -> ExcInfoTuple | None:
    """Bind names in the interpreter's ``__main__``."""

def is_shareable(obj: object, /) -> bool:
    """Whether ``obj`` crosses interpreters natively (no pickle)."""

def live_owners() -> int:
    """Number of registered, not yet finalized owners."""

def set_finalize_warn_after(seconds: float, /) -> float:
    """Set the finalization warning interval; returns the old one."""

def share[T](obj: T, /) -> T:
    """``obj`` itself if it crosses interpreters natively (proxies included),
    else a new :class:`SharedObjectProxy` of it owned by this interpreter."""

def collect_cycles() -> int:
    """Release the lent objects of unreachable cross-interpreter proxy cycles;
    how many lent references were released (free-threaded builds: 0, and a
    ``CycleWarning`` per newly suspect pair of interpreters)."""

def set_auto_collect_cycles(enabled: bool, /) -> bool:
    """Turn the automatic cycle pass on or off (all interpreters); the
    previous setting."""

def cycles_supported() -> bool:
    """Whether :func:`collect_cycles` can collect on this build (not on
    free-threaded builds)."""

def gc_callback(phase: str, info: dict[str, int], /) -> None:
    """The ``gc.callbacks`` hook running the automatic cycle pass."""

def proxy_info(obj: object, /) -> tuple[int, bool] | None:
    """``(owner interpreter id, alive)`` for a proxy, ``None`` otherwise."""

def view(id: int, /) -> InterpreterView:
    """A view of live interpreter ``id`` (InterpreterNotFoundError if none)."""

def _own_threads_supported() -> bool:
    """Whether ``_current_frames``/``_current_exceptions`` work on this build
    (3.13 only, with the thread-state layout they read checked)."""

def _current_frames() -> dict[int, types.FrameType]:
    """``sys._current_frames()`` limited to this interpreter's threads (3.13:
    CPython's walks every interpreter's and corrupts memory, issue 11)."""

def _current_exceptions() -> dict[int, BaseException | None]:
    """``sys._current_exceptions()`` limited to this interpreter's threads (3.13)."""

def has_pep788() -> bool:
    """Whether guards are also backed by PEP 788 ``PyInterpreterGuard`` (3.15+)."""

def _testing_hold_guard(id: int, seconds: float, /) -> None:
    """Testing: a native thread holds a guard on ``id`` for ``seconds``."""

def _testing_pickle_containers(on: bool, /) -> None:
    """Test hook: containers and complex cross by pickle again (benchmarks)."""

def _testing_xi_cost(obj: object, n: int, /) -> tuple[float, float]:
    """Test hook: seconds to convert ``obj`` ``n`` times, and to rebuild it ``n`` times."""

def _testing_push_pending(id: int, source: str, /) -> None:
    """Testing: queue a pending call that runs ``source`` in ``id``'s ``__main__``."""

@disjoint_base
class QueueBase[T = Any]:
    """The native base of ``crossinterp.queues.Queue`` (see there for the API)."""

    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...

    @overload
    def __new__(cls, id: int, /) -> Self: ...
    @overload
    def __new__(cls, maxsize: int, unbound: int, /) -> Self: ...
    @classmethod
    def _live(cls) -> list[Self]:
        """Every live queue, oldest first."""
    @property
    def id(self) -> int:
        """The queue's id, unique in the process."""
    @property
    def maxsize(self) -> int:
        """The capacity (0 or negative: unbounded)."""
    @property
    def _unbound_default(self) -> int:
        """The default unbound policy (1 UNBOUND, 2 UNBOUND_ERROR, 3 UNBOUND_REMOVE)."""
    def put(
        self,
        obj: T,
        block: bool = True,
        timeout: float | None = None,
        *,
        unbounditems: object | None = None,
        strict: bool = False,
    ) -> None:
        """Add ``obj``; if full, wait (``block``) up to ``timeout`` seconds for
        room, else raise ``QueueFull``. ``unbounditems``: a policy of
        ``crossinterp.queues`` (default: the queue's). ``strict=True``:
        ``NotShareableError`` instead of pickling. ``timeout``: a non-negative
        number (``ValueError`` if negative or NaN, ``TypeError`` if not a
        number or a bool)."""
    def put_nowait(
        self, obj: T, *, unbounditems: object | None = None, strict: bool = False
    ) -> None:
        """``put(obj, block=False)``."""
    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the next item (``UNBOUND`` for an item whose
        interpreter was destroyed, under that policy); if empty, wait
        (``block``) up to ``timeout`` seconds, else raise ``QueueEmpty``."""
    def get_nowait(self) -> T:
        """``get(block=False)``."""
    def _put_native(self, obj: T, /) -> bool:
        """``put(obj)`` if ``obj`` crosses natively (containers included),
        else ``False`` and nothing put: never pickled, so the receiver's
        ``get`` cannot fail on it (the executor's task items and replies)."""
    def qsize(self) -> int:
        """The number of items now."""
    def empty(self) -> bool:
        """Whether the queue is empty now."""
    def full(self) -> bool:
        """Whether the queue is full now."""
    def _watch(self, waker: LoopWaker, side: int, /) -> int:
        """Wake ``waker``'s loop after every change that may let a get (side
        0: a put) or a put (side 1: a get, a removal) proceed; the token is
        for ``_unwatch``. ``TypeError`` if not a ``LoopWaker``, ``ValueError``
        for another side."""
    def _unwatch(self, side: int, token: int, /) -> bool:
        """Stop that; False if the token was not registered."""
    def _watchers(self, side: int, /) -> int:
        """Wakers registered on that side now."""

@final
class LoopWaker:
    """The wake-up fd of one asyncio event loop (``crossinterp._asyncio``):
    the queues and channels it watches write a byte to it, from any thread or
    interpreter, when one of the loop's awaiters may proceed. Writes coalesce
    until the next ``_drain()``."""

    def __new__(cls) -> Self: ...
    def fileno(self) -> int:
        """The fd to watch for reading (``loop.add_reader``)."""
    def _drain(self) -> int:
        """Re-arm, then read what was written (returns the byte count)."""
    def _notify(self) -> None:
        """Wake the loop as a watched change does."""

@final
class SharedBuffer(Buffer):
    """Zero-filled, 64-byte aligned memory owned by no interpreter.

    Pass it to other interpreters (``prepare_main``, ``call``, queues): every
    one sees the same bytes through ``memoryview``, without copying. Freed
    when the last reference in any interpreter goes. Use from any thread;
    order concurrent writes yourself, as with a ``bytearray``.
    """

    def __new__(cls, nbytes: int, *, readonly: bool = False) -> Self:
        """``nbytes`` >= 0 (``ValueError`` otherwise, ``MemoryError`` if too large)."""
    @classmethod
    def copy_of(cls, obj: Buffer, *, readonly: bool = False) -> SharedBuffer:
        """A new buffer holding a copy of a contiguous buffer."""
    def release(self) -> None:
        """Drop this object's reference to the memory now; ``BufferError``
        while one of its memoryviews is alive. Later use raises ``ValueError``."""
    def __enter__(self) -> Self:
        """``with SharedBuffer(n) as buf:`` (``ValueError`` if released)."""
    def __exit__(self, *exc_info: object) -> bool:
        """``release()`` at the end of the block (``BufferError``, chained to
        the block's exception, while a memoryview of it is alive)."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    @property
    def nbytes(self) -> int:
        """Size in bytes."""
    @property
    def readonly(self) -> bool:
        """Whether memoryviews of it are read-only."""
    @property
    def released(self) -> bool:
        """Whether ``release()`` was called."""

@disjoint_base
class ChannelBase[T = Any]:
    """The native base of ``crossinterp.channels.Channel`` (see there for the API)."""

    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...

    def __new__(cls, id: int) -> Self:
        """``id`` < 0: a new channel; else the live channel with that id."""
    @property
    def id(self) -> int:
        """The channel's id, unique in the process."""
    @property
    def pending(self) -> int:
        """Sends waiting for a receiver now."""
    @property
    def send_closed(self) -> bool:
        """Whether the send end is closed."""
    @property
    def recv_closed(self) -> bool:
        """Whether the receive end is closed."""
    def _send(self, obj: T, block: bool, timeout: float | None, strict: bool, /) -> bool:
        """Blocking: True once received; non-blocking: whether a waiting receiver took it."""
    def _recv(self, block: bool, timeout: float | None, /) -> tuple[bool, T]:
        """``(True, item)``, or ``(False, None)`` when non-blocking and nothing
        is pending (the ``None`` is then no ``T``: check the flag)."""
    def _close(self, send: bool, recv: bool, force: bool, /) -> int:
        """Close; returns how many pending items a forced close handed back."""
    def _offer(self, obj: object, strict: bool, /) -> int:
        """An async send's offer: -1 if a blocked receive took it at once,
        else the pending offer's ticket (``ChannelClosedError`` if closed)."""
    def _offer_done(self, ticket: int, /) -> bool:
        """True once received, False while pending; ``ChannelClosedError`` if
        a forced close handed it back."""
    def _withdraw(self, ticket: int, /) -> bool:
        """Take back a pending offer: True if it was pending (never received)."""
    def _watch(self, waker: LoopWaker, side: int, /) -> int:
        """Wake ``waker``'s loop for receivers (side 0: offers, closes) or
        async senders (side 1: offers taken, closes)."""
    def _unwatch(self, side: int, token: int, /) -> bool:
        """Stop that; False if the token was not registered."""
    def _watchers(self, side: int, /) -> int:
        """Wakers registered on that side now."""

@final
class BorrowedBuffer(Buffer):
    """A read-only, zero-copy view of memory owned by another interpreter: what
    a ``memoryview`` becomes when it crosses. While a memoryview of it is alive
    the owner cannot finish closing (``close()`` waits, warning if long); after
    the owner is gone, ``memoryview(b)`` raises ``InterpreterGoneError``. The
    owner's buffer is released in the owner when the last one goes. Made only
    by crossing (not instantiable)."""

    def release(self) -> None:
        """Unpin the owner's memory now; ``BufferError`` while a memoryview of
        it is alive; later use raises ``ValueError``."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    @property
    def owner(self) -> int:
        """The id of the interpreter that owns the memory."""
    @property
    def alive(self) -> bool:
        """Whether the owner still runs (memoryviews can be made)."""

@final
class AtomicInt:
    """A signed 64-bit integer shared by every thread and interpreter, updated
    atomically. Owned by no interpreter: pass it to others (``prepare_main``,
    ``call``, queues) and all see the same counter. Overflow raises
    ``OverflowError`` and leaves the value unchanged; non-int (and ``bool``)
    arguments raise ``TypeError``. ``a += n`` / ``a -= n`` are atomic.
    Unhashable (mutable)."""

    def __new__(cls, value: int = 0) -> Self: ...
    def get(self) -> int: ...
    def set(self, value: int, /) -> None: ...
    def add(self, n: int = 1, /) -> int:
        """Add atomically; return the new value."""
    def sub(self, n: int = 1, /) -> int:
        """Subtract atomically; return the new value."""
    def fetch_add(self, n: int = 1, /) -> int:
        """Add atomically; return the old value."""
    def fetch_sub(self, n: int = 1, /) -> int:
        """Subtract atomically; return the old value."""
    def inc(self) -> int:
        """Add 1; return the new value."""
    def dec(self) -> int:
        """Subtract 1; return the new value."""
    def get_and_set(self, value: int, /) -> int:
        """Store ``value``; return the old value."""
    def compare_and_set(self, expected: int, new: int, /) -> bool:
        """Store ``new`` if the value is ``expected``; return whether it did."""
    def update(self, fn: Callable[[int], int], /) -> int:
        """Store ``fn(old)`` atomically (``fn`` may be called again if another
        thread changed the value meanwhile); return the new value."""
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __iadd__(self, n: int, /) -> Self: ...
    def __isub__(self, n: int, /) -> Self: ...
    def __lt__(self, other: int | AtomicInt, /) -> bool: ...
    def __le__(self, other: int | AtomicInt, /) -> bool: ...
    def __gt__(self, other: int | AtomicInt, /) -> bool: ...
    def __ge__(self, other: int | AtomicInt, /) -> bool: ...

@final
class AtomicBool:
    """A boolean shared by every thread and interpreter, updated atomically."""

    def __new__(cls, value: bool = False) -> Self: ...
    def get(self) -> bool: ...
    def set(self, value: object, /) -> None: ...
    def get_and_set(self, value: object, /) -> bool:
        """Store ``bool(value)``; return the old value."""
    def compare_and_set(self, expected: object, new: object, /) -> bool:
        """Store ``new`` if the value is ``expected``; return whether it did."""
    def toggle(self) -> bool:
        """Flip; return the new value."""
    def __bool__(self) -> bool: ...


@final
class SharedObjectProxy:
    """A proxy of an object owned by another interpreter (made by
    :func:`crossinterp.share`; not instantiable directly).

    Every operation runs in the owner, with the owner attached: attribute
    get/set/delete, calls, item get/set/delete, ``len``, ``in``, ``iter`` and
    ``next``, ``repr``/``str``, truth, ``hash``, rich comparisons, arithmetic
    and in-place operators, and ``with``. Arguments cross natively when they
    can, else as proxies of the caller's objects (operands of comparisons and
    arithmetic cross by copy when picklable); results likewise (a list comes
    back as a proxy, an int as an int). A builtin exception raised in the
    owner is re-raised with the same type (the owner's traceback in a note);
    any other as :class:`ExecutionFailed`. After the owner is closed every
    operation raises :class:`InterpreterGoneError`. Nested chains of proxy
    operations deeper than 200 raise :class:`RecursionError`.

    Ownership: the object stays in its owner; the proxy may be used and
    dropped from any thread of the interpreter holding it. The last proxy's
    release runs in the owner (``__del__`` runs there). Not picklable
    (:class:`NotShareableError`); it crosses by itself or inside tuples.
    """

    def __getattr__(self, name: str, /) -> Any: ...
    def __setattr__(self, name: str, value: Any, /) -> None: ...
    def __delattr__(self, name: str, /) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __getitem__(self, key: Any, /) -> Any: ...
    def __setitem__(self, key: Any, value: Any, /) -> None: ...
    def __delitem__(self, key: Any, /) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, item: object, /) -> bool: ...
    def __iter__(self) -> SharedObjectProxy: ...
    def __next__(self) -> Any: ...
    def __bool__(self) -> bool: ...
    def __hash__(self) -> int: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...
    def __add__(self, other: Any, /) -> Any: ...
    def __radd__(self, other: Any, /) -> Any: ...
    def __iadd__(self, other: Any, /) -> Any: ...
    def __sub__(self, other: Any, /) -> Any: ...
    def __rsub__(self, other: Any, /) -> Any: ...
    def __mul__(self, other: Any, /) -> Any: ...
    def __rmul__(self, other: Any, /) -> Any: ...
    def __neg__(self) -> Any: ...

@final
class SharedMethodProxy:
    """A method of a shared object whose lookup cannot change (immutable type,
    no instance dict): calling it is one round trip to the owner."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

@final
class InterpreterView:
    """A weak reference to an interpreter (PEP 788): it never keeps the
    interpreter alive. Get one with ``Interpreter.view()`` or
    :meth:`InterpreterView.current`. Immutable; usable from any thread.
    Not picklable: pass the interpreter id instead."""

    @property
    def id(self) -> int:
        """The interpreter's id."""

    @classmethod
    def current(cls) -> InterpreterView:
        """A view of the interpreter the calling thread runs in."""

    def guard(self) -> InterpreterGuard:
        """Hold off the interpreter's finalization until the guard is closed.

        Raises :class:`InterpreterFinalizingError` if it is finalizing,
        :class:`InterpreterGoneError` if it is gone."""

    def is_alive(self) -> bool:
        """Whether the interpreter is running (neither finalizing nor gone)."""

    def state(self) -> str:
        """``"running"``, ``"finalizing"`` or ``"finalized"``."""

@final
class InterpreterGuard:
    """An open guard on an interpreter: ``Interpreter.close()`` and the
    interpreter's own exit wait until it is closed (``close()``, the end of a
    ``with`` block, or deallocation), warning on stderr every
    ``set_finalize_warn_after`` seconds. ``close()`` of that interpreter from
    the thread holding the guard raises :class:`InterpreterError`. Guards an
    interpreter holds on itself are closed by its exit; guard objects do not
    hold the process exit. On 3.15 it also holds a PEP 788
    ``PyInterpreterGuard``. Any thread may close it. Not picklable."""

    def close(self) -> None:
        """Release the guard (idempotent)."""

    def is_open(self) -> bool: ...
    def view(self) -> InterpreterView: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> bool: ...
@final
class AtomicRef[T = Any]:
    """A reference to an object, read and replaced atomically by any number
    of threads of one interpreter (the ``AtomicReference`` of other
    languages). ``compare_and_set`` compares by identity (``is``).

    Free-threaded builds: ``get`` racing ``set`` never returns (or touches
    the count of) an object whose last reference was dropped: 3.14+ takes
    the reference with ``PyUnstable_TryIncRef`` and retries; 3.13t uses the
    engine's safe memory reclamation (``smr::Smr``). A replaced value is
    released by the thread that replaced it, after no reader can still be
    taking a reference to it. GIL builds: the GIL orders everything; same API.

    Owned by the interpreter that created it: passing it to another
    interpreter (``prepare_main``, ``call``, queues, channels) raises
    ``NotShareableError``, as does pickling it (the objects it holds belong
    to this interpreter; share values with queues and counters with
    ``AtomicInt``). Cycles through it are collected by the GC. Hashable by
    identity."""

    @overload
    def __new__(cls: type[AtomicRef[None]]) -> AtomicRef[None]: ...
    @overload
    def __new__(cls, initial: T) -> Self: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    def get(self) -> T:
        """The current value."""
    def set(self, value: T, /) -> None:
        """Store ``value``."""
    def get_and_set(self, value: T, /) -> T:
        """Store ``value``; return the old value."""
    def compare_and_set(self, expected: object, new: T, /) -> bool:
        """Store ``new`` if the current value *is* ``expected``; return
        whether it did."""
    def __reduce__(self) -> Any:
        """Always raises ``NotShareableError``."""
@final
class AtomicDict[K = Any, V = Any]:
    """A concurrent dict for free-threaded Python (same API on GIL builds).

    64 shards, each with its own lock, so threads working on different keys
    do not wait for each other: never one global lock. Reads write no shared
    memory (a distributed reader lock), so read-mostly loads scale with
    threads.

    Keys are hashed with ``hash()`` and compared with ``==`` as in ``dict``
    (``1``, ``1.0`` and ``True`` are one key; unhashable keys raise
    ``TypeError``; exceptions from ``__hash__``/``__eq__`` propagate). No Python
    code ever runs while a shard is locked: keys of user-defined types are
    compared outside the lock and the lookup re-checked.

    Consistency: every single-key operation is atomic (linearizable).
    ``len()`` is exact when no mutation is in flight, otherwise a value the size
    had recently. Iteration, ``keys()``/``values()``/``items()``/``to_dict()``
    are *snapshots*, one shard at a time: each shard's part is consistent, the
    whole is weakly consistent (an entry inserted or removed meanwhile may or
    may not appear); they never raise because of concurrent mutation.

    Ownership: belongs to the interpreter that created it (its entries are that
    interpreter's objects); usable from any thread of that interpreter.
    Passing it to another interpreter (``prepare_main``, ``call``, queues)
    raises ``NotShareableError``; it cannot be pickled. Reference cycles
    through it are collected by the GC.
    """

    def __new__(cls, initial: Mapping[K, V] | Iterable[tuple[K, V]] | None = None) -> Self:
        """Start with the items of a mapping or an iterable of pairs."""
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    def __getitem__(self, key: K, /) -> V:
        """The value for ``key``; ``KeyError`` if absent."""
    def __setitem__(self, key: K, value: V, /) -> None: ...
    def __delitem__(self, key: K, /) -> None:
        """Remove ``key``; ``KeyError`` if absent."""
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int:
        """Exact when no mutation is in flight; approximate under concurrency."""
    def __iter__(self) -> Iterator[K]:
        """Iterate over a snapshot of the keys."""
    def get(self, key: K, default: V | None = None, /) -> V | None:
        """The value for ``key``, else ``default``."""
    def pop(self, key: K, default: V = ..., /) -> V:
        """Remove ``key`` and return its value; ``default`` if absent, else ``KeyError``."""
    def setdefault(self, key: K, default: V | None = None, /) -> V | None:
        """The value for ``key``; if absent, insert ``default`` (atomically) and return it."""
    def update(self, key: K, fn: Callable[[V], V], default: V | None = None) -> V:
        """Replace the value for ``key`` by ``fn(current)`` (``fn(default)`` if
        absent) atomically, in a compare-and-set loop: ``fn`` runs with no lock
        held and may be called again if another thread changed the entry
        meanwhile (the new value is stored only if the entry still holds the
        value object ``fn`` saw). Returns the value stored. Mutating this dict
        from inside ``fn`` raises ``RuntimeError`` (reading it is fine). Not
        ``dict.update``: see ``reduce`` to merge many pairs."""
    def compare_and_set(self, key: K, expected: V, new: V) -> bool:
        """If ``key`` is present and its value is ``expected``, store ``new``;
        return whether it did. "Is" means identity, or equality when both
        values are plain builtins whose comparison runs no user code (exact
        ``str``, ``int``, ``float``, ``bytes``, ``bool``, ``None``, tuples of
        these). An absent key never matches."""
    def reduce(self, iterable: Iterable[tuple[K, V]], fn: Callable[[V, V], V]) -> None:
        """Merge ``(key, value)`` pairs: a key already present gets
        ``fn(current, value)``, an absent one ``value``. The pairs are first
        combined locally (``fn`` per repeated key, no lock), then each distinct
        key is merged with ``update``'s compare-and-set loop, so ``fn`` should
        be associative (and commutative, under concurrent merges) and may run
        more than once. Mutating this dict from ``fn`` raises ``RuntimeError``."""
    def reduce_sum(self, iterable: Iterable[tuple[K, Any]], /) -> None:
        """``reduce`` with ``+``: adds each pair's number to the key's value
        (absent: starts from the number). Exact ints are summed natively."""
    def reduce_count(self, iterable: Iterable[K], /) -> None:
        """Add 1 to the value of each key of ``iterable`` (absent: 0), e.g.
        word counting: ``d.reduce_count(words)``. The keys are counted
        locally first, then each distinct key's count is added atomically
        (concurrent calls never lose a count); the call as a whole is not one
        atomic step: another thread may see some keys added and not yet
        others."""
    def keys(self) -> list[K]:
        """A snapshot list of the keys."""
    def values(self) -> list[V]:
        """A snapshot list of the values."""
    def items(self) -> list[tuple[K, V]]:
        """A snapshot list of the ``(key, value)`` pairs."""
    def clear(self) -> None:
        """Remove every item (shard by shard: items inserted concurrently may stay)."""
    def to_dict(self) -> dict[K, V]:
        """A plain ``dict`` copy of a snapshot."""
    def __reduce__(self) -> NoReturn:
        """Always ``TypeError``: an AtomicDict cannot be pickled or shared."""
