"""AtomicInt / AtomicBool: owner-free atomics shared by threads and interpreters."""

import operator
import threading

import helpers
import pytest

from crossinterp import AtomicBool, AtomicInt, interpreters

MAX = 2**63 - 1
MIN = -(2**63)


def test_int_api():
    a = AtomicInt(5)
    assert a.get() == 5 and int(a) == 5 and operator.index(a) == 5
    assert a.add(3) == 8 and a.sub() == 7
    assert a.fetch_add(2) == 7 and a.fetch_sub(4) == 9 and a.get() == 5
    assert a.inc() == 6 and a.dec() == 5
    assert a.get_and_set(10) == 5
    assert a.compare_and_set(10, 11) and not a.compare_and_set(10, 12)
    assert a.update(lambda v: v * 2) == 22
    a.set(-3)
    assert repr(a) == "AtomicInt(-3)" and bool(a) and not AtomicInt()
    assert AtomicInt(value=7).get() == 7


def test_inplace_ops_are_atomic_and_keep_identity():
    a = AtomicInt()
    b = a
    a += 5
    a -= 2
    assert a is b and a.get() == 3


def test_comparisons():
    a = AtomicInt(3)
    assert a == 3 and a != 4 and a < 4 and a <= 3 and a > 2 and a >= 3
    assert a == AtomicInt(3) and a < AtomicInt(10)
    assert a == 3.0  # compared as the int it holds
    assert (a == "3") is False
    with pytest.raises(TypeError):
        hash(a)


def test_overflow_leaves_value_unchanged():
    a = AtomicInt(MAX)
    with pytest.raises(OverflowError):
        a.inc()
    with pytest.raises(OverflowError):
        a += 1
    assert a.get() == MAX
    b = AtomicInt(MIN)
    with pytest.raises(OverflowError):
        b.fetch_sub(1)
    assert b.get() == MIN
    with pytest.raises(OverflowError):
        AtomicInt(2**63)
    with pytest.raises(OverflowError):
        b.update(lambda v: v - 1)
    assert b.get() == MIN


def test_values_above_2_62_and_overflow_from_threads():
    # Above 2**62 the value is kept aside (the fast add's guard): every
    # operation still sees it, and adds from several threads near the bound
    # succeed exactly as often as there is room.
    a = AtomicInt(2**62 - 1)
    assert a.inc() == 2**62 and a.inc() == 2**62 + 1 and a.get() == 2**62 + 1
    assert a.add(2**24) == 2**62 + 1 + 2**24 and a.sub(2**24 + 2) == 2**62 - 1
    assert a.compare_and_set(2**62 - 1, MAX - 1) and a == MAX - 1 and int(a) == MAX - 1
    assert a.update(lambda v: v - 5) == MAX - 6 and repr(a) == f"AtomicInt({MAX - 6})"
    room = 2_000
    a.set(MAX - room)
    oks = []
    errors = []

    def adder():
        mine = 0
        for _ in range(1_000):
            try:
                a.inc()
                mine += 1
            except OverflowError:
                errors.append(1)
        oks.append(mine)

    ts = [threading.Thread(target=adder) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(oks) == room and len(errors) == 4_000 - room and a.get() == MAX
    assert a.get_and_set(0) == MAX and a.inc() == 1


def test_bad_input():
    with pytest.raises(TypeError):
        AtomicInt("1")
    with pytest.raises(TypeError):
        AtomicInt(True)
    with pytest.raises(TypeError):
        AtomicInt(1.5)
    a = AtomicInt()
    with pytest.raises(TypeError):
        a.add(1.0)
    with pytest.raises(TypeError):
        a.set(None)
    with pytest.raises(TypeError):
        a.update(42)
    with pytest.raises(TypeError):
        a.update(lambda v: "x")
    with pytest.raises(ZeroDivisionError):
        a.update(lambda v: 1 // 0)
    assert a.get() == 0
    with pytest.raises(TypeError):
        a.add(1, 2)


def test_update_retries_under_contention():
    a = AtomicInt()
    n = 2000

    def work():
        for _ in range(n):
            a.update(lambda v: v + 1)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert a.get() == 4 * n


def test_no_lost_increments_across_threads():
    a = AtomicInt()
    n = 20000

    def work():
        for _ in range(n):
            a.inc()

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert a.get() == 4 * n


def test_same_counter_across_interpreters():
    a = AtomicInt()
    its = [interpreters.create() for _ in range(3)]
    try:
        results = []
        ts = [
            threading.Thread(target=lambda it=it: results.append(it.call(helpers.bump, a, 5000)))
            for it in its
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert a.get() == 15000
        assert interpreters.is_shareable(a) and interpreters.is_shareable(AtomicBool())
        its[0].prepare_main(c=a)
        its[0].exec("c += 100")
        assert a.get() == 15100
    finally:
        for it in its:
            it.close()


def test_counter_outlives_its_creator():
    it = interpreters.create()
    it.exec("from crossinterp import AtomicInt; c = AtomicInt(41)")
    c = it.call(helpers.main_eval, "c")
    it.close()
    assert c.inc() == 42


def test_bool_api():
    f = AtomicBool()
    assert not f and f.get() is False
    f.set(1)
    assert f.get() is True and repr(f) == "AtomicBool(True)"
    assert f.toggle() is False and f.get() is False
    assert f.get_and_set(True) is False
    assert f.compare_and_set(True, False) and not f.compare_and_set(True, False)
    assert AtomicBool(value=True)
    with pytest.raises(TypeError):
        hash(f)


def test_bool_across_interpreters(interp):
    f = AtomicBool()
    interp.prepare_main(f=f)
    interp.exec("f.set(True)")
    assert f.get() is True


def test_atomic_flag_is_atomic_bool():
    from crossinterp import AtomicBool, AtomicFlag

    assert AtomicFlag is AtomicBool
    f = AtomicFlag(False)
    assert f.compare_and_set(False, True) and f.get() is True


def test_int_arguments_at_the_digit_boundaries():
    # Small ints are read inline (one 30-bit digit), larger ones through the
    # C API: both sides of every boundary, both signs, and an int subclass.
    class Sub(int):
        pass

    edges = [0, 1, -1, 255, 256, -5, -6, 2**30 - 1, 2**30, 2**31, 2**62, 2**63 - 1]
    for v in edges + [-e for e in edges] + [-(2**63)]:
        a = AtomicInt(0)
        assert a.add(v) == v and a.get() == v
        assert AtomicInt(v).get() == v
        a.set(v)
        assert a.sub(0) == v
        assert AtomicInt(0).add(Sub(v)) == v
