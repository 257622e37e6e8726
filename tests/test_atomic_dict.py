"""AtomicDict: a concurrent dict (meaningful on free-threaded builds; same API on GIL builds)."""

import collections
import gc
import pickle
import random
import sys
import threading
import time

import pytest
from conftest import LARGE

from crossinterp import AtomicDict, NotShareableError
from crossinterp.queues import Queue

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()


def run_threads(n, target, *args):
    errors = []

    def body(i):
        try:
            target(i, *args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- API


def test_mapping_api():
    d = AtomicDict({"a": 1})
    d["b"] = 2
    assert d["a"] == 1 and d["b"] == 2 and len(d) == 2
    assert "a" in d and "z" not in d
    assert d.get("z") is None and d.get("z", 5) == 5 and d.get("a", 5) == 1
    with pytest.raises(KeyError) as ei:
        d["z"]
    assert ei.value.args == ("z",)
    del d["a"]
    with pytest.raises(KeyError):
        del d["a"]
    assert d.pop("b") == 2 and d.pop("b", None) is None
    with pytest.raises(KeyError):
        d.pop("b")
    assert d.setdefault("s", []) == [] and d.setdefault("s", 1) == []
    d.setdefault("n")
    assert d["n"] is None
    d.clear()
    assert len(d) == 0 and d.to_dict() == {}


def test_dunders_called_as_methods_match_the_operators():
    # __getitem__, __setitem__ and __contains__ are methods of their own
    # (vectorcall, like dict's __getitem__), not the slot wrappers: bound,
    # they must behave exactly as d[k], d[k] = v and k in d.
    d = AtomicDict()
    get, set_, has = d.__getitem__, d.__setitem__, d.__contains__
    assert type(get).__name__ == "builtin_function_or_method"
    set_("a", 1)
    assert d["a"] == 1 and get("a") == 1 and has("a") and not has("b")
    assert list(map(get, ["a", "a"])) == [1, 1]
    assert sorted(["a"], key=get) == ["a"]
    with pytest.raises(KeyError) as ei:
        get("zz")
    assert ei.value.args == ("zz",)
    for bad in ([], {}, set()):
        with pytest.raises(TypeError, match="unhashable"):
            get(bad)
        with pytest.raises(TypeError, match="unhashable"):
            set_(bad, 1)
        with pytest.raises(TypeError, match="unhashable"):
            has(bad)
    with pytest.raises(TypeError):
        get()
    with pytest.raises(TypeError):
        get("a", "b")
    with pytest.raises(TypeError, match="__setitem__"):
        set_("a")
    with pytest.raises(TypeError, match="__setitem__"):
        set_("a", 1, 2)
    # The unbound forms check their receiver, as any method descriptor does.
    with pytest.raises(TypeError):
        AtomicDict.__getitem__({}, "a")
    assert AtomicDict.__setitem__(d, "b", 2) is None and d["b"] == 2
    del d["a"]  # deletion stays the slot's
    assert len(d) == 1 and d.__delitem__("b") is None and len(d) == 0


def test_constructor_forms():
    assert AtomicDict().to_dict() == {}
    assert AtomicDict(None).to_dict() == {}
    assert AtomicDict({1: 2}).to_dict() == {1: 2}
    assert AtomicDict([(1, 2), [3, 4]]).to_dict() == {1: 2, 3: 4}
    assert AtomicDict(initial={"x": 1}).to_dict() == {"x": 1}
    assert AtomicDict(AtomicDict({5: 6}).to_dict()).to_dict() == {5: 6}
    with pytest.raises(ValueError):
        AtomicDict([(1, 2, 3)])
    with pytest.raises(TypeError):
        AtomicDict([1])


def test_views_repr_and_iteration():
    d = AtomicDict({i: str(i) for i in range(100)})
    assert sorted(d) == list(range(100))
    assert sorted(d.keys()) == list(range(100))
    assert sorted(d.values(), key=int) == [str(i) for i in range(100)]
    assert sorted(d.items()) == sorted((i, str(i)) for i in range(100))
    assert repr(AtomicDict({"a": 1})) == "AtomicDict({'a': 1})"
    e = AtomicDict()
    e[0] = e
    assert repr(e) == "AtomicDict({0: AtomicDict({...})})"
    e.clear()


def test_keys_equal_across_types_like_dict():
    d = AtomicDict()
    d[1] = "int"
    d[1.0] = "float"
    d[True] = "bool"
    assert len(d) == 1 and d[1] == "bool"
    d[(1, "a")] = "t"
    assert d[(1.0, "a")] == "t"
    big = 2**100
    d[big] = "big"
    assert d[2**100] == "big"
    d[b"x"] = "bytes"
    d["x"] = "str"
    assert d[b"x"] == "bytes" and d["x"] == "str"
    nan = float("nan")
    d[nan] = "nan"
    assert d[nan] == "nan"  # identity, as dict
    other_nan = float("nan")
    assert other_nan not in d  # another NaN object: not equal, not identical


def test_update_compare_and_set():
    d = AtomicDict()
    assert d.update("k", lambda v: v + 1, 0) == 1
    assert d.update("k", lambda v: v + 1, 0) == 2
    assert d.update("n", lambda v: [v]) == [None]
    assert d.update(key="m", fn=lambda v: v * 2, default=21) == 42
    x = object()
    d["o"] = x
    assert not d.compare_and_set("o", object(), 1)
    assert d.compare_and_set("o", x, 1) and d["o"] == 1
    # plain builtin values compare by equality, others by identity
    d["i"] = 10**10
    assert d.compare_and_set("i", int("1" + "0" * 10), "ten")
    assert not d.compare_and_set("absent", None, 1) and "absent" not in d
    with pytest.raises(TypeError):
        d.update("k", 42)
    with pytest.raises(ZeroDivisionError):
        d.update("k", lambda v: 1 // 0)
    assert d["k"] == 2


def test_reduce_family():
    d = AtomicDict({"a": 1})
    d.reduce_sum([("a", 2), ("b", 3), ("a", 4)])
    assert d.to_dict() == {"a": 7, "b": 3}
    d.reduce_count(["a", "c", "c"])
    assert d.to_dict() == {"a": 8, "b": 3, "c": 2}
    d.reduce_sum([("f", 0.5), ("f", 1), ("a", 2**70)])
    assert d["f"] == 1.5 and d["a"] == 8 + 2**70
    d.reduce_sum([("big", 2**62), ("big", 2**62), ("big", 2**62)])
    assert d["big"] == 3 * 2**62
    d.reduce([("l", [1]), ("l", [2]), ("m", "x")], lambda a, b: a + b)
    assert d["l"] == [1, 2] and d["m"] == "x"
    d.reduce([("l", [3])], fn=lambda a, b: a + b)
    assert d["l"] == [1, 2, 3]
    with pytest.raises(ValueError):
        d.reduce_sum([("a", 1, 2)])
    with pytest.raises(TypeError):
        d.reduce_sum([("a", "x")])
    with pytest.raises(TypeError):
        d.reduce([], 3)
    with pytest.raises(TypeError):
        d.reduce_count(5)


def test_randomized_differential_against_dict():
    rnd = random.Random(7)
    d, model = AtomicDict(), {}
    keys = [*range(40), *(f"k{i}" for i in range(40)), (1, 2), 2.5, None, b"b"]
    for _ in range(6000):
        k = rnd.choice(keys)
        op = rnd.randrange(9)
        v = rnd.randrange(1000)
        if op == 0:
            d[k] = v
            model[k] = v
        elif op == 1:
            assert d.get(k) == model.get(k)
        elif op == 2:
            assert d.pop(k, "none") == model.pop(k, "none")
        elif op == 3:
            assert d.setdefault(k, v) == model.setdefault(k, v)
        elif op == 4:
            assert (k in d) == (k in model)
        elif op == 5:
            got = d.update(k, lambda x: (x or 0) + 1)
            model[k] = (model.get(k) or 0) + 1
            assert got == model[k]
        elif op == 6:
            d.reduce_sum([(k, v)])
            model[k] = model.get(k, 0) + v if isinstance(model.get(k, 0), int) else v
            if not isinstance(d[k], int):
                model[k] = d[k]
        elif op == 7:
            if k in model:
                assert d[k] == model[k]
            else:
                with pytest.raises(KeyError):
                    d[k]
        else:
            if k in model:
                del d[k]
                del model[k]
        assert len(d) == len(model)
    assert d.to_dict() == model


# ---------------------------------------------------------------- bad input


def test_unhashable_keys_raise_typeerror():
    d = AtomicDict()
    for bad in ([], {}, set(), AtomicDict()):
        with pytest.raises(TypeError):
            d[bad] = 1
        with pytest.raises(TypeError):
            d[bad]
        with pytest.raises(TypeError):
            bad in d  # noqa: B015
        with pytest.raises(TypeError):
            d.update(bad, lambda v: v)
    with pytest.raises(TypeError):
        hash(d)
    assert len(d) == 0


class Boom(Exception):
    pass


class BadHash:
    def __hash__(self):
        raise Boom("hash")


class BadEq:
    def __init__(self, h=1):
        self.h = h

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        raise Boom("eq")


class EqByValue:
    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return hash(self.v)

    def __eq__(self, other):
        return isinstance(other, EqByValue) and other.v == self.v


def test_raising_hash_and_eq_propagate():
    d = AtomicDict()
    with pytest.raises(Boom):
        d[BadHash()] = 1
    a = BadEq()
    d[a] = 1
    assert d[a] == 1  # identity: no __eq__ needed
    with pytest.raises(Boom):
        d[BadEq()]
    with pytest.raises(Boom):
        d[BadEq()] = 2
    assert len(d) == 1 and d[a] == 1


def test_user_eq_runs_and_matches():
    d = AtomicDict()
    d[EqByValue(3)] = "three"
    assert d[EqByValue(3)] == "three"
    d[EqByValue(3)] = "again"
    assert len(d) == 1 and d[EqByValue(3)] == "again"
    assert d.pop(EqByValue(3)) == "again" and len(d) == 0


def test_eq_that_mutates_the_dict_does_not_deadlock():
    d = AtomicDict()

    class Sneaky:
        def __hash__(self):
            return 5

        def __eq__(self, other):
            d[object()] = 1  # re-enters the dict while a lookup is in flight
            return False

    d[Sneaky()] = 1
    d[Sneaky()] = 2
    assert d.get(Sneaky()) is None
    assert len(d) >= 2


def test_mutation_from_own_update_callback_raises():
    d = AtomicDict({"k": 0})

    def cb(v):
        d["k"] = 100  # would make the compare-and-set loop retry forever
        return v + 1

    with pytest.raises(RuntimeError, match="inside its own update"):
        d.update("k", cb)
    with pytest.raises(RuntimeError):
        d.reduce([("k", 1)], lambda a, b: d.pop("k"))
    assert d["k"] == 0

    # reading, and mutating another dict, are fine
    other = AtomicDict()
    assert d.update("k", lambda v: v + d.get("k") + len(other.update("x", lambda _: "xy"))) == 2
    assert other["x"] == "xy"


# ---------------------------------------------------------------- cross-interpreter


def test_refused_across_interpreters(interp):
    d = AtomicDict({"a": 1})
    with pytest.raises(NotShareableError):
        interp.prepare_main(d=d)
    q = Queue()
    with pytest.raises(NotShareableError):
        q.put(d)
    with pytest.raises(TypeError):
        pickle.dumps(d)
    assert d["a"] == 1


def test_usable_inside_a_subinterpreter(interp):
    interp.exec(
        "from crossinterp import AtomicDict\n"
        "d = AtomicDict()\n"
        "d.reduce_count('a b a'.split())\n"
        "assert d.to_dict() == {'a': 2, 'b': 1}, d\n"
    )


# ---------------------------------------------------------------- lifetime


class Counted:
    released = 0
    lock = threading.Lock()

    def __del__(self):
        with Counted.lock:
            Counted.released += 1


def test_every_value_released_exactly_once():
    Counted.released = 0
    d = AtomicDict()
    for i in range(200):
        d[i] = Counted()
    for i in range(50):
        d[i] = Counted()  # replaces: the old one is released
    assert Counted.released == 50
    del d[60]
    assert Counted.released == 51
    d.clear()
    assert Counted.released == 250
    d2 = AtomicDict({i: Counted() for i in range(30)})
    del d2
    assert Counted.released == 280


def test_cycles_are_collected():
    Counted.released = 0
    d = AtomicDict()
    d["self"] = d
    d["c"] = Counted()
    del d
    gc.collect()
    assert Counted.released == 1


# ---------------------------------------------------------------- threads


def test_concurrent_updates_have_exact_totals():
    d = AtomicDict()
    n, keys = 2000, [f"k{i}" for i in range(8)]

    def work(t):
        for i in range(n):
            d.update(keys[(i + t) % 8], lambda v: v + 1, 0)

    run_threads(4, work)
    assert sum(d.values()) == 4 * n and len(d) == 8


def test_concurrent_reduce_count_exact():
    words = [f"w{i % 37}" for i in range(3000)]
    d = AtomicDict()
    run_threads(4, lambda t: [d.reduce_count(words[j : j + 500]) for j in range(0, 3000, 500)])
    assert sum(d.values()) == 4 * 3000
    assert d["w0"] == 4 * sum(1 for w in words if w == "w0")


def test_reduce_count_of_keys_in_every_shard_matches_counter_across_threads():
    # More distinct keys than one hold of a shard's lock takes (32 per shard
    # of 64): the merge goes shard by shard in chunks, from a start that
    # differs per thread and per call.
    words = [f"k{(i * 7919) % 6000}" for i in range(24000)]
    d = AtomicDict()
    run_threads(
        4, lambda t: [d.reduce_count(words[j : j + 4096]) for j in range(0, len(words), 4096)]
    )
    want = collections.Counter(words)
    assert d.to_dict() == {k: 4 * c for k, c in want.items()}


class _Collide:
    """Equal by name, all of one hash: compared with ``==`` outside the lock."""

    def __init__(self, name):
        self.name = name

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, _Collide) and other.name == self.name


def test_reduce_count_keys_the_lock_cannot_finish():
    big = 2**63 - 1
    d = AtomicDict({_Collide("a"): 1, "f": 0.5, "big": big, "s": "x", 1: 1})
    # Equal but distinct objects of an unplain class (the per-key path),
    # a float, a sum past i64, and an equal int key given as a bool.
    d.reduce_count([_Collide("a"), _Collide("a"), _Collide("b"), "f", "big", "big", True])
    assert d[_Collide("a")] == 3 and d[_Collide("b")] == 1
    assert d["f"] == 1.5 and d["big"] == big + 2 and d[1] == 2
    with pytest.raises(TypeError):
        d.reduce_count(["s"])
    assert d["s"] == "x"


def test_compare_and_set_counter_across_threads():
    d = AtomicDict({"c": 0})

    def work(t):
        done = 0
        while done < 500:
            cur = d["c"]
            if d.compare_and_set("c", cur, cur + 1):
                done += 1

    run_threads(3, work)
    assert d["c"] == 1500


def test_insert_delete_while_iterating_never_crashes():
    d = AtomicDict({i: i for i in range(200)})
    stop = threading.Event()

    def mutate(t):
        rnd = random.Random(t)
        for _ in range(5000):
            k = rnd.randrange(400)
            if rnd.random() < 0.5:
                d[k] = k
            else:
                d.pop(k, None)
        stop.set()

    def iterate():
        while not stop.is_set():
            for k in d:
                pass
            for k, v in d.items():
                assert k == v
            len(d)
            d.to_dict()

    it = threading.Thread(target=iterate)
    it.start()
    try:
        run_threads(2, mutate)
    finally:
        stop.set()
        it.join()
    assert len(d) == len(d.keys())


def test_values_released_once_under_concurrency():
    Counted.released = 0
    d = AtomicDict()

    def work(t):
        for i in range(1000):
            d[i % 50] = Counted()

    run_threads(3, work)
    assert Counted.released == 3000 - 50
    d.clear()
    assert Counted.released == 3000


def test_colliding_user_keys_under_threads():
    d = AtomicDict()

    def work(t):
        for i in range(300):
            k = EqByValue(i % 20)  # all EqByValue(i) of one i are equal
            d.update(k, lambda v: v + 1, 0)

    run_threads(3, work)
    assert len(d) == 20 and sum(d.values()) == 900


@pytest.mark.skipif(not FREE_THREADED, reason="the GIL serialises the threads")
def test_gil_stays_disabled():
    assert not sys._is_gil_enabled()


def test_hot_shard_contention_with_gc_pauses():
    # Writers and readers on a few hot keys while another thread forces
    # collections (a stop-the-world pause on 3.13t; the GIL hand-off on GIL
    # builds): waiters must detach, the GC only try-locks shards.
    d = AtomicDict({i: [i] for i in range(4)})
    stop = threading.Event()

    def collector():
        while not stop.is_set():
            gc.collect()
            time.sleep(0.001)

    def work(t):
        for i in range(600):
            k = i % 4
            if t % 2:
                d[k] = [k]
            else:
                assert d[k] == [k]

    c = threading.Thread(target=collector)
    c.start()
    try:
        run_threads(4, work)
    finally:
        stop.set()
        c.join()
    assert d.to_dict() == {i: [i] for i in range(4)}


@pytest.mark.skipif(not LARGE, reason="long stress run: CROSSINTERP_LARGE=1")
def test_long_mixed_stress():
    # Every operation, user-defined and plain keys, from 4 threads, with GC
    # pauses, for a few seconds: no crash, no deadlock, exact counters, and
    # every value released exactly once.
    Counted.released = 0
    made, updates, reduces = [0] * 4, [0] * 4, [0] * 4
    d = AtomicDict()
    stop = threading.Event()
    deadline = time.monotonic() + 8

    def collector():
        while not stop.is_set():
            gc.collect()
            time.sleep(0.01)

    def work(t):
        rnd = random.Random(t)
        while time.monotonic() < deadline:
            k = rnd.choice(
                (rnd.randrange(64), EqByValue(rnd.randrange(64)), f"s{rnd.randrange(64)}")
            )
            op = rnd.randrange(8)
            if op == 0:
                d[k] = Counted()
                made[t] += 1
            elif op == 1:
                d.pop(k, None)
            elif op == 2:
                d.get(k)
            elif op == 3:
                d.update(("n", t % 2), lambda v: v + 1, 0)
                updates[t] += 1
            elif op == 4:
                d.reduce_count([("c", 0), ("c", 1)])
                reduces[t] += 1
            elif op == 5:
                for _ in d.items():
                    pass
            elif op == 6:
                d.setdefault(k, 0)
            else:
                d.compare_and_set(k, None, 0)

    c = threading.Thread(target=collector)
    c.start()
    try:
        run_threads(4, work)
    finally:
        stop.set()
        c.join()
    assert d.get(("n", 0), 0) + d.get(("n", 1), 0) == sum(updates)
    assert d[("c", 0)] == d[("c", 1)] == sum(reduces)
    d.clear()
    gc.collect()
    assert Counted.released == sum(made)
