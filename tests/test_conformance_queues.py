"""Conformance with the stdlib's PEP 734 API (issue 10, items 2.1, 2.6, 2.8,
2.9): ``Queue(id)`` attaches, negative ``maxsize``, ``queues.list_all()``;
``ExceptionInfo``'s fields and ``str``; ``prepare_main`` arguments; the
exception classes shared with ``concurrent.interpreters`` on 3.14+.

Where the stdlib exists (3.14+) the same operation is checked on both."""

import gc
import pickle
import queue as stdlib_queue
import sys
import threading

import pytest

from crossinterp import interpreters, queues

HAS_STDLIB = sys.version_info >= (3, 14)
if HAS_STDLIB:
    import concurrent.interpreters as std
    from concurrent.interpreters import _queues as stdq

needs_stdlib = pytest.mark.skipif(not HAS_STDLIB, reason="concurrent.interpreters is 3.14+")


# --- 2.1: Queue(id), negative maxsize, list_all ---------------------------


def test_queue_of_id_is_the_same_queue_and_object():
    q = queues.create(3)
    same = queues.Queue(q.id)
    assert same is q
    same.put("x")
    assert q.get_nowait() == "x"
    assert same.maxsize == 3


def test_queue_of_id_in_another_interpreter_attaches(interp):
    q = queues.create()
    interp.exec(
        "from crossinterp import queues\n"
        f"q = queues.Queue({q.id})\n"
        f"assert queues.Queue({q.id}) is q\n"
        "q.put(b'spam')\n"
        "q.put(q.maxsize)\n"
    )
    assert q.get(timeout=5) == b"spam"
    assert q.get(timeout=5) == 0
    assert q.qsize() == 0


def test_queue_crossing_back_is_the_same_object(interp):
    q, inner = queues.create(), queues.create()
    q.put(inner)
    assert q.get_nowait() is inner
    interp.prepare_main(q=q)
    interp.exec("q.put(q)")
    assert q.get(timeout=5) is q


def test_queue_arriving_after_its_object_died_gets_a_new_one_and_no_stale_entry(interp):
    # The native side reads the interning table directly; an entry whose
    # object died must neither come back nor stay behind.
    carrier = queues.create()
    q = queues.create()
    qid = q.id
    interp.prepare_main(q=q)  # the subinterpreter keeps the queue alive
    del q
    gc.collect()
    dead = queues._known_refs.get(qid)
    assert dead is None or dead() is None
    interp.exec("q.put(q)")
    interp.prepare_main(c=carrier)
    interp.exec("c.put(q)")
    back = carrier.get(timeout=5)
    assert back.id == qid
    assert queues.Queue(qid) is back
    assert back.get(timeout=5) is back
    assert queues._known_refs[qid]() is back


def test_queue_interning_table_drops_dead_entries(interp):
    # Entries of dead queue objects are swept as the table grows: it stays
    # within a small multiple of the live objects, whichever side inserts.
    alive = [queues.create() for _ in range(10)]
    carrier = queues.create()
    interp.prepare_main(c=carrier)
    interp.exec("from crossinterp import queues\nkeep = []")
    for _ in range(20):
        # Queues made in the subinterpreter arrive here one by one (native
        # inserts) and die here at once.
        interp.exec("keep[:] = [queues.create() for _ in range(50)]\nfor q in keep: c.put(q)")
        got = [carrier.get(timeout=5) for _ in range(50)]
        assert len({id(g) for g in got}) == 50
        del got
        gc.collect()
    for _ in range(200):
        queues.create()  # Python-side inserts, dying at once
    gc.collect()
    live = sum(1 for r in list(queues._known_refs.values()) if r() is not None)
    assert live >= len(alive)
    assert len(queues._known_refs) <= 2 * max(64, live) + 64
    assert all(queues.Queue(q.id) is q for q in alive)


def test_queue_interning_under_threads_gives_one_object_per_id(interp):
    # Free-threaded builds: threads that receive the same queue at once
    # agree on one object.
    q = queues.create()
    qid = q.id
    interp.prepare_main(q=q)
    carrier = queues.create()
    interp.prepare_main(c=carrier)
    del q
    gc.collect()
    interp.exec("for _ in range(8): c.put(q)")
    got = []
    barrier = threading.Barrier(4)

    def take():
        barrier.wait()
        for _ in range(2):
            got.append(carrier.get(timeout=5))

    ts = [threading.Thread(target=take) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(got) == 8
    assert all(g is got[0] for g in got)
    assert got[0].id == qid


def test_queue_of_unknown_or_bad_id():
    with pytest.raises(queues.QueueNotFoundError, match="1000000"):
        queues.Queue(1_000_000)
    with pytest.raises(TypeError, match="id must be an int"):
        queues.Queue("1")
    with pytest.raises(TypeError, match="id must be an int"):
        queues.Queue(1.0)
    with pytest.raises(ValueError):
        queues.Queue(-1)
    with pytest.raises(OverflowError):
        queues.Queue(2**70)
    with pytest.raises(TypeError):
        queues.Queue(queues.create().id, maxsize=3)  # attach or create, not both


def test_queue_of_dead_id_is_not_found():
    q = queues.create()
    qid = q.id
    del q
    gc.collect()
    with pytest.raises(queues.QueueNotFoundError):
        queues.Queue(qid)


@needs_stdlib
def test_queue_of_id_matches_stdlib():
    for mod in (stdq, queues):
        q = mod.create()
        assert mod.Queue(q.id) is q
        with pytest.raises(mod.QueueNotFoundError):
            mod.Queue(1_000_000)
        for bad in ("1", 1.0):  # (-1, 2**70: the stdlib's __del__ complains)
            with pytest.raises(TypeError):
                mod.Queue(bad)


def test_pickle_round_trip_is_the_same_queue(interp):
    q = queues.create()
    assert pickle.loads(pickle.dumps(q)) is q
    data = pickle.dumps(q)
    interp.prepare_main(data=data)
    interp.exec("import pickle\npickle.loads(data).put('from there')")
    assert q.get(timeout=5) == "from there"


def test_negative_maxsize_is_unbounded():
    for size in (-1, -10):
        q = queues.create(size)
        assert q.maxsize == size
        for i in range(1000):
            q.put_nowait(i)
        assert not q.full() and q.qsize() == 1000


@needs_stdlib
def test_maxsize_matches_stdlib():
    for size in (0, 3, -1, -10, True):
        assert queues.create(size).maxsize == stdq.create(size).maxsize
    for mod in (stdq, queues):
        for bad in ("1", 1.0):
            with pytest.raises(TypeError):
                mod.create(bad)


def test_create_keeps_the_unbound_policy_visible_by_id():
    q = queues.create(unbounditems=queues.UNBOUND_ERROR)
    assert queues.Queue(q.id).unbounditems is queues.UNBOUND_ERROR


def test_keyword_constructor_still_makes_a_new_queue():
    a, b = queues.Queue(), queues.Queue(maxsize=2, unbounditems=queues.UNBOUND_REMOVE)
    assert a.id != b.id and b.maxsize == 2 and b.unbounditems is queues.UNBOUND_REMOVE
    assert interpreters.create_queue(4).maxsize == 4


def test_list_all_lists_live_queues_as_queue_objects(interp):
    a, b = queues.create(), queues.create()
    listed = queues.list_all()
    assert all(isinstance(x, queues.Queue) for x in listed)
    assert a in listed and b in listed
    assert any(x is a for x in listed)
    ids = [x.id for x in listed]
    assert ids == sorted(ids)
    dead = queues.create().id
    gc.collect()
    assert dead not in [x.id for x in queues.list_all()]
    # A queue held only by another interpreter is listed too.
    interp.exec("from crossinterp import queues\nkept = queues.create(7)\n")
    (there,) = [x for x in queues.list_all() if x.id not in ids]
    assert there.maxsize == 7


# --- 2.6: ExceptionInfo ------------------------------------------------------


def _failure(mod, interp_):
    try:
        interp_.exec("def f():\n    raise KeyError('missing')\nf()")
    except mod.ExecutionFailed as e:
        return e
    raise AssertionError("no ExecutionFailed")


def test_excinfo_fields_and_str(interp):
    e = _failure(interpreters, interp)
    info = e.excinfo
    assert info.formatted == "KeyError: 'missing'"
    assert info.errdisplay.startswith("Traceback (most recent call last):")
    assert info.errdisplay.endswith("KeyError: 'missing'")
    assert "in f" in info.errdisplay
    assert str(info) == repr(info) and str(info).startswith("namespace(type=namespace(")
    assert e.args == ("KeyError: 'missing'",)
    assert str(e) == f"KeyError: 'missing'\n\nUncaught in the interpreter:\n\n{info.errdisplay}"


@needs_stdlib
def test_excinfo_matches_stdlib(interp):
    ours = _failure(interpreters, interp)
    s = std.create()
    try:
        theirs = _failure(std, s)
    finally:
        s.close()
    for attr in ("msg", "formatted"):
        assert getattr(ours.excinfo, attr) == getattr(theirs.excinfo, attr)
    assert vars(ours.excinfo.type) == vars(theirs.excinfo.type)
    assert list(vars(ours.excinfo)) == list(vars(theirs.excinfo))
    assert ours.args == theirs.args
    # The tracebacks differ only in the file name each exec gives the code.
    assert ours.excinfo.errdisplay.splitlines()[-1] == theirs.excinfo.errdisplay.splitlines()[-1]
    assert str(ours).split("\n\n")[:2] == str(theirs).split("\n\n")[:2]


# --- 2.8: prepare_main -------------------------------------------------------


def test_prepare_main_without_names_is_value_error(interp):
    for args in ((), (None,), ({},)):
        with pytest.raises(ValueError):
            interp.prepare_main(*args)
    interp.prepare_main({}, x=1)
    interp.exec("assert x == 1")


@needs_stdlib
def test_prepare_main_without_names_matches_stdlib(interp):
    s = std.create()
    try:
        for it in (s, interp):
            for args in ((), (None,), ({},)):
                with pytest.raises(ValueError):
                    it.prepare_main(*args)
    finally:
        s.close()


SHAREABLE = [None, True, False, 0, -5, 2**70, 2.5, "text", b"bytes", (), (1, "a", (b"x", None))]


def test_prepare_main_stdlib_shareable_values_arrive_equal(interp):
    q = queues.create()
    interp.prepare_main(q=q)
    for v in SHAREABLE:
        interp.prepare_main(v=v)
        interp.exec("q.put((type(v).__name__, v))")
        assert q.get(timeout=5) == (type(v).__name__, v)


def test_prepare_main_pickles_what_the_stdlib_refuses(interp):
    # The superset: lists, dicts and picklable objects arrive as copies.
    q = queues.create()
    interp.prepare_main(q=q, v=[1, {"a": 2}])
    interp.exec("v.append(3)\nq.put(v)")
    assert q.get(timeout=5) == [1, {"a": 2}, 3]
    with pytest.raises(interpreters.NotShareableError):
        interp.prepare_main(v=threading.Lock())


@needs_stdlib
def test_stdlib_shareable_values_are_ours(interp):
    for v in SHAREABLE:
        assert std.is_shareable(v)
    assert not std.is_shareable([1])  # the stdlib refuses what we pickle


# --- 2.9: the exception classes ----------------------------------------------

NAMES = [
    "InterpreterError",
    "InterpreterNotFoundError",
    "ExecutionFailed",
    "NotShareableError",
]
QUEUE_NAMES = ["QueueError", "QueueNotFoundError", "QueueEmpty", "QueueFull"]


def test_exception_bases():
    assert issubclass(interpreters.NotShareableError, TypeError)
    assert issubclass(interpreters.InterpreterNotFoundError, interpreters.InterpreterError)
    assert issubclass(interpreters.ExecutionFailed, interpreters.InterpreterError)
    assert issubclass(interpreters.InterpreterGoneError, interpreters.InterpreterError)
    assert issubclass(interpreters.InterpreterFinalizingError, interpreters.InterpreterError)
    assert issubclass(queues.QueueError, RuntimeError)
    assert issubclass(queues.QueueNotFoundError, queues.QueueError)
    assert issubclass(queues.QueueEmpty, queues.QueueError)
    assert issubclass(queues.QueueEmpty, stdlib_queue.Empty)
    assert issubclass(queues.QueueFull, stdlib_queue.Full)
    assert issubclass(queues.ItemInterpreterDestroyed, queues.QueueError)
    assert interpreters.QueueEmpty is queues.QueueEmpty


@needs_stdlib
def test_exception_classes_are_the_stdlibs():
    for name in NAMES:
        assert getattr(interpreters, name) is getattr(std, name), name
    for name in QUEUE_NAMES:
        assert getattr(queues, name) is getattr(stdq, name), name
    assert issubclass(queues.ItemInterpreterDestroyed, stdq.ItemInterpreterDestroyed)


@needs_stdlib
def test_ours_caught_by_stdlib_classes(interp):
    with pytest.raises(stdq.QueueEmpty):
        queues.create().get_nowait()
    q = queues.create(1)
    q.put(1)
    with pytest.raises(stdq.QueueFull):
        q.put_nowait(2)
    with pytest.raises(stdq.QueueNotFoundError):
        queues.Queue(1_000_000)
    with pytest.raises(std.NotShareableError):
        interp.prepare_main(v=threading.Lock())
    with pytest.raises(std.ExecutionFailed):
        interp.exec("1/0")
    gone = interpreters.create()
    gone.close()
    with pytest.raises(std.InterpreterNotFoundError):
        gone.exec("pass")
    with pytest.raises(std.InterpreterError):
        interpreters.get_current().close()


@needs_stdlib
def test_stdlibs_caught_by_our_classes():
    with pytest.raises(queues.QueueEmpty):
        stdq.create().get_nowait()
    with pytest.raises(queues.QueueNotFoundError):
        stdq.Queue(1_000_000)
    s = std.create()
    try:
        with pytest.raises(interpreters.ExecutionFailed):
            s.exec("1/0")
        with pytest.raises(interpreters.NotShareableError):
            s.prepare_main(v=[1])
    finally:
        s.close()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        s.exec("pass")
    with pytest.raises(interpreters.InterpreterError):
        std.get_current().close()
