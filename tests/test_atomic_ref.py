"""AtomicRef: an object reference read and replaced atomically by the threads
of one interpreter; refused across interpreters."""

import gc
import pickle
import sys
import threading
import time
from typing import ClassVar

import helpers
import pytest
from conftest import LARGE

from crossinterp import AtomicInt, AtomicRef, NotShareableError, interpreters
from crossinterp.channels import Channel
from crossinterp.queues import Queue

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()

# Each stress writer stops after this many writes (each creates one object),
# or when the time is up. CROSSINTERP_LARGE=1: 10 s runs, 3 M writes.
MAX_WRITES = 3_000_000 if LARGE else 300_000
STRESS_SECONDS = 10.0 if LARGE else 1.0


class Tracked:
    """Records its own deallocation: `dead` is set and `deaths[id]` counted."""

    created = AtomicInt()
    deaths: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self.id = Tracked.created.fetch_add()
        self.dead = False

    def __del__(self) -> None:
        self.dead = True
        Tracked.deaths[self.id] += 1


@pytest.fixture
def tracked():
    Tracked.created.set(0)
    Tracked.deaths = [0] * (1 + 4 * MAX_WRITES)
    yield Tracked
    gc.collect()
    n = Tracked.created.get()
    counts = Tracked.deaths[:n]
    assert all(c == 1 for c in counts), [(i, c) for i, c in enumerate(counts) if c != 1][:10]
    assert not any(Tracked.deaths[n:])


def test_api():
    r = AtomicRef()
    assert r.get() is None
    o = object()
    r.set(o)
    assert r.get() is o
    assert r.get_and_set(5) is o and r.get() == 5
    assert AtomicRef(o).get() is o and AtomicRef(initial=o).get() is o
    assert repr(AtomicRef([1, "a"])) == "AtomicRef([1, 'a'])"
    hash(r)  # identity hash: it is a cell, not a value


def test_compare_and_set_is_by_identity():
    a, b = [1], [1]
    r = AtomicRef(a)
    assert not r.compare_and_set(b, "x")  # equal, not identical
    assert r.get() is a
    assert r.compare_and_set(a, b) and r.get() is b
    assert not r.compare_and_set(a, "y") and r.get() is b
    r.set(None)
    assert r.compare_and_set(None, 3) and r.get() == 3


def test_replaced_values_are_released(tracked):
    r = AtomicRef(Tracked())
    first = r.get()
    assert r.get_and_set(Tracked()) is first
    del first
    assert Tracked.deaths[0] == 1
    r.set(Tracked())
    assert Tracked.deaths[1] == 1
    cand = Tracked()
    assert not r.compare_and_set(object(), cand)
    del cand
    assert Tracked.deaths[3] == 1
    del r  # the cell releases its value


def test_get_balances_refcounts():
    # From the owning thread and from another (free-threaded builds count
    # those references in a different field).
    o = object()
    r = AtomicRef(o)
    base = sys.getrefcount(o)

    def churn():
        for _ in range(1000):
            x = r.get()
            del x

    churn()
    t = threading.Thread(target=churn)
    t.start()
    t.join()
    assert sys.getrefcount(o) == base
    r.set(None)
    assert sys.getrefcount(o) == base - 1


def test_repr_of_a_cell_holding_itself():
    r = AtomicRef()
    r.set([r])
    assert repr(r) == "AtomicRef([AtomicRef(...)])"
    r.set(None)


def test_cycles_are_collected(tracked):
    t = Tracked()
    r = AtomicRef(t)
    t.r = r
    del t, r
    gc.collect()
    assert Tracked.deaths[0] == 1


def test_bad_input():
    r = AtomicRef()
    with pytest.raises(TypeError):
        r.set()
    with pytest.raises(TypeError):
        r.set(1, 2)
    with pytest.raises(TypeError):
        r.compare_and_set(1)
    with pytest.raises(TypeError):
        r.get(1)
    with pytest.raises(TypeError):
        r.get_and_set()
    with pytest.raises(TypeError):
        AtomicRef(1, 2)
    with pytest.raises(TypeError):
        AtomicRef(value=1)
    with pytest.raises(TypeError):
        class Sub(AtomicRef):  # not subclassable (a final type)
            pass
    assert r.get() is None


def test_refused_across_interpreters(interp):
    r = AtomicRef(1)
    assert not interpreters.is_shareable(r)
    with pytest.raises(NotShareableError, match="AtomicRef cannot be passed to another interpreter"):
        interp.prepare_main(r=r)
    with pytest.raises(NotShareableError, match="AtomicRef"):
        interp.call(helpers.echo, r)
    q = Queue()
    with pytest.raises(NotShareableError, match="AtomicRef"):
        q.put(r)
    with pytest.raises(NotShareableError, match="AtomicRef"):
        q.put(r, strict=True)
    assert q.empty()
    with pytest.raises(NotShareableError, match="AtomicRef"):
        Channel().send_nowait(r)
    # Inside a tuple: the tuple is pickled, which the AtomicRef refuses.
    with pytest.raises(NotShareableError) as ei:
        interp.call(helpers.echo, (1, r))
    assert isinstance(ei.value.__cause__, NotShareableError)
    with pytest.raises(NotShareableError, match="AtomicRef"):
        pickle.dumps(r)
    assert r.get() == 1  # untouched


def test_usable_inside_another_interpreter_but_not_sent_back(interp):
    interp.exec(
        "from crossinterp import AtomicRef\n"
        "r = AtomicRef([1])\n"
        "assert r.compare_and_set(r.get(), 'x') and r.get() == 'x'\n"
    )
    # As in concurrent.interpreters: a result that cannot cross back raises
    # NotShareableError in the caller.
    with pytest.raises(NotShareableError, match="AtomicRef cannot be passed"):
        interp.call(helpers.main_eval, "r")


def _hammer(seconds: float, readers: int, writers: int) -> tuple[int, int]:
    """Readers get() and check the object is not dead; writers replace it by
    set / get_and_set / compare_and_set. Returns (reads, writes)."""
    r = AtomicRef(Tracked())
    stop = threading.Event()
    errors: list[str] = []
    reads = AtomicInt()
    writes = AtomicInt()
    barrier = threading.Barrier(readers + writers)

    def reader() -> None:
        barrier.wait()
        n = 0
        while not stop.is_set():
            for _ in range(200):
                o = r.get()
                if o.dead:
                    errors.append(f"get() returned object {o.id} after its __del__ ran")
            n += 200
        reads.add(n)

    def writer(k: int) -> None:
        barrier.wait()
        n = 0
        while not stop.is_set() and n < MAX_WRITES:
            for i in range(50):
                op = (i + k) % 3
                if op == 0:
                    r.set(Tracked())
                elif op == 1:
                    old = r.get_and_set(Tracked())
                    if old.dead:
                        errors.append(f"get_and_set() returned dead object {old.id}")
                else:
                    cur = r.get()
                    r.compare_and_set(cur, Tracked())
            n += 50
        writes.add(n)

    ts = [threading.Thread(target=reader) for _ in range(readers)]
    ts += [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
    r.set(None)
    return reads.get(), writes.get()


def test_stress_set_get_every_object_released_once(tracked):
    """2 readers + 2 writers for about a second (meaningful on 3.13t / 3.14t:
    real parallelism); every object created is deallocated exactly once (the
    fixture checks) and no reader ever got a dead one."""
    reads, writes = _hammer(STRESS_SECONDS, readers=2, writers=2)
    assert reads > 0 and writes > 0
    gc.collect()
    assert sum(Tracked.deaths[: Tracked.created.get()]) == Tracked.created.get()


def test_stress_read_mostly_single_writer(tracked):
    reads, writes = _hammer(STRESS_SECONDS / 2, readers=3, writers=1)
    assert reads > 0 and writes > 0


@pytest.mark.skipif(not FREE_THREADED, reason="threads only run in parallel on free-threaded builds")
def test_free_threaded_module_keeps_gil_off():
    assert not sys._is_gil_enabled()
