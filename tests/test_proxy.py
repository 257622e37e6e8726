"""share(obj) and SharedObjectProxy: operations run in the owner, arguments and
results cross natively or as proxies, release runs in the owner, owner death."""

import gc
import operator
import threading
import time

import pytest
from conftest import LARGE

import crossinterp
from crossinterp import AtomicInt, SharedObjectProxy, interpreters, share
from crossinterp.queues import Queue


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_issue_example(interp, tmp_path):
    path = tmp_path / "run.log"
    log = open(path, "a")  # noqa: SIM115 - the point: an unshareable object
    cache = {}
    interp.prepare_main(log=share(log), cache=share(cache))
    interp.exec("log.write('hello\\n'); cache['k'] = cache.get('k', 0) + 1")
    assert cache["k"] == 1
    interp.exec("cache['k'] = cache.get('k', 0) + 1")
    assert cache == {"k": 2}
    log.close()
    assert path.read_text() == "hello\n"


def test_share_returns_shareable_objects_themselves():
    for obj in (None, True, 3, 2**80, 1.5, "s", b"b", (1, "x"), AtomicInt(1)):
        assert share(obj) is obj
    lst = [1]
    p = share(lst)
    assert isinstance(p, SharedObjectProxy)
    # Proxying a proxy: the same proxy (same target).
    assert share(p) is p
    assert crossinterp.proxy_owner(p) == interpreters.get_current().id
    assert crossinterp.proxy_owner(lst) is None


class Recorder:
    """Lives in the main interpreter; records where each operation ran."""

    def __init__(self):
        self.ran_in = []
        self.value = 10
        self.items = {"a": 1}

    def _here(self):
        self.ran_in.append(interpreters.get_current().id)

    def method(self, x, *, scale=1):
        self._here()
        return x * scale

    def __call__(self, *args, **kwargs):
        self._here()
        return (args, tuple(sorted(kwargs.items())))

    def __getitem__(self, k):
        self._here()
        return self.items[k]

    def __setitem__(self, k, v):
        self._here()
        self.items[k] = v

    def __delitem__(self, k):
        self._here()
        del self.items[k]

    def __len__(self):
        self._here()
        return len(self.items)

    def __contains__(self, k):
        self._here()
        return k in self.items

    def __iter__(self):
        self._here()
        return iter(sorted(self.items))

    def __repr__(self):
        self._here()
        return "<Recorder>"

    def __str__(self):
        self._here()
        return "recorder"

    def __bool__(self):
        self._here()
        return True

    def __hash__(self):
        self._here()
        return 1234

    def __eq__(self, other):
        self._here()
        return other == "same"

    def __lt__(self, other):
        self._here()
        return other > 0

    def __add__(self, other):
        self._here()
        return self.value + other

    def __radd__(self, other):
        self._here()
        return other + self.value + 1

    def __iadd__(self, other):
        self._here()
        self.value += other
        return self

    def __neg__(self):
        self._here()
        return -self.value

    def __enter__(self):
        self._here()
        return "entered"

    def __exit__(self, *exc):
        self._here()
        self.exited = exc[0] is not None
        return False


def test_every_operation_runs_in_the_owner(interp):
    rec = Recorder()
    interp.prepare_main(r=share(rec))
    interp.exec(
        """if True:
        assert r.value == 10                       # getattr
        r.value = 11                               # setattr
        r.extra = 1
        del r.extra                                # delattr
        assert not hasattr(r, 'extra')
        assert r.method(3, scale=2) == 6           # method call with kwargs
        assert r(1, 2, k=3) == ((1, 2), (('k', 3),))
        assert r['a'] == 1                         # getitem
        r['b'] = 2                                 # setitem
        del r['b']                                 # delitem
        assert len(r) == 1                         # len
        assert 'a' in r and 'z' not in r           # contains
        assert list(r) == ['a']                    # iter + next
        it = iter(r)
        assert next(it) == 'a'
        try:
            next(it)
        except StopIteration:
            pass
        else:
            raise AssertionError('no StopIteration')
        # repr says proxy, type and owner, then the owner's repr; str is the object's
        assert repr(r) == '<SharedObjectProxy of Recorder owned by interpreter 0: <Recorder>>'
        assert str(r) == 'recorder'
        assert bool(r) is True
        assert hash(r) == 1234
        assert (r == 'same') is True and (r == 'other') is False
        assert (r < 5) is True
        assert r + 1 == 12                          # binary op
        assert 1 + r == 13                          # reflected op
        assert -r == -11                            # unary op
        r += 4                                      # in-place op: the proxy rebinds to itself
        assert r.value == 15
        with r as entered:
            assert entered == 'entered'
        """
    )
    main_id = interpreters.get_current().id
    assert rec.value == 15
    assert rec.exited is False
    assert len(rec.ran_in) >= 20
    assert set(rec.ran_in) == {main_id}


def test_arguments_and_results_cross_natively_or_as_proxies(interp):
    store = []
    interp.prepare_main(store=share(store))
    interp.exec(
        """if True:
        from crossinterp import SharedObjectProxy
        mine = [1, 2]
        store.append(5)            # an int crosses as an int
        store.append(mine)         # the caller's list crosses as a proxy of it
        store.append((1, 'x'))     # a shareable tuple is copied
        got = store[1]
        assert got is mine          # back in its owner: the object itself
        assert isinstance(store[0], int)
        copy = store.copy()         # a method returning a list: a proxy
        assert isinstance(copy, SharedObjectProxy)
        assert len(copy) == 3
        """
    )
    assert store[0] == 5
    assert isinstance(store[1], SharedObjectProxy)
    assert crossinterp.proxy_owner(store[1]) == interp.id
    assert store[1] == [1, 2]  # compared in the sub-interpreter, which owns it
    store[1].append(3)  # runs in the sub-interpreter, on its list
    interp.exec("assert mine == [1, 2, 3]")
    assert store[2] == (1, "x")


class CustomError(Exception):
    pass


class Raiser:
    def key(self):
        return {}["missing"]

    def custom(self):
        raise CustomError("custom failure")

    def __getattr__(self, name):
        raise AttributeError(f"no attribute {name} here")


def test_exceptions_keep_builtin_types_else_execution_failed(interp):
    r = Raiser()
    interp.prepare_main(r=share(r))
    interp.exec(
        """if True:
        from crossinterp.interpreters import ExecutionFailed
        try:
            r.key()
        except KeyError as e:
            assert e.args == ('missing',), e.args
            assert any('Traceback' in n for n in e.__notes__), e.__notes__
        else:
            raise AssertionError('no KeyError')
        try:
            r.custom()
        except ExecutionFailed as e:
            assert e.excinfo.type.__name__ == 'CustomError'
            assert 'custom failure' in e.excinfo.formatted and 'Traceback' in e.excinfo.errdisplay
        else:
            raise AssertionError('no ExecutionFailed')
        try:
            r.anything          # the object's __getattr__ raises
        except AttributeError as e:
            assert 'no attribute anything here' in str(e)
        else:
            raise AssertionError('no AttributeError')
        assert not hasattr(r, 'nope')
        """
    )


def test_del_runs_in_the_owner_when_the_last_proxy_dies_elsewhere(interp):
    main_id = interpreters.get_current().id
    deleted_in = []

    class Tracked:
        def __del__(self):
            deleted_in.append(interpreters.get_current().id)

    interp.prepare_main(t=share(Tracked()))
    assert deleted_in == []
    interp.exec("del t")
    # The release was queued to us (the owner): it runs at our next entry
    # point or by the reaper, here, in the main interpreter.
    assert wait_until(lambda: (crossinterp.live_owners(), deleted_in)[1] != [])
    assert deleted_in == [main_id]


def test_del_runs_in_idle_owner_after_releasing_thread_exited():
    it = interpreters.create()
    try:
        q = Queue()
        deleted = AtomicInt(0)
        where = AtomicInt(-1)
        it.prepare_main(q=q, deleted=deleted, where=where)
        it.exec(
            """if True:
            from crossinterp import interpreters, share
            class Tracked:
                def __del__(self):
                    where.set(interpreters.get_current().id)
                    deleted.inc()
            import threading
            # Made by a thread that then exits: on free-threaded builds an
            # object's last decref from another thread is handed to the
            # thread that made it (biased reference counting), which would
            # otherwise be this interpreter's idle thread state.
            t = threading.Thread(target=lambda: q.put(share(Tracked())))
            t.start()
            t.join()
            """
        )

        def take_and_drop():
            p = q.get(timeout=5)
            assert isinstance(p, SharedObjectProxy)
            del p
            gc.collect()

        t = threading.Thread(target=take_and_drop)
        t.start()
        t.join()
        # The sub-interpreter is idle (nobody enters it): the reaper releases
        # the object there.
        assert wait_until(lambda: deleted.get() == 1)
        assert where.get() == it.id
    finally:
        it.close()
    assert deleted.get() == 1


def test_owner_death_makes_proxies_dead_and_releases_in_owner():
    it = interpreters.create()
    q = Queue()
    deleted = AtomicInt(0)
    it.prepare_main(q=q, deleted=deleted)
    it.exec(
        """if True:
        from crossinterp import share
        class Box:
            def __init__(self): self.items = [1, 2]
            def __del__(self): deleted.inc()
        q.put(share(Box()))
        """
    )
    p = q.get(timeout=5)
    assert p.items == [1, 2]
    it.close()
    # Released in the owner, at its finalization.
    assert deleted.get() == 1
    assert crossinterp._native.proxy_info(p) == (it.id, False)
    for op in (
        lambda p: p.items,
        lambda p: setattr(p, "x", 1),
        lambda p: p(),
        lambda p: p[0],
        lambda p: len(p),
        lambda p: 1 in p,
        lambda p: str(p),
        lambda p: hash(p),
        lambda p: p == 1,
        lambda p: p + 1,
        lambda p: iter(p),
        lambda p: bool(p),
    ):
        with pytest.raises(interpreters.InterpreterGoneError):
            op(p)
    # repr works on a dead proxy (what a debugger shows), and says it is dead
    assert repr(p) == f"<SharedObjectProxy of Box owned by interpreter {it.id} (gone)>"
    del p  # dropping a dead proxy is harmless
    gc.collect()


def _dead_proxies():
    """Proxies of a list, an iterator, an int and a context manager, a
    method proxy made before the close, and the closed owner's id."""
    it = interpreters.create()
    q = Queue()
    it.prepare_main(q=q)
    it.exec(
        """if True:
        import contextlib
        from crossinterp import share
        items = [1, 2, 3]
        q.put(share(items))
        q.put(share(iter([1, 2])))
        q.put(share(contextlib.nullcontext()))
        """
    )
    lst = q.get(timeout=5)
    iterator = q.get(timeout=5)
    cm = q.get(timeout=5)
    # Warm the stable-method cache while the owner is alive.
    lst.append(4)
    assert lst.index(4) == 3
    method = lst.append
    assert isinstance(method, crossinterp._native.SharedMethodProxy)
    it.close()
    return lst, iterator, cm, method, it.id


def test_dead_proxy_cached_method_read_raises():
    lst, _, _, method, iid = _dead_proxies()
    # `append` and `index` are in the stable-method cache: reading them
    # makes no trip to the owner, and must still raise.
    for name in ("append", "index", "pop"):
        with pytest.raises(interpreters.InterpreterGoneError, match=f"interpreter {iid}"):
            getattr(lst, name)
    # A method proxy made while the owner lived is dead too.
    assert crossinterp._native.proxy_info(method) == (iid, False)
    assert repr(method) == f"<SharedMethodProxy list.append owned by interpreter {iid} (gone)>"
    for op in (
        lambda: method(5),
        lambda: method.__name__,
        lambda: Queue().put(method),
    ):
        with pytest.raises(interpreters.InterpreterGoneError):
            op()


def test_every_operation_on_a_dead_proxy_raises_gone():
    lst, iterator, cm, _, _ = _dead_proxies()

    def inplace_add(p):
        p += [1]

    def with_block(p):
        with p:
            pass

    for p, op in (
        (lst, lambda p: str(p)),
        (lst, lambda p: p < [1]),
        (lst, lambda p: p != [1]),
        (lst, lambda p: delattr(p, "x")),
        (lst, lambda p: p.__class__),
        (lst, lambda p: p.__len__),
        (lst, lambda p: p.__setitem__),
        (lst, lambda p: p.__getitem__(0)),
        (lst, lambda p: p.__contains__(1)),
        (lst, lambda p: p.__iter__()),
        (lst, lambda p: p.__enter__()),
        (lst, lambda p: p.__exit__(None, None, None)),
        (lst, lambda p: p.__eq__(1)),
        (lst, lambda p: p.__hash__()),
        (lst, lambda p: p.__repr__()),
        (lst, lambda p: p.__bool__()),
        (lst, lambda p: p.__add__([1])),
        (lst, lambda p: operator.setitem(p, 0, 1)),
        (lst, lambda p: operator.delitem(p, 0)),
        (lst, lambda p: p * 2),
        (lst, lambda p: 2 * p),
        (lst, lambda p: [1] + p),
        (lst, lambda p: -p),
        (lst, lambda p: abs(p)),
        (lst, lambda p: ~p),
        (lst, lambda p: int(p)),
        (lst, lambda p: float(p)),
        (lst, lambda p: operator.index(p)),
        (lst, lambda p: p @ p),
        (lst, lambda p: divmod(p, 2)),
        (lst, lambda p: p**2),
        (lst, inplace_add),
        (lst, lambda p: list(p)),
        (iterator, lambda p: next(p)),
        (cm, with_block),
    ):
        with pytest.raises(interpreters.InterpreterGoneError):
            op(p)
    # A dead proxy may still be sent: it arrives as a dead proxy.
    q = Queue()
    q.put(lst)
    moved = q.get(timeout=5)
    assert crossinterp._native.proxy_info(moved) == (crossinterp.proxy_owner(lst), False)
    with pytest.raises(interpreters.InterpreterGoneError):
        _ = moved.append


def test_reentrant_chain_between_two_interpreters(interp):
    calls = []

    def main_side(x):
        calls.append(interpreters.get_current().id)
        return x + 1

    interp.prepare_main(main_side=share(main_side), q=Queue())
    interp.exec(
        """if True:
        from crossinterp import share
        def sub_side(f, x):
            # runs in the sub-interpreter; calls back into main
            return f(x) * 2
        sub_side_p = share(sub_side)
        q.put(sub_side_p)
        """
    )
    q = interp.call(_get_q)
    sub_side = q.get(timeout=5)
    # main -> sub (sub_side) -> main (main_side) -> back
    assert sub_side(share(main_side), 4) == 10
    assert calls == [interpreters.get_current().id]


def _get_q():
    import __main__

    return __main__.q


def test_runaway_recursion_through_proxies_raises_recursion_error(interp):
    def bounce(f, n):
        return f(f, n + 1)

    interp.prepare_main(bounce=share(bounce))
    interp.exec(
        """if True:
        from crossinterp import share
        def sub_bounce(f, n):
            return bounce(f, n + 1)
        try:
            bounce(share(sub_bounce), 0)
        except RecursionError:
            pass
        else:
            raise AssertionError('no RecursionError')
        """
    )


def test_proxies_are_not_picklable_but_cross_inside_tuples(interp):
    import pickle

    p = share([1])
    with pytest.raises(crossinterp.NotShareableError):
        pickle.dumps(p)
    interp.prepare_main(pair=(p, 2))
    interp.exec("pair[0].append(pair[1])")
    assert interp.call(len_of_main_pair) == 2


def len_of_main_pair():
    import __main__

    return len(__main__.pair[0])


def test_threading_local_in_owner_is_per_thread(interp):
    # One thread state per (OS thread, interpreter): a threading.local of the
    # owner sees each calling thread as itself, across calls.
    interp.exec(
        """if True:
        import threading
        from crossinterp import share
        tl = threading.local()
        def bump():
            tl.n = getattr(tl, 'n', 0) + 1
            return tl.n
        """
    )
    q = Queue()
    interp.prepare_main(q=q)
    interp.exec("q.put(share(bump))")
    bump = q.get(timeout=5)
    assert [bump() for _ in range(3)] == [1, 2, 3]
    got = []
    t = threading.Thread(target=lambda: got.extend(bump() for _ in range(2)))
    t.start()
    t.join()
    assert got == [1, 2]
    assert bump() == 4


def test_proxy_types_cannot_be_instantiated():
    for cls in (SharedObjectProxy, crossinterp.SharedMethodProxy):
        with pytest.raises(TypeError):
            cls()


@pytest.mark.parametrize("run", range(20 if LARGE else 2))
def test_shared_dict_and_list_from_four_interpreters_lose_nothing(run):
    d = {}
    lst = []
    n = 2000 if LARGE else 300
    its = [interpreters.create() for _ in range(4)]
    try:
        for k, it in enumerate(its):
            it.prepare_main(d=share(d), lst=share(lst), k=k, n=n)
        threads = [
            threading.Thread(
                target=it.exec,
                args=("for i in range(n):\n    d[(k, i)] = i\n    lst.append((k, i))",),
            )
            for it in its
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for it in its:
            it.close()
    assert len(d) == 4 * n
    assert sorted(lst) == sorted((k, i) for k in range(4) for i in range(n))


def test_atomic_ref_is_refused_alone_but_shared_through_a_proxy(interp):
    from crossinterp import AtomicRef

    ref = AtomicRef([1])
    with pytest.raises(crossinterp.NotShareableError, match="share"):
        interp.prepare_main(ref=ref)
    interp.prepare_main(ref=share(ref))
    interp.exec("ref.get().append(2); ref.set((3, 4))")
    assert ref.get() == (3, 4)
