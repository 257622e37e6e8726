"""collect_cycles(): cycles through proxies across interpreters are collected
when nothing outside them reaches them, and kept (working) otherwise."""

import gc
import sysconfig
import threading
import time
import warnings

import pytest

import crossinterp
from crossinterp import AtomicInt, SharedObjectProxy, interpreters, share
from crossinterp.queues import Queue

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_gil = pytest.mark.skipif(
    FREE_THREADED, reason="free-threaded builds: see test_free_threaded_collects_nothing"
)

# In a sub-interpreter: a Node class whose finalizer records where it ran.
SUB_NODE = """if True:
    from crossinterp import interpreters, share
    class Node:
        other = None
        def where(self):
            return interpreters.get_current().id
        def __del__(self):
            died.set(interpreters.get_current().id)
"""


class Node:
    other = None

    def __init__(self, died):
        self.died = died

    def where(self):
        return interpreters.get_current().id

    def __del__(self):
        self.died.append(interpreters.get_current().id)


@pytest.fixture
def no_auto():
    old = crossinterp.set_auto_collect_cycles(False)
    yield
    crossinterp.set_auto_collect_cycles(old)


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def sub_node_holding(it, proxy_of_ours, died):
    """In `it`: b = Node(), b.other = our proxy; returns our proxy of b (the
    sub-interpreter keeps b only through that proxy)."""
    q = Queue()
    it.prepare_main(p=proxy_of_ours, q=q, died=died)
    it.exec(SUB_NODE + "b = Node(); b.other = p; q.put(share(b)); del b, p")
    pb = q.get(timeout=10)
    assert isinstance(pb, SharedObjectProxy)
    return pb


def collect_everywhere(*its):
    gc.collect()
    for it in its:
        it.exec("import gc; gc.collect()")


def test_set_auto_collect_cycles_takes_a_bool(no_auto):
    with pytest.raises(TypeError):
        crossinterp.set_auto_collect_cycles(1)
    assert crossinterp.set_auto_collect_cycles(False) is False


@needs_gil
def test_two_interpreter_cycle_is_collected_finalizers_in_owners(no_auto):
    main_id = interpreters.get_current().id
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        a.other = sub_node_holding(it, share(a), died_b)
        del a
        collect_everywhere(it)
        # Plain gc cannot see through the lend entries: both still live.
        assert died_main == [] and died_b.get() == -1
        assert crossinterp.collect_cycles() == 2
        collect_everywhere(it)
        assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])
        assert died_main == [main_id]
        assert wait_until(lambda: died_b.get() != -1)
        assert died_b.get() == it.id
        # Nothing is left to collect.
        assert crossinterp.collect_cycles() == 0
    finally:
        it.close()


@needs_gil
def test_cycle_held_from_outside_is_kept_and_keeps_working(no_auto):
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        a.other = sub_node_holding(it, share(a), died_b)
        keep = a
        del a
        collect_everywhere(it)
        assert crossinterp.collect_cycles() == 0
        collect_everywhere(it)
        assert died_main == [] and died_b.get() == -1
        # Both directions still work: main -> b (in it) -> a (in main).
        assert keep.other.where() == it.id
        assert keep.other.other.where() == interpreters.get_current().id
        # Held from the other side instead: b's interpreter keeps a proxy of
        # b's partner through a global.
        it.exec("import __main__")
        q = Queue()
        it.prepare_main(q2=q)
        it.exec("q2.put(1)")  # the sub-interpreter is still usable
        assert q.get(timeout=10) == 1
        del keep
        assert crossinterp.collect_cycles() == 2
        collect_everywhere(it)
        assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])
        assert wait_until(lambda: died_b.get() == it.id)
    finally:
        it.close()


@needs_gil
def test_cycle_held_from_the_other_interpreter_is_kept(no_auto):
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        q = Queue()
        it.prepare_main(p=share(a), q=q, died=died_b)
        # b is also kept by a global of the sub-interpreter.
        it.exec(SUB_NODE + "b = Node(); b.other = p; q.put(share(b)); del p")
        a.other = q.get(timeout=10)
        del a
        collect_everywhere(it)
        assert crossinterp.collect_cycles() == 0
        collect_everywhere(it)
        assert died_main == [] and died_b.get() == -1
        q.put(None)
        it.exec("assert b.other.where() == 0; assert q.get() is None")
        it.exec("del b")
        assert crossinterp.collect_cycles() == 2
        collect_everywhere(it)
        assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])
        assert wait_until(lambda: died_b.get() == it.id)
    finally:
        it.close()


@needs_gil
def test_proxy_in_a_queue_keeps_the_cycle(no_auto):
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        a.other = sub_node_holding(it, share(a), died_b)
        parked = Queue()
        parked.put(a.other)  # a reference in transit, outside any interpreter
        del a
        assert crossinterp.collect_cycles() == 0
        assert died_main == [] and died_b.get() == -1
        pb = parked.get(timeout=10)
        assert pb.where() == it.id
        del pb
        assert crossinterp.collect_cycles() == 2
        collect_everywhere(it)
        assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])
        assert wait_until(lambda: died_b.get() == it.id)
    finally:
        it.close()


@needs_gil
def test_three_interpreter_cycle_is_collected(no_auto):
    main_id = interpreters.get_current().id
    it1 = interpreters.create()
    it2 = interpreters.create()
    try:
        died_main = []
        died_1 = AtomicInt(-1)
        died_2 = AtomicInt(-1)
        a = Node(died_main)
        # c (in it2) holds a proxy of a; b (in it1) holds a proxy of c; a
        # holds a proxy of b.
        pc = sub_node_holding(it2, share(a), died_2)
        pb = sub_node_holding(it1, pc, died_1)
        del pc
        a.other = pb
        del pb
        assert a.other.other.other.where() == main_id
        del a
        collect_everywhere(it1, it2)
        assert died_main == [] and died_1.get() == -1 and died_2.get() == -1
        assert crossinterp.collect_cycles() == 3
        collect_everywhere(it1, it2)
        assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])
        assert died_main == [main_id]
        assert wait_until(lambda: died_1.get() == it1.id and died_2.get() == it2.id)
    finally:
        it1.close()
        it2.close()


@needs_gil
def test_automatic_pass_after_gc():
    old = crossinterp.set_auto_collect_cycles(True)
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        a.other = sub_node_holding(it, share(a), died_b)
        del a

        def collected():
            gc.collect()
            return died_main != []

        # The pass runs at most once a second, from a gc callback.
        assert wait_until(collected, timeout=30)
        assert wait_until(lambda: died_b.get() == it.id)
    finally:
        crossinterp.set_auto_collect_cycles(old)
        it.close()


@needs_gil
def test_passes_during_proxy_traffic_release_only_garbage(no_auto):
    # One thread keeps using a live cycle and makes garbage cycles; the main
    # thread runs passes meanwhile. The live cycle must never be released;
    # every garbage cycle ends up collected, finalizers in their owners.
    main_id = interpreters.get_current().id
    it = interpreters.create()
    try:
        kept_died = []
        kept_b = AtomicInt(-1)
        keep = Node(kept_died)
        keep.other = sub_node_holding(it, share(keep), kept_b)
        garbage_died = []
        garbage_b = AtomicInt(0)
        made = []
        stop = threading.Event()
        errors = []

        def traffic():
            try:
                while not stop.is_set() and len(made) < 200:
                    assert keep.other.where() == it.id
                    assert keep.other.other.where() == main_id
                    g = Node(garbage_died)
                    g.other = sub_node_holding(it, share(g), garbage_b)
                    made.append(1)
                    del g
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=traffic)
        t.start()
        released = 0
        while t.is_alive():
            released += crossinterp.collect_cycles()
        t.join()
        assert errors == []
        for _ in range(3):
            released += crossinterp.collect_cycles()
            collect_everywhere(it)
        # Each garbage cycle is two lent references; the kept one is not.
        assert released == 2 * len(made)
        assert kept_died == [] and kept_b.get() == -1
        assert keep.other.other.where() == main_id
        assert wait_until(lambda: (crossinterp.live_owners(), len(garbage_died))[1] == len(made))
        assert set(garbage_died) == {main_id}
    finally:
        it.close()


@pytest.mark.skipif(not FREE_THREADED, reason="the free-threaded behaviour")
def test_free_threaded_collects_nothing(no_auto):
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        a = Node(died_main)
        a.other = sub_node_holding(it, share(a), died_b)
        keep_proxy = a.other
        del a
        assert crossinterp._native.cycles_supported() is False
        with pytest.warns(RuntimeWarning, match="free-threaded"):
            assert crossinterp.collect_cycles() == 0
        collect_everywhere(it)
        assert died_main == [] and died_b.get() == -1
        assert keep_proxy.other.where() == interpreters.get_current().id
    finally:
        it.close()
    # Closing the interpreter releases what it lent and what it held.
    gc.collect()
    assert died_b.get() == it.id
    assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])


@needs_gil
def test_collect_cycles_with_nothing_lent_returns_zero():
    assert crossinterp.collect_cycles() == 0


needs_free_threaded = pytest.mark.skipif(
    not FREE_THREADED, reason="the free-threaded detection (GIL builds collect instead)"
)


def make_cycle(it, died_main, died_b):
    """One a (here) -> proxy of b (in `it`) -> proxy of a cycle; nothing else
    holds a or b afterwards."""
    a = Node(died_main)
    a.other = sub_node_holding(it, share(a), died_b)


def cycle_warnings(record):
    return [w for w in record if issubclass(w.category, crossinterp.CycleWarning)]


@needs_free_threaded
def test_free_threaded_growing_two_interpreter_cycles_warn_once_naming_both(no_auto):
    main_id = interpreters.get_current().id
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        # The first check sees the pair new (nothing held throughout an
        # interval yet); then one more cycle kept per interval: 1, 2, 3.
        with warnings_recorded() as record:
            for _ in range(3):
                make_cycle(it, died_main, died_b)
                collect_everywhere(it)
                assert crossinterp.collect_cycles() == 0
        assert cycle_warnings(record) == []
        make_cycle(it, died_main, died_b)
        warnings.simplefilter("ignore", RuntimeWarning)  # collect_cycles()'s own
        with pytest.warns(crossinterp.CycleWarning) as record:
            crossinterp.collect_cycles()
        found = cycle_warnings(record)
        assert len(found) == 1
        msg = str(found[0].message)
        assert "4 held in interpreter" in msg
        assert f"interpreters {main_id} and {it.id}" in msg
        assert "free-threaded" in msg and "close" in msg
        assert issubclass(crossinterp.CycleWarning, RuntimeWarning)  # shown by default
        # Once per pair: more growth does not warn again.
        with warnings_recorded() as again:
            for _ in range(4):
                make_cycle(it, died_main, died_b)
                crossinterp.collect_cycles()
        assert cycle_warnings(again) == []
        # Not collected: nothing died.
        assert died_main == [] and died_b.get() == -1
    finally:
        it.close()
    gc.collect()
    assert died_b.get() == it.id
    assert wait_until(lambda: (crossinterp.live_owners(), died_main)[1] != [])


def warnings_recorded():
    cm = warnings.catch_warnings(record=True)

    class _Rec:
        def __enter__(self):
            self.log = cm.__enter__()
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", RuntimeWarning)  # collect_cycles()'s own
            warnings.simplefilter("always", crossinterp.CycleWarning)  # a RuntimeWarning too
            return self.log

        def __exit__(self, *exc):
            return cm.__exit__(*exc)

    return _Rec()


@needs_free_threaded
def test_free_threaded_released_bidirectional_proxies_do_not_warn(no_auto):
    it = interpreters.create()
    try:
        kept = []  # proxies of it's objects, here
        with warnings_recorded() as record:
            for round_ in range(10):
                # Both ways, growing within the round, all released before the
                # next check: acyclic, nothing held across checks.
                it.exec("import crossinterp; held = []")
                for _ in range(round_ + 1):
                    q = Queue()
                    it.prepare_main(p=share([round_]), q=q)
                    it.exec("held.append(p); q.put(crossinterp.share([1]))")
                    kept.append(q.get(timeout=10))
                # One check per round, at its peak: more proxies both ways
                # than at the previous one, but none held throughout.
                assert crossinterp.collect_cycles() == 0
                kept.clear()
                it.exec("del held, p")
                gc.collect()
        assert cycle_warnings(record) == []
    finally:
        it.close()


@needs_free_threaded
def test_free_threaded_stable_pair_of_proxies_does_not_warn(no_auto):
    # Each interpreter keeps one proxy of the other's object for good: the
    # count does not grow, so nothing is reported (a cycle made once is not
    # either: the documented limit of the heuristic).
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        with warnings_recorded() as record:
            make_cycle(it, died_main, died_b)
            for _ in range(8):
                crossinterp.collect_cycles()
        assert cycle_warnings(record) == []
    finally:
        it.close()


@needs_free_threaded
def test_free_threaded_automatic_check_after_gc_warns():
    old = crossinterp.set_auto_collect_cycles(True)
    it = interpreters.create()
    # Only this interpreter's collections run the check (the warning is
    # issued where the check runs).
    it.exec("import gc; gc.disable()")
    try:
        died_main = []
        died_b = AtomicInt(-1)
        with warnings_recorded() as record:
            deadline = time.monotonic() + 60
            while not cycle_warnings(record) and time.monotonic() < deadline:
                make_cycle(it, died_main, died_b)
                time.sleep(0.3)
                gc.collect()
        found = cycle_warnings(record)
        assert len(found) == 1
        assert f"and {it.id}" in str(found[0].message)
    finally:
        it.close()
        crossinterp.set_auto_collect_cycles(old)


@needs_gil
def test_gil_builds_collect_growing_cycles_without_cycle_warning(no_auto):
    it = interpreters.create()
    try:
        died_main = []
        died_b = AtomicInt(-1)
        with warnings_recorded() as record:
            for _ in range(6):
                make_cycle(it, died_main, died_b)
                collect_everywhere(it)
                assert crossinterp.collect_cycles() == 2
        assert cycle_warnings(record) == []
    finally:
        it.close()
