"""One thread state per (OS thread, interpreter): threading.local behaves,
re-entrant chains work, and cached thread states never block an
interpreter's close (whether their thread is alive or gone)."""

import threading

import helpers
import pytest

from crossinterp import interpreters


def test_threading_local_persists_per_thread(interp):
    interp.exec("import threading; tl = threading.local()")
    interp.exec("tl.x = 'main-thread'")
    assert interp.call(helpers.main_eval, "tl.x") == "main-thread"

    seen = {}

    def other():
        seen["before"] = interp.call(helpers.main_eval, "getattr(tl, 'x', None)")
        interp.exec("tl.x = 'other-thread'")
        seen["after"] = interp.call(helpers.main_eval, "tl.x")

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == {"before": None, "after": "other-thread"}
    assert interp.call(helpers.main_eval, "tl.x") == "main-thread"


def test_reentrant_chain_back_into_caller(interp):
    interp.exec(
        "from crossinterp import interpreters as I\n"
        "r = I.get_main().call(pow, 2, 5)"
    )
    assert interp.call(helpers.main_eval, "r") == 32


def test_close_after_threads_that_used_it_have_exited():
    it = interpreters.create()
    one_at_a_time = threading.Lock()  # an interpreter runs one call at a time
    results = []

    def worker(k):
        with one_at_a_time:
            results.append(it.call(helpers.square, k))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(results) == [0, 1, 4, 9]
    it.close()  # their cached thread states were deleted as they exited


def test_close_while_threads_that_used_it_are_alive():
    it = interpreters.create()
    release = threading.Event()
    used = threading.Barrier(5, timeout=30)
    one_at_a_time = threading.Lock()  # an interpreter runs one call at a time
    after = []

    def worker():
        with one_at_a_time:
            it.call(helpers.square, 2)  # leaves a cached thread state behind
        used.wait()
        release.wait(30)
        try:
            it.call(helpers.square, 3)
        except interpreters.InterpreterNotFoundError:
            after.append("not found")

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    used.wait()
    it.close()  # deletes the idle cached thread states of the live threads
    release.set()
    for t in ts:
        t.join()
    assert after == ["not found"] * 4


def test_many_threads_many_interpreters():
    its = [interpreters.create() for _ in range(3)]
    locks = [threading.Lock() for _ in its]  # one call at a time per interpreter
    errors = []

    def worker(k):
        try:
            for j in range(20):
                with locks[(k + j) % 3]:
                    assert its[(k + j) % 3].call(helpers.square, j) == j * j
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for it in its:
        it.close()
    assert errors == []


@pytest.mark.parametrize("n", [1, 3])
def test_exit_with_cached_thread_states_is_clean(n):
    from conftest import run_script

    r = run_script(
        f"""
        import threading
        from crossinterp import interpreters
        its = [interpreters.create() for _ in range({n})]
        def use(it):
            it.exec("import threading; tl = threading.local(); tl.x = 1")
        ts = [threading.Thread(target=use, args=(it,)) for it in its]
        for t in ts: t.start()
        for t in ts: t.join()
        for it in its:
            use(it)
        print("bye")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bye"
    assert r.stderr == ""
