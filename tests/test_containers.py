"""Native copies of containers (issue 12 part 3): list, dict, set, frozenset,
bytearray, complex and any nesting of them cross without pickle, keeping
shared substructure and cycles, at any depth, on every path (call,
prepare_main, Queue, Channel)."""

import collections
import math
import sys
import threading
import time

import helpers
import pytest

from crossinterp import (
    AtomicInt,
    NotShareableError,
    SharedBuffer,
    _native,
    channels,
    interpreters,
    queues,
)

try:  # the stdlib's answer, where the stdlib has one
    import _interpreters as _stdlib_interpreters
except ImportError:  # pragma: no cover - every supported build has it
    _stdlib_interpreters = None

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()

SAMPLES = [
    [],
    [1, 2.5, "x", b"y", None, True, 2**100, -(2**70)],
    {},
    {"b": 1, "a": [1, 2], 3: {"x": None}},
    set(),
    {1, "two", (3, 4), frozenset({5})},
    frozenset(),
    frozenset({1, (2, 3), frozenset({"x"})}),
    bytearray(),
    bytearray(b"\x00abc\xff" * 100),
    1 + 2j,
    complex(-0.0, float("inf")),
    ([1], {"k": (2, [3, {4}])}),
    {(1, 2): [3], frozenset({4}): {5: 6}},
    [[[[[]]]]],
    {"nested": [{"deep": [bytearray(b"z"), 3j, frozenset({(1, (2, 3))})]}]},
    ("x" * 1000, ["\udc80 lone surrogate", "é"]),
]


def _q():
    return queues.create()


def _through_queue(obj):
    q = _q()
    q.put(obj)
    return q.get(timeout=10)


def _ids(value):
    return [repr(v)[:40] for v in value]


@pytest.mark.parametrize("obj", SAMPLES, ids=_ids(SAMPLES))
def test_round_trip_queue_same_interpreter(obj):
    got = _through_queue(obj)
    assert got == obj and type(got) is type(obj)
    if isinstance(obj, (list, dict, set, bytearray)):
        assert got is not obj  # a copy, not the object


@pytest.mark.parametrize("obj", SAMPLES, ids=_ids(SAMPLES))
def test_round_trip_call(interp, obj):
    # There and back: the argument crosses in, the result crosses out.
    got = interp.call(helpers.identity, obj)
    assert got == obj and type(got) is type(obj)
    if not isinstance(obj, (set, frozenset)):
        # A set's iteration order (hence repr) depends on its insertion
        # history when hashes collide: a rebuilt set may list the same
        # members in another order.
        assert interp.call(repr, obj) == repr(obj)


def test_round_trip_prepare_main(interp):
    data = {"l": [1, [2]], "d": {"k": {1, 2}}, "b": bytearray(b"ab"), "c": 3j, "f": frozenset({1})}
    interp.prepare_main(**data)
    for name, value in data.items():
        assert interp.call(helpers.main_eval, name) == value
        assert interp.call(helpers.main_eval, f"type({name}).__name__") == type(value).__name__


def test_round_trip_queue_other_interpreter(interp):
    q_in, q_out = _q(), _q()
    obj = {"a": [1, {2, 3}], "b": (bytearray(b"x"), [4j])}
    q_in.put(obj)
    interp.call(helpers.put_back, q_in, q_out)
    assert q_out.get(timeout=10) == obj


def test_round_trip_channel(interp):
    ch = channels.create()
    obj = [{"k": [1, 2]}, {3}, frozenset({4}), bytearray(b"5"), 6j]
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", interp.call(helpers.recv_one, ch)))
    t.start()
    ch.send(obj, timeout=60)
    t.join(60)
    assert out["v"] == obj


def test_dict_key_order_kept():
    d = {k: i for i, k in enumerate(["z", "a", "m", 3, (1,), frozenset()])}
    assert list(_through_queue(d)) == list(d)


def test_subclasses_keep_their_type(interp):
    for obj in [
        helpers.MyList([1, [2]]),
        collections.OrderedDict(b=1, a=2),
        collections.defaultdict(list, a=[1]),
        collections.Counter("abca"),
        helpers.MyInt(3),
    ]:
        got = _through_queue(obj)
        assert type(got) is type(obj) and got == obj
    assert type(interp.call(helpers.identity, collections.OrderedDict(a=1))) is collections.OrderedDict
    assert interp.call(helpers.main_eval, "1") == 1
    assert type(interp.call(helpers.identity, [helpers.MyList()])[0]) is helpers.MyList


def test_complex_special_values():
    got = _through_queue([complex(float("nan"), -0.0), complex(0.0, -0.0)])
    assert math.isnan(got[0].real) and math.copysign(1, got[0].imag) == -1
    assert math.copysign(1, got[1].imag) == -1


def test_native_types_inside_containers(interp):
    q = _q()
    counter = AtomicInt(5)
    buf = SharedBuffer(4)
    interp.prepare_main(stuff={"q": q, "n": [counter], "b": (buf,)})
    interp.exec("stuff['q'].put(stuff['n'][0].add(1))\nmemoryview(stuff['b'][0])[0] = 9")
    assert q.get(timeout=10) == 6
    assert counter.get() == 6
    assert memoryview(buf)[0] == 9


def test_shared_substructure_keeps_identity(interp):
    a = [1, 2]
    got = _through_queue([a, a, {"x": a}])
    assert got[0] is got[1] is got[2]["x"]
    t = (1, [2])
    got = _through_queue([t, t])
    assert got[0] is got[1]
    assert interp.call(helpers.shared_in_receiver, [a, a, None]) == (True, "list")
    assert interp.call(helpers.shared_in_receiver, [{1}, {1}, None]) == (False, "set")  # equal is not same


def test_dag_crosses_in_linear_time(interp):
    for make in (lambda x: [x, x], lambda x: (x, x), lambda x: {"a": x, "b": x}):
        x = []
        for _ in range(30):  # 2**30 paths: duplicating would never end
            x = make(x)
        start = time.monotonic()
        got = _through_queue(x)
        back = interp.call(helpers.identity, x)
        assert time.monotonic() - start < 30  # generous: the machine is shared
        for r in (got, back):
            for _ in range(30):
                items = list(r.values()) if isinstance(r, dict) else list(r)
                assert items[0] is items[1]
                r = items[0]
            assert r == []


def test_cycles_are_kept(interp):
    lst = [1]
    lst.append(lst)
    got = _through_queue(lst)
    assert got[1] is got and got[0] == 1
    assert interp.call(helpers.self_cycle_in_receiver, lst)

    d = {"a": 1}
    d["self"] = d
    got = _through_queue(d)
    assert got["self"] is got

    # through a tuple, entered at the list: native
    lst2 = []
    lst2.append((lst2, 1))
    got = _through_queue(lst2)
    assert got[0][0] is got and got[0][1] == 1

    # entered at the tuple: pickled as a whole, and pickle keeps it too
    t = ([],)
    t[0].append(t)
    got = _through_queue(t)
    assert type(got) is tuple and got[0][0] is got
    back = interp.call(helpers.identity, t)
    assert back[0][0] is back


def _deep(kind, n):
    x = 0
    for _ in range(n):
        x = {"list": lambda v: [v], "tuple": lambda v: (v,), "dict": lambda v: {"k": v}}[kind](x)
    return x


@pytest.mark.parametrize("kind", ["list", "tuple", "dict"])
def test_deep_nesting_crosses_from_a_thread(interp, kind):
    # Non-main threads have smaller stacks (3.13t especially): no recursion on
    # the C stack in either direction.
    x = _deep(kind, 100_000)
    out = {}

    def run():
        try:
            out["depth"] = interp.call(helpers.nesting_depth, x)
            out["queued"] = helpers.nesting_depth(_through_queue(x))
            out["back"] = helpers.nesting_depth(interp.call(helpers.identity, x))
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(300)
    assert "error" not in out, out.get("error")
    assert out == {"depth": 100_000, "queued": 100_000, "back": 100_000}


def test_deep_nesting_with_an_unshareable_leaf_gives_a_clear_error_or_crosses():
    # The whole value then takes the pickle path; pickle's recursion limit is
    # a clear error (never a crash: run in its own process).
    from conftest import run_script

    r = run_script(
        """
        import threading
        from crossinterp import queues, NotShareableError
        x = threading.Lock()
        for _ in range(100_000):
            x = [x]
        def run():
            try:
                queues.create().put(x)
            except (RecursionError, NotShareableError) as e:
                print("clear:", type(e).__name__, str(e)[:200])
            else:
                print("crossed")
        t = threading.Thread(target=run)
        t.start()
        t.join()
        """,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("clear: NotShareableError"), r.stdout  # a lock never pickles


def test_unshareable_item_falls_back_to_pickle_or_refuses(interp):
    got = _through_queue([1, helpers.MyInt(2), {"k": collections.OrderedDict(a=1)}])
    assert type(got[1]) is helpers.MyInt and type(got[2]["k"]) is collections.OrderedDict
    with pytest.raises(NotShareableError, match="list object is not shareable"):
        _q().put([1, threading.Lock()])
    with pytest.raises(NotShareableError):
        interp.prepare_main(x={"lock": [threading.Lock()]})


def test_strict_takes_what_is_shareable():
    q = _q()
    q.put((1, "a", (2,)), strict=True)
    assert q.get() == (1, "a", (2,))
    for obj in ([1], {"a": 1}, {1}, frozenset({1}), bytearray(b"x"), 1j, ([1],)):
        with pytest.raises(NotShareableError, match="strict=True"):
            q.put(obj, strict=True)
    assert q.qsize() == 0


def test_is_shareable_matches_the_stdlib():
    objs = [[1], {}, {1}, frozenset(), bytearray(b"x"), 1j, (1, [2]), (1, (2, "x")), (), None]
    mine = [interpreters.is_shareable(o) for o in objs]
    assert mine[:6] == [False] * 6 and mine[7:] == [True] * 3
    assert not _native.is_shareable((1, [2]))  # ours; the stdlib's may say yes (type only)
    if _stdlib_interpreters is not None:
        assert mine == [_stdlib_interpreters.is_shareable(o) for o in objs]


def test_pickle_containers_hook_gives_the_same_values():
    obj = {"a": [1, {2}], "b": (bytearray(b"x"), 3j)}
    _native._testing_pickle_containers(True)
    try:
        pickled = _through_queue(obj)
    finally:
        _native._testing_pickle_containers(False)
    assert pickled == obj == _through_queue(obj)


def test_key_whose_hash_fails_in_the_receiver_is_a_clear_error():
    # An object the receiver rebuilds by pickle whose __hash__ raises there:
    # the dict cannot be rebuilt, and get() says why.
    q = _q()
    q.put({helpers.HashFailsAfterLoad(): 1})
    with pytest.raises(Exception, match="no hash after loading"):
        q.get(timeout=10)
    q.put({1: [helpers.HashFailsAfterLoad()]})  # as a value: fine
    assert q.get(timeout=10)[1][0].loaded


def _cross_while_mutated(value, step, check, *more_steps):
    """Put and get ``value`` for 3 s while another thread calls ``step(i)``
    for i = 1, 2, ... (and one more thread each of ``more_steps`` likewise);
    ``check`` each copy; at least one round trip. A step that raises stops
    the run and fails the test with its error."""
    stop = threading.Event()
    errors = []

    def mutate(step):
        i = 0
        try:
            while not stop.is_set():
                i += 1
                step(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=mutate, args=(f,)) for f in (step, *more_steps)]
    for t in threads:
        t.start()
    q = _q()
    try:
        deadline = time.monotonic() + 3
        n = 0
        while time.monotonic() < deadline and not stop.is_set():
            q.put(value)
            check(q.get(timeout=10))
            n += 1
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert n > 0


def test_mutation_while_converting_does_not_crash():
    # Another thread mutates the containers while they are converted (on
    # free-threaded builds truly concurrently): every copy is a consistent
    # snapshot of int items, never a crash or a freed item.
    lst = list(range(1000))
    d = {i: i for i in range(1000)}
    s = set(range(1000))
    b = bytearray(1000)

    def step(i):
        lst.append(i)
        lst.pop(0)
        if i % 7 == 0:
            lst[:] = list(range(i % 1000))
        d[i] = i
        d.pop(i - 500, None)
        s.add(i)
        s.discard(i - 500)
        try:
            b.append(i % 256)
            if len(b) > 5000:
                del b[:4000]
        except BufferError:
            # Free-threaded 3.13 bytearrays lock nothing: they are copied
            # under a buffer export, which refuses a concurrent resize.
            if not (FREE_THREADED and sys.version_info < (3, 14)):
                raise

    def check(got):
        got_l, got_d, got_s, got_b = got
        assert all(type(x) is int for x in got_l)
        assert all(type(k) is int and k == v for k, v in got_d.items())
        assert all(type(x) is int for x in got_s)
        assert type(got_b) is bytearray

    _cross_while_mutated([lst, d, s, b], step, check)


def test_mutation_while_the_one_pass_encoding_stops_does_not_crash():
    # A list and a dict of ints and strs are encoded in one pass with no
    # snapshot (free-threaded: under the container's critical section); an
    # item of another kind, which another thread puts in and takes out
    # meanwhile, stops that pass midway and the container goes the general
    # way. Every copy is whole and of the kinds put in, never a crash.
    lst = list(range(500)) + [str(i) for i in range(500)]
    d = {str(i): i for i in range(1000)}

    def step(i):
        lst.insert(i % 1000, (i,) if i % 3 else str(i))
        del lst[(i * 7) % 1000]
        d[str(i % 1000)] = (i,) if i % 5 == 0 else i
        d.pop(str((i + 500) % 1000), None)
        d[str((i + 500) % 1000)] = i

    def check(got):
        got_l, got_d = got
        assert len(got_l) in (999, 1000, 1001)
        assert all(type(x) in (int, str, tuple) for x in got_l)
        assert all(type(k) is str and type(v) in (int, tuple) for k, v in got_d.items())

    _cross_while_mutated([lst, d], step, check)


def test_records_moved_and_changed_while_copied_in_place_keep_identity_and_state():
    # Records (small dicts and lists of leaves) that only their list refers
    # to are copied in place in its items. Another thread moves them between
    # two lists of one value and changes them meanwhile (free-threaded: truly
    # at once). A record met in both lists must arrive as one object, as it
    # was one in the sender, never as two; each arrives in a state it had.
    a = [{"id": i, "n": 0} for i in range(1000)] + [[i, 0] for i in range(1000, 2000)]
    b = []

    def step(i):
        src, dst = (a, b) if (i // 3000) % 2 == 0 else (b, a)
        if src:
            r = src.pop(i % len(src))
            if type(r) is dict:
                r["n"] = i
                r.pop("extra", None) if i % 2 else r.update(extra=i)
            else:
                r[1] = i
            dst.insert(i % (len(dst) + 1), r)

    def check(got):
        seen = {}
        for r in got[0] + got[1]:
            key = r["id"] if type(r) is dict else r[0]
            assert seen.setdefault(key, r) is r, f"record {key} arrived as two objects"
            if type(r) is dict:
                assert set(r) in ({"id", "n"}, {"id", "n", "extra"})
            else:
                assert len(r) == 2 and type(r[1]) is int
        assert set(seen) <= set(range(2000))

    _cross_while_mutated((a, b), step, check)


def test_strs_whose_utf8_another_thread_makes_do_not_let_their_dict_change_mid_copy():
    # Free-threaded CPython makes a str's UTF-8 under the str's own lock. A
    # dict of common leaves is copied in one pass under the dict's lock; had
    # that pass waited for a str's lock, the wait would have let go of the
    # dict's, and a thread clearing the dict meanwhile would have freed the
    # keys the pass was reading. Here one thread copies a dict of new
    # non-ASCII strs, one copies the same strs in a list (making their
    # UTF-8), and one keeps replacing the dict's contents with new strs:
    # every copy is whole, never a crash.
    d = {}

    def refill(n):
        # long ones: making their UTF-8 takes long enough that a thread
        # waiting for it parks (and only then lets go of its other locks)
        keys = [f"é{i}-{n}" + "x" * 20_000 for i in range(64)]
        d.clear()
        d.update(zip(keys, range(64)))

    keys_q = _q()

    def cross_keys(_):
        keys_q.put(list(d))
        assert all(type(k) is str and k.startswith("é") for k in keys_q.get(timeout=10))

    def check(got):
        assert all(type(k) is str and k.startswith("é") and type(v) is int for k, v in got.items())

    _cross_while_mutated(d, refill, check, cross_keys)


# The commonest leaves take an inline path (a compact int, a float, a str with
# its cached hash), a dict of them one pass with no snapshot; the edges of
# each must cross like any other value.
EDGE_INTS = [0, 1, -1, 127, 128, -128, -129, 2**30 - 1, 2**30, -(2**30) + 1, -(2**30),
             2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**200]
EDGE_FLOATS = [0.0, -0.0, 1.5, float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308]
EDGE_STRS = ["", "a", "é", "ab", "é€", "\U0001f600", "\U0001f600x", "x" * 100, "\udc80", "a\udc80b", "ÿ", "\x00\x00"]


@pytest.mark.parametrize("via", ["queue", "call"])
def test_leaf_fast_paths_keep_every_value_and_type(interp, via):
    value = [EDGE_INTS, EDGE_FLOATS + [float("nan")], EDGE_STRS, tuple(EDGE_INTS),
             {s: i for i, s in enumerate(EDGE_STRS)}, {i: s for i, s in zip(EDGE_INTS, EDGE_STRS)}]
    got = _through_queue(value) if via == "queue" else interp.call(helpers.identity, value)
    for a, b in zip(got, value):
        assert type(a) is type(b)
        assert repr(a) == repr(b)  # nan, -0.0 and key order included
    for x in got[0] + list(got[3]):
        assert type(x) is int


@pytest.mark.parametrize("via", ["queue", "call"])
def test_ascii_strs_are_rebuilt_whole_at_every_length(interp, via):
    # An ASCII str is rebuilt by allocating it at its size and copying its
    # bytes (no UTF-8 decoding): every length, in a list and as dict keys
    # (with their hashes), arrives equal, ASCII, of the same size in memory;
    # the one-character ones are the receiver's shared singletons.
    strs = ["".join(chr(32 + (i * 7 + k) % 95) for k in range(n)) for i, n in
            enumerate([*range(70), 127, 128, 255, 256, 4095, 10_000])]
    strs += ["\x00", "\x7f", "a\x00b", "x" * 100_000]
    value = [strs, {s: i for i, s in enumerate(strs)}, [s + "é" for s in strs[:5]]]
    got = _through_queue(value) if via == "queue" else interp.call(helpers.identity, value)
    assert got == value
    for a, b in zip(got[0], strs):
        assert type(a) is str and a.isascii() and len(a) == len(b)
        assert sys.getsizeof(a) == sys.getsizeof(b)
        if len(a) == 1:
            assert a is chr(ord(a))
    for i, s in enumerate(strs):
        assert got[1]["".join(list(s))] == i  # found by its hash
    assert all(not s.isascii() for s in got[2])


@pytest.mark.parametrize("via", ["queue", "call"])
def test_str_keyed_dicts_arrive_no_larger_than_their_originals(interp, via):
    # A dict of str keys is rebuilt with CPython's compact table for str
    # keys, as a literal or pickle builds it (a presized general table took
    # 42% more memory, and its lookups were slower); every size, as a node
    # of its own and as a record inside a list, in order and whole.
    for n in (0, 1, 5, 6, 10, 16, 17, 100, 1000, 10_000):
        d = {f"key{i}": i for i in range(n)}
        value = [d, [dict(d), dict(d)], {"x": d}]
        got = _through_queue(value) if via == "queue" else interp.call(helpers.identity, value)
        assert got == value
        for a in (got[0], got[1][0], got[1][1], got[2]["x"]):
            assert list(a) == list(d)
            assert sys.getsizeof(a) <= sys.getsizeof(d), n
    mixed = {**{f"k{i}": i for i in range(50)}, 7: "int key", (1, 2): "tuple key"}
    got = _through_queue([mixed, mixed])
    assert got == [mixed, mixed] and got[0] is got[1] and list(got[0]) == list(mixed)


@pytest.mark.parametrize("keys", ["hashed", "fresh"])
def test_str_keys_hash_in_the_receiver_as_their_equals(interp, keys):
    # A str crosses with the hash its sender had cached, and the receiver's
    # copy must hash as an equal str made there: dict and set lookups work.
    strs = EDGE_STRS + [f"key{i}" for i in range(50)]
    if keys == "hashed":
        d = {s: i for i, s in enumerate(strs)}  # every key hashed here
    else:
        d = dict.fromkeys(range(3))
        d["list"] = ["".join(list(s)) for s in strs]  # never hashed
    for s, h, h2 in interp.call(helpers.str_hashes, d if keys == "hashed" else d["list"]):
        assert h == h2 == hash(s)
    got = interp.call(helpers.identity, d)
    assert got == d
    if keys == "hashed":
        for i, s in enumerate(strs):
            assert got["".join(list(s))] == i


def test_dict_with_other_items_after_common_ones_keeps_its_order(interp):
    # The one-pass encoding of a dict stops at its first item that is not a
    # common leaf and the dict goes the general way: nothing lost, same order.
    q = queues.create()
    for tail in ([1, 2], b"bytes", None, True, 3j, q, SharedBuffer(8), {"x": 1}, 2**100, "\udc80"):
        d = {f"k{i}": i for i in range(100)}
        d["tail"] = tail
        d.update({f"z{i}": float(i) for i in range(10)})
        got = _through_queue(d)
        assert list(got) == list(d)
        for k, v in d.items():
            if k != "tail":
                assert got[k] == v and type(got[k]) is type(v)
        assert type(got["tail"]) is type(tail)


def test_large_containers_in_flight_and_reused_buffers_keep_their_values(interp):
    """Large containers' streams come from a small pool of kept buffers: more
    of them in flight at once than the pool keeps, then one after another
    (each reusing a buffer a larger or smaller value used before), flat and
    nested, in this interpreter and in another, each arrives whole."""

    def values(seed):
        return [
            {f"k{seed}-{i}": i * seed for i in range(6000)},
            list(range(seed, seed + 5000)),
            [[seed, i] for i in range(4500)],
            {i: str(i + seed) for i in range(9000)},
            list(range(seed, seed + 4096)),
        ]

    q = _q()
    batches = [values(s) for s in (1, 2, 3)]
    for batch in batches:  # 15 in flight at once
        for v in batch:
            q.put(v)
    for batch in batches:
        for v in batch:
            assert q.get(timeout=10) == v
    for seed in range(4, 12):  # one at a time: every buffer reused
        for v in values(seed):
            assert _through_queue(v) == v
    assert interp.call(helpers.identity, values(99)) == values(99)


# Rows and records (tuples; with the GIL, lists and dicts too) that only
# their container refers to are copied in place in their container's
# stream, with no node of their own: every value, type and order, and every
# identity a shared one has, must come out as before.
ROW_SHAPES = [
    [(i, f"n{i}", i * 0.5, None, True, False) for i in range(300)],
    [[i, f"n{i}"] for i in range(300)],
    [{"id": i, "name": f"n{i}", "score": i * 0.5, None: False} for i in range(300)],
    {f"k{i}": (i, i + 1) for i in range(300)},
    {f"k{i}": [i, {"x": i}] for i in range(300)},
    ((1, 2), [3, 4], {5: 6}, ((7,),), [[8]], [{9: (10,)}], ()),
    [(), [], {}, (None,), [True], {"": ""}],
    # items that are not inline leaves: the row goes the general way
    [(1, [2]), (3, b"x"), (4, 2**100), (5, "\udc80"), (6, 1j), [7, (8,)], {9: b"y"}, (10, 2**40)],
]


@pytest.mark.parametrize("via", ["queue", "call"])
@pytest.mark.parametrize("obj", ROW_SHAPES, ids=[f"shape{i}" for i in range(len(ROW_SHAPES))])
def test_rows_and_records_copied_in_place_keep_values_types_and_order(interp, via, obj):
    got = _through_queue(obj) if via == "queue" else interp.call(helpers.identity, obj)
    assert got == obj
    assert repr(got) == repr(obj)  # order and types, nested
    assert interp.call(repr, obj) == repr(obj)


def _row(*items):
    """A new tuple (equal constant tuples of one function are one object)."""
    return items


def test_rows_referred_to_twice_keep_their_identity(interp):
    t, l, d = _row(1, "a"), [2, "b"], {"c": 3}
    value = [t, _row(1, "a"), t, l, [2, "b"], l, d, {"c": 3}, d, (t, t), [l]]
    got = _through_queue(value)
    assert got == value
    assert got[0] is got[2] and got[0] is not got[1]
    assert got[3] is got[5] and got[3] is not got[4]
    assert got[6] is got[8] and got[6] is not got[7]
    assert got[9][0] is got[9][1] is got[0]
    assert got[10][0] is got[3]
    got[3].append("more")
    assert got[5][-1] == "more" and got[10][0][-1] == "more"
    assert interp.call(helpers.identities_in_receiver, [t, t, _row(1, "a"), l, l, [2, "b"], d, d]) == [
        0, 0, 2, 3, 3, 5, 6, 6]
    # a row held also by a variable here (two references) is not alone: it
    # keeps its node, and a copy of it is still an equal row
    row = _row(5, 6)
    assert _through_queue([row]) == [row]
    del row


def test_rows_in_a_dict_snapshot_and_a_set(interp):
    # A dict with other items than common leaves is read from a snapshot,
    # where a row alone has two references (the dict's and the snapshot's).
    value = {"rows": [(i, str(i)) for i in range(50)], "t": (1, 2), "b": b"bytes", "l": [3, 4]}
    assert _through_queue(value) == value
    s = {(i, str(i)) for i in range(50)}
    assert _through_queue(s) == s
    assert interp.call(helpers.identity, frozenset(s)) == frozenset(s)


def test_repeated_strs_cross_once_and_keep_every_value(interp):
    # A str that something else refers to too (a record's keys, a repeated
    # label) crosses once per container of 16 items or more and arrives as
    # one object there, as with pickle's memo; every value and order stays
    # as it was.
    k = "shared-key"  # referred to below many times
    records = [{"id": i, k: f"v{i}", "tag": "x"} for i in range(200)]
    got = _through_queue(records)
    assert got == records and repr(got) == repr(records)
    # The records are copied in place in the list's items: one str in the
    # receiver.
    keys = [next(kk for kk in r if kk == k) for r in got]
    assert all(kk is keys[0] for kk in keys)
    pad = list(range(20))
    assert interp.call(helpers.identities_in_receiver, [k, k, "other", k, *pad])[:4] == [0, 0, 2, 0]
    assert interp.call(helpers.identity, records) == records
    # An in-place row that names the str and then meets an item it cannot
    # hold (bytes) goes the general way: the str's first crossing went with
    # it, and the next rows must carry it again, not refer to it.
    rows = [row for _ in range(3)
            for row in ((k, b"x"), (k, 1), (k, 2), [k, b"y"], [k, 3], {k: b"z"}, {k: 4}, (k, (k, b"w")))]
    got = _through_queue(rows)
    assert got == rows and repr(got) == repr(rows)
    assert interp.call(helpers.identity, rows) == rows
    # In a dict read from a snapshot (an item that is not a common leaf)
    d = {k: 1, "b": b"bytes", "again": k, "rows": [(k, i) for i in range(20)], **dict.fromkeys(pad)}
    got = _through_queue(d)
    assert got == d and got["again"] is next(kk for kk in got if kk == k)
    # lone surrogates and large strs repeated
    s1, s2 = "\udc80" + k, "y" * 100_000
    v = [s1, s1, s2, s2, (s2, s1), {s2: s1}, *pad]
    assert _through_queue(v) == v
    assert interp.call(helpers.identity, v) == v
