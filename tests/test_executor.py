"""crossinterp.futures.InterpreterPoolExecutor (issue 12, parts 1 and 2)."""

import concurrent.futures
import concurrent.futures.thread
import sys
import threading
import time

import helpers
import pytest
from conftest import run_script

import crossinterp
from crossinterp import interpreters
from crossinterp.futures import BrokenInterpreterPool, InterpreterPoolExecutor

WAIT = 120  # generous: the test machine is shared


class TaskError(Exception):
    pass


def raise_task_error(msg):
    raise TaskError(msg)


def current_id():
    return interpreters.get_current().id


def cached_function_count():
    from crossinterp import _futures_worker

    return len(_futures_worker._functions)


def clear_worker_cache():
    from crossinterp import _futures_worker

    _futures_worker._functions.clear()


def set_worker_state(value):
    import builtins

    builtins._executor_test_state = value


def get_worker_state():
    import builtins

    return builtins._executor_test_state


def failing_initializer():
    raise RuntimeError("initializer failed on purpose")


def raise_unknown_type():
    # A class that exists only in the worker's __main__: it cannot be found
    # in the caller, so the exception cannot be rebuilt there.
    src = "class OnlyHere(Exception): pass\nraise OnlyHere('only in the worker')"
    exec(src, {"__name__": "__main__"})  # noqa: S102 - a fixed string, the point of the test


def raise_unpicklable():
    raise ValueError(threading.Lock())


# --- API and results ---------------------------------------------------------


def test_exports():
    assert crossinterp.InterpreterPoolExecutor is InterpreterPoolExecutor
    assert crossinterp.futures.InterpreterPoolExecutor is InterpreterPoolExecutor
    assert issubclass(BrokenInterpreterPool, concurrent.futures.thread.BrokenThreadPool)
    assert issubclass(InterpreterPoolExecutor, concurrent.futures.ThreadPoolExecutor)
    if sys.version_info >= (3, 14):
        import concurrent.futures.interpreter as std

        assert BrokenInterpreterPool is std.BrokenInterpreterPool


def test_submit_lambda_closure_and_kwargs():
    k = 100

    def add_k(a, *, b=0):
        return a + b + k

    with InterpreterPoolExecutor(max_workers=2) as ex:
        assert ex.submit(lambda a, b: a + b, 20, 22).result(WAIT) == 42
        assert ex.submit(add_k, 1, b=2).result(WAIT) == 103
        assert ex.submit(helpers.echo, 1, x=[1, 2]).result(WAIT) == ((1,), {"x": [1, 2]})
        assert ex.submit(len, "abc").result(WAIT) == 3


def test_runs_in_warm_worker_interpreters():
    main_id = interpreters.get_current().id
    with InterpreterPoolExecutor(max_workers=2) as ex:
        ids = {ex.submit(current_id).result(WAIT) for _ in range(50)}
    assert main_id not in ids
    assert 1 <= len(ids) <= 2  # reused across tasks, one per worker


def test_workers_closed_at_shutdown():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        ids = {ex.submit(current_id).result(WAIT) for _ in range(10)}
    alive = {i.id for i in interpreters.list_all()}
    assert not ids & alive


def test_function_rebuilt_once_per_worker():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        base = ex.submit(cached_function_count).result(WAIT)
        f = lambda x: x + 1
        assert [ex.submit(f, i).result(WAIT) for i in range(20)] == list(range(1, 21))
        # one more cached function (the lambda), not twenty
        assert ex.submit(cached_function_count).result(WAIT) == base + 1


def test_function_sent_again_after_worker_cache_starts_over():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        f = lambda x: x * 3
        assert ex.submit(f, 2).result(WAIT) == 6
        ex.submit(clear_worker_cache).result(WAIT)  # as when it reaches its bound
        assert ex.submit(f, 3).result(WAIT) == 9  # the caller thinks it was sent: sent again


def test_map_default_chunked_and_several_iterables():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(helpers.square, range(100))) == [x * x for x in range(100)]
        assert list(ex.map(helpers.square, range(1000), chunksize=64)) == [
            x * x for x in range(1000)
        ]
        assert list(ex.map(pow, range(10), [2] * 10, chunksize=3)) == [x**2 for x in range(10)]
        assert list(ex.map(helpers.square, [], chunksize=5)) == []


def test_map_exception_in_chunk():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        it = ex.map(int, ["1", "2", "x", "4"], chunksize=2)
        assert next(it) == 1
        assert next(it) == 2
        with pytest.raises(ValueError, match="invalid literal"):
            next(it)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="Executor.map has buffersize from 3.14")
def test_map_buffersize():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(helpers.square, range(50), buffersize=4)) == [x * x for x in range(50)]
        assert list(ex.map(helpers.square, range(50), chunksize=7, buffersize=2)) == [
            x * x for x in range(50)
        ]


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.13's Executor.map has no buffersize")
def test_map_buffersize_refused_on_313():
    with InterpreterPoolExecutor(max_workers=1) as ex, pytest.raises(TypeError, match="buffersize"):
        ex.map(helpers.square, range(5), buffersize=2)


def test_ten_thousand_tasks_nothing_lost_or_duplicated():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(helpers.square, i) for i in range(10_000)]
        got = [f.result(WAIT) for f in futs]
        assert got == [i * i for i in range(10_000)]
        assert list(ex.map(helpers.echo, range(10_000), chunksize=97)) == [
            ((i,), {}) for i in range(10_000)
        ]


# --- exceptions --------------------------------------------------------------


def test_task_raises_same_type_with_remote_traceback():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TaskError, match="boom") as ei:
            ex.submit(raise_task_error, "boom").result(WAIT)
        cause = ei.value.__cause__  # the worker's traceback, as the stdlib's executor
        assert type(cause) is interpreters.ExecutionFailed
        assert cause.excinfo.type.__name__ == "TaskError"
        assert cause.excinfo.msg == "boom"
        assert "raise_task_error" in cause.excinfo.errdisplay
        assert "raise_task_error" in str(cause)
        with pytest.raises(ZeroDivisionError):
            ex.submit(lambda: 1 / 0).result(WAIT)
        # the worker survives a raising task
        assert ex.submit(helpers.square, 3).result(WAIT) == 9


def test_exception_whose_type_does_not_cross():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(interpreters.ExecutionFailed, match="only in the worker") as ei:
            ex.submit(raise_unknown_type).result(WAIT)
        assert ei.value.excinfo.type.__name__ == "OnlyHere"
        assert "raise_unknown_type" in str(ei.value)  # the worker's traceback
        with pytest.raises(interpreters.ExecutionFailed, match="ValueError"):
            ex.submit(raise_unpicklable).result(WAIT)


def test_unshareable_result():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(interpreters.NotShareableError, match="lock"):
            ex.submit(helpers.returns_lock).result(WAIT)
        assert ex.submit(helpers.square, 4).result(WAIT) == 16


def make_fraction(a, b):
    import fractions

    return fractions.Fraction(a, b)


def returns_worker_only_object():
    # A class of a module that exists only in the worker: it pickles there
    # (by reference) and cannot be unpickled here.
    import sys
    import types

    mod = types.ModuleType("only_in_the_worker")
    exec("class OnlyThere:\n    pass\n", mod.__dict__)  # noqa: S102 - a fixed string
    sys.modules[mod.__name__] = mod
    return mod.OnlyThere()


def test_results_that_need_pickle():
    import fractions

    with InterpreterPoolExecutor(max_workers=1) as ex:
        assert ex.submit(make_fraction, 1, 3).result(WAIT) == fractions.Fraction(1, 3)
        # pickled in the worker, not found here: the task's error, the pool goes on
        with pytest.raises(interpreters.NotShareableError, match="could not be unpickled here"):
            ex.submit(returns_worker_only_object).result(WAIT)
        with pytest.raises(interpreters.NotShareableError, match="could not leave"):
            ex.submit(helpers.returns_lock).result(WAIT)  # does not pickle there
        assert ex.submit(helpers.square, 8).result(WAIT) == 64


def test_unshareable_argument_and_function():
    lock = threading.Lock()
    with InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(interpreters.NotShareableError, match="args not shareable") as ei:
            ex.submit(helpers.echo, lock).result(WAIT)
        assert "lock" in str(ei.value.__cause__)
        with pytest.raises(interpreters.NotShareableError, match="args not shareable") as ei:
            ex.submit(lambda: lock).result(WAIT)  # a closure cell that cannot cross
        assert "lock" in str(ei.value.__cause__)
        assert ex.submit(helpers.square, 5).result(WAIT) == 25


# --- initializer -------------------------------------------------------------


def test_initializer_runs_in_each_worker():
    with InterpreterPoolExecutor(
        max_workers=2, initializer=set_worker_state, initargs=("ready",)
    ) as ex:
        assert {ex.submit(get_worker_state).result(WAIT) for _ in range(10)} == {"ready"}
    assert not hasattr(__import__("builtins"), "_executor_test_state")  # ran there, not here


def test_initializer_fails_breaks_pool():
    ex = InterpreterPoolExecutor(max_workers=2, initializer=failing_initializer)
    try:
        fut = ex.submit(helpers.square, 2)
        with pytest.raises(BrokenInterpreterPool):
            fut.result(WAIT)
        deadline = time.monotonic() + WAIT
        while not ex._broken and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(BrokenInterpreterPool):
            ex.submit(helpers.square, 3)
    finally:
        ex.shutdown(wait=True)


# --- shutdown ----------------------------------------------------------------


def test_submit_after_shutdown():
    ex = InterpreterPoolExecutor(max_workers=1)
    ex.submit(helpers.square, 1).result(WAIT)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(helpers.square, 2)


def test_shutdown_waits_for_pending():
    ex = InterpreterPoolExecutor(max_workers=1)
    futs = [ex.submit(helpers.sleep_then, 0.01, i) for i in range(20)]
    ex.shutdown(wait=True)
    assert [f.result(0) for f in futs] == list(range(20))


def test_shutdown_cancel_futures():
    ex = InterpreterPoolExecutor(max_workers=1)
    first = ex.submit(helpers.sleep_then, 0.5, "first")
    deadline = time.monotonic() + WAIT
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.005)
    rest = [ex.submit(helpers.sleep_then, 0.5, i) for i in range(20)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result(0) == "first"
    assert all(f.cancelled() for f in rest)


def test_shutdown_nowait_then_exit_of_workers():
    ex = InterpreterPoolExecutor(max_workers=2)
    futs = [ex.submit(helpers.square, i) for i in range(10)]
    ex.shutdown(wait=False)
    assert [f.result(WAIT) for f in futs] == [i * i for i in range(10)]
    for t in list(ex._threads):
        t.join(WAIT)
        assert not t.is_alive()


# --- a worker interpreter closed under the pool ----------------------------


@pytest.mark.parametrize("how", ["list_all", "by_id"])
def test_worker_interpreter_closed_under_pool(how):
    ex = InterpreterPoolExecutor(max_workers=1)
    try:
        wid = ex.submit(current_id).result(WAIT)

        def close_it():
            if how == "list_all":
                [it] = [i for i in interpreters.list_all() if i.id == wid]
            else:
                it = interpreters.Interpreter(wid)
            it.close()

        t = threading.Thread(target=close_it)
        t.start()
        t.join(WAIT)
        assert wid not in {i.id for i in interpreters.list_all()}
        # The pool knows at once (the worker's loop left its interpreter for
        # the close): `submit` raises, or, had it raced the close, the future.
        with pytest.raises(BrokenInterpreterPool, match="closed under the pool"):
            ex.submit(helpers.square, 2).result(WAIT)
        with pytest.raises(BrokenInterpreterPool):
            ex.submit(helpers.square, 3)
    finally:
        ex.shutdown(wait=True)


def test_closing_a_worker_running_a_task_is_refused():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        wid = ex.submit(current_id).result(WAIT)
        started = ex.submit(helpers.sleep_then, 1.0, "slept")
        deadline = time.monotonic() + WAIT
        while not started.running() and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(interpreters.InterpreterError, match="running a task"):
            interpreters.Interpreter(wid).close()
        assert started.result(WAIT) == "slept"
        assert ex.submit(helpers.square, 6).result(WAIT) == 36  # not broken


# --- futures: cancel, running, waiting without result() ----------------------


def append_to_file(path, text):
    with open(path, "a") as f:
        f.write(text)


def test_cancelled_task_never_runs(tmp_path):
    log = tmp_path / "ran"
    with InterpreterPoolExecutor(max_workers=1) as ex:
        blocker = ex.submit(helpers.sleep_then, 0.5, "first")
        deadline = time.monotonic() + WAIT
        while not blocker.running() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert blocker.running()
        assert not blocker.cancel()  # running: cannot be cancelled
        queued = [ex.submit(append_to_file, str(log), f"{i}\n") for i in range(5)]
        assert not any(f.running() for f in queued)
        assert all(f.cancel() for f in queued[1:])  # no worker has claimed them
        assert blocker.result(WAIT) == "first"
        queued[0].result(WAIT)
        # `wait` sees the cancelled ones as done (their waiters were told).
        _, not_done = concurrent.futures.wait(queued, timeout=WAIT)
        assert not not_done
    assert log.read_text() == "0\n"  # the cancelled tasks never ran
    assert [f.cancelled() for f in queued] == [False, True, True, True, True]


def test_wait_and_as_completed_without_result():
    with InterpreterPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(helpers.sleep_then, 0.01 * (i % 3), i) for i in range(20)]
        done, not_done = concurrent.futures.wait(futs, timeout=WAIT)
        assert not not_done and len(done) == 20
        futs = [ex.submit(helpers.square, i) for i in range(20)]
        got = sorted(f._result for f in concurrent.futures.as_completed(futs, timeout=WAIT))
        assert got == [i * i for i in range(20)]
        first = concurrent.futures.wait(
            [ex.submit(helpers.sleep_then, 0.0, "quick")],
            timeout=WAIT,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        assert [f._result for f in first.done] == ["quick"]


def test_done_callbacks_run_without_result():
    fired = threading.Event()
    seen = []

    def callback(fut):
        seen.append(fut._result)
        fired.set()

    with InterpreterPoolExecutor(max_workers=1) as ex:
        ex.submit(helpers.sleep_then, 0.05, "called back").add_done_callback(callback)
        assert fired.wait(WAIT)
        assert seen == ["called back"]
        done = ex.submit(helpers.square, 3)
        assert done.result(WAIT) == 9
        late = []
        done.add_done_callback(late.append)  # already done: called at once
        assert late == [done]


def test_done_polling_completes():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(helpers.square, 7)
        deadline = time.monotonic() + WAIT
        while not fut.done() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert fut.done() and fut._result == 49


def test_result_timeout_then_result():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(helpers.sleep_then, 0.5, "late")
        with pytest.raises(concurrent.futures.TimeoutError):
            fut.result(timeout=0.01)
        with pytest.raises(concurrent.futures.TimeoutError):
            fut.exception(timeout=0)
        assert fut.result(WAIT) == "late"


def test_many_threads_waiting_on_their_own_futures():
    # One thread at a time collects the replies; the others are woken when
    # theirs is done or the role is free: no reply lost, no waiter stuck.
    results = {}

    def client(k):
        results[k] = [ex.submit(helpers.square, k * 100 + i).result(WAIT) for i in range(100)]

    with InterpreterPoolExecutor(max_workers=2) as ex:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    assert results == {k: [(k * 100 + i) ** 2 for i in range(100)] for k in range(6)}


def test_asyncio_run_in_executor():
    import asyncio

    async def main(ex):
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(ex, helpers.square, i) for i in range(10)))

    with InterpreterPoolExecutor(max_workers=2) as ex:
        assert asyncio.run(main(ex)) == [i * i for i in range(10)]


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"max_workers": 0}, ValueError),
        ({"max_workers": -1}, ValueError),
        ({"max_workers": "2"}, TypeError),
        ({"max_workers": 1.5}, TypeError),
        ({"initializer": 42}, TypeError),
        ({"initializer": helpers.square, "initargs": [1]}, TypeError),
        ({"thread_name_prefix": 3}, TypeError),
    ],
)
def test_bad_constructor_arguments(kwargs, exc):
    with pytest.raises(exc):
        InterpreterPoolExecutor(**kwargs)


def test_bad_submit_and_map_arguments():
    with InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match="not callable"):
            ex.submit(42).result(WAIT)  # as the stdlib's: in the future
        with pytest.raises(ValueError, match="chunksize"):
            ex.map(helpers.square, range(3), chunksize=0)
        with pytest.raises(TypeError, match="chunksize"):
            ex.map(helpers.square, range(3), chunksize="2")
        with pytest.raises(TypeError):
            ex.submit(helpers.square, 1, 2).result(WAIT)  # wrong arity: the task's TypeError


def test_thread_name_prefix():
    with InterpreterPoolExecutor(max_workers=1, thread_name_prefix="xi-pool") as ex:
        ex.submit(helpers.square, 1).result(WAIT)
        assert [t.name for t in ex._threads] == ["xi-pool_0"]


# --- whole programs ------------------------------------------------------------


def test_unguarded_script_functions_by_value():
    # `-c`: no file, no guard; a lambda, a nested function and a main global.
    r = run_script(
        """
        from crossinterp.futures import InterpreterPoolExecutor
        OFFSET = 1000
        def outer(n):
            def inner(x):
                return x + n + OFFSET
            return inner
        with InterpreterPoolExecutor(max_workers=2) as ex:
            print(ex.submit(lambda a, b: a * b, 6, 7).result())
            print(sum(ex.map(outer(5), range(10), chunksize=3)))
        """,
        timeout=WAIT,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["42", str(sum(range(10)) + 10 * 1005)]


def test_ctrl_c_during_map_cancels_pending_and_returns():
    r = run_script(
        """
        import os, signal, threading, time
        from crossinterp.futures import InterpreterPoolExecutor
        started = time.monotonic()
        done = 0
        # the default handler even if this process started with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            with InterpreterPoolExecutor(max_workers=2) as ex:
                for _ in ex.map(lambda s: time.sleep(s), [0.2] * 400):
                    done += 1
        except KeyboardInterrupt:
            print("interrupted", done, round(time.monotonic() - started, 1))
        else:
            print("not interrupted", done)
        """,
        timeout=WAIT,
    )
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[0] == "interrupted", r.stdout
    assert int(words[1]) < 400
    assert float(words[2]) < 30  # 400 x 0.2 s / 2 workers = 40 s if nothing were cancelled
