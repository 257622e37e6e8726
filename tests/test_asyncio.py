"""asyncio awaitables: Queue.get_async/put_async, Interpreter.call_async/
exec_async. Woken by the engine (the loop's wake-up fd), nothing lost on
cancellation, timeouts, interpreters closed under awaiters."""

import asyncio
import gc
import random
import threading

import helpers
import pytest

from crossinterp import _asyncio, _native, interpreters
from crossinterp.interpreters import ExecutionFailed, InterpreterError, InterpreterNotFoundError
from crossinterp.queues import QueueEmpty, QueueFull, create

GET, PUT = _asyncio.GET, _asyncio.PUT


def run(coro, timeout=60):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def test_get_async_ready_item_and_put_from_a_thread():
    q = create()

    async def main():
        q.put(1)
        assert await q.get_async() == 1
        threading.Timer(0.05, q.put, args=("late",)).start()
        return await q.get_async()

    assert run(main()) == "late"


def test_get_async_woken_by_a_subinterpreter():
    q = create()
    it = interpreters.create()
    it.prepare_main(q=q)

    async def main():
        t = threading.Thread(target=it.exec, args=("import time; time.sleep(0.05); q.put(('from', 'sub'))",))
        t.start()
        got = await q.get_async()
        t.join()
        return got

    try:
        assert run(main()) == ("from", "sub")
    finally:
        it.close()


def test_the_waker_is_registered_while_awaiting_and_released_after():
    q = create()

    async def main():
        t = asyncio.ensure_future(q.get_async())
        await asyncio.sleep(0.01)
        assert q._watchers(GET) == 1  # one fd for the loop, not a thread
        assert threading.active_count() == before
        q.put(7)
        return await t

    before = threading.active_count()
    assert run(main()) == 7
    gc.collect()
    assert q._watchers(GET) == 0


def test_a_thousand_awaiters_on_one_queue_nothing_lost():
    q = create()
    n = 1000

    async def main():
        tasks = [asyncio.ensure_future(q.get_async()) for _ in range(n)]
        await asyncio.sleep(0.02)
        assert q._watchers(GET) == 1

        def produce(lo, hi):
            for i in range(lo, hi):
                q.put(i)

        ts = [threading.Thread(target=produce, args=(k * n // 4, (k + 1) * n // 4)) for k in range(4)]
        for t in ts:
            t.start()
        got = await asyncio.gather(*tasks)
        for t in ts:
            t.join()
        return got

    got = run(main())
    assert sorted(got) == list(range(n))
    assert q.empty()


def test_two_loops_in_two_threads_share_a_queue():
    q = create()
    n = 200
    results = [[], []]

    def consumer(k):
        async def main():
            for _ in range(n // 2):
                results[k].append(await q.get_async())

        run(main())

    ts = [threading.Thread(target=consumer, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for i in range(n):
        q.put(i)
    for t in ts:
        t.join(60)
    assert sorted(results[0] + results[1]) == list(range(n))


def test_get_async_timeout_raises_queue_empty():
    q = create()

    async def main():
        with pytest.raises(QueueEmpty):
            await q.get_async(timeout=0.05)
        with pytest.raises(QueueEmpty):
            await q.get_async(timeout=0)
        q.put("there")
        return await q.get_async(timeout=0)  # an item that is there is taken

    assert run(main()) == "there"
    gc.collect()
    assert q._watchers(GET) == 0


def test_bad_timeouts_as_the_blocking_calls():
    q = create()
    full = create(1)
    full.put(0)

    async def main():
        for bad, exc in ((-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError)):
            with pytest.raises(exc) as sync_err:
                q.get(timeout=bad)
            with pytest.raises(exc) as async_err:
                await q.get_async(timeout=bad)
            assert str(async_err.value) == str(sync_err.value)
            with pytest.raises(exc):
                await full.put_async(1, timeout=bad)
        q.put(1)
        with pytest.raises(ValueError):
            await q.get_async(timeout=-1)  # checked even with an item there
        assert q.qsize() == 1

    run(main())


def test_native_watch_checks_its_arguments():
    q = create()
    with pytest.raises(TypeError, match="LoopWaker"):
        q._watch(object(), 0)
    with pytest.raises(ValueError, match="side"):
        q._watch(_native.LoopWaker(), 2)
    assert q._unwatch(0, 12345) is False
    assert q._unwatch(1, -1) is False


def test_cancelled_get_async_takes_nothing():
    q = create()

    async def main():
        t = asyncio.ensure_future(q.get_async())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        q.put("kept")
        assert q.qsize() == 1
        return await q.get_async()

    assert run(main()) == "kept"


def test_woken_then_cancelled_awaiter_passes_the_item_on():
    q = create()

    async def main():
        a = asyncio.ensure_future(q.get_async())
        b = asyncio.ensure_future(q.get_async())
        await asyncio.sleep(0.01)
        q.put("x")
        # Serve the wake-up now, before either task runs: `a` (the oldest)
        # is woken; cancel it before it takes the item.
        _asyncio._hub(asyncio.get_running_loop())._on_wake()
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        return await b

    assert run(main()) == "x"
    assert q.empty()


def test_cancellation_race_nothing_lost_or_doubled():
    q = create()
    n = 2000
    rng = random.Random(1234)

    async def main():
        got = []

        async def consume():
            got.append(await q.get_async())

        def produce():
            for i in range(n):
                q.put(i)

        tasks = [asyncio.ensure_future(consume()) for _ in range(n)]
        await asyncio.sleep(0.01)
        t = threading.Thread(target=produce)
        t.start()
        cancelled = 0
        while not all(x.done() for x in tasks):
            for x in rng.sample(tasks, 20):
                if not x.done() and x.cancel():
                    cancelled += 1
            await asyncio.sleep(0)
        t.join()
        await asyncio.gather(*tasks, return_exceptions=True)
        rest = []
        while not q.empty():
            rest.append(q.get_nowait())
        return got, rest, cancelled

    got, rest, cancelled = run(main())
    assert cancelled > 0
    assert len(got) == len(set(got))
    assert sorted(got + rest) == list(range(n))


def test_put_async_waits_for_room():
    q = create(1)

    async def main():
        await q.put_async("a")
        t = asyncio.ensure_future(q.put_async("b"))
        await asyncio.sleep(0.02)
        assert not t.done() and q.full()
        threading.Timer(0.02, q.get).start()
        await t
        return q.get_nowait()

    assert run(main()) == "b"


def test_put_async_timeout_and_cancellation_deliver_nothing():
    q = create(1)

    async def main():
        q.put(0)
        with pytest.raises(QueueFull):
            await q.put_async(1, timeout=0.05)
        t = asyncio.ensure_future(q.put_async(2))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert q.get_nowait() == 0
        await asyncio.sleep(0.02)
        return q.qsize()

    assert run(main()) == 0


def test_put_async_cancel_race_bounded():
    q = create(4)
    n = 500

    async def main():
        puts = [asyncio.ensure_future(q.put_async(i)) for i in range(n)]
        await asyncio.sleep(0)
        got = []

        def consume():
            while True:
                try:
                    got.append(q.get(timeout=1.0))
                except QueueEmpty:
                    return

        t = threading.Thread(target=consume)
        t.start()
        for x in puts[1::3]:
            x.cancel()
        res = await asyncio.gather(*puts, return_exceptions=True)
        await asyncio.to_thread(t.join)
        delivered = {i for i, r in enumerate(res) if r is None}
        return got, delivered

    got, delivered = run(main())
    assert len(got) == len(set(got))
    assert set(got) == delivered  # every put that completed was got, no cancelled one


def test_get_async_in_a_subinterpreter():
    q = create()
    out = create()
    it = interpreters.create()
    it.prepare_main(q=q, out=out)
    t = threading.Thread(
        target=it.exec,
        args=("import asyncio\nasync def m():\n    return await q.get_async(timeout=30)\nout.put(asyncio.run(m()))\n",),
    )
    t.start()
    q.put("to the sub")
    t.join(60)
    try:
        assert out.get(timeout=5) == "to the sub"
    finally:
        it.close()


def test_call_async_and_exec_async():
    it = interpreters.create()

    async def main():
        r = await it.call_async(helpers.square, 12)
        with pytest.raises(ExecutionFailed):
            await it.call_async(helpers.raise_value_error, "boom")
        await it.exec_async("x = 41")
        with pytest.raises(ExecutionFailed):
            await it.exec_async("raise KeyError(1)")
        # The loop keeps running while a call sleeps in the interpreter.
        ticks = 0
        call = asyncio.ensure_future(it.call_async(helpers.sleep_then, 0.3, "slept"))
        while not call.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return r, await call, ticks

    try:
        r, slept, ticks = run(main())
        assert (r, slept) == (144, "slept")
        assert ticks >= 3
    finally:
        it.close()


def test_call_async_closed_interpreter():
    it = interpreters.create()
    it.close()

    async def main():
        with pytest.raises(InterpreterNotFoundError):
            await it.call_async(helpers.square, 2)
        with pytest.raises(InterpreterNotFoundError):
            await it.exec_async("pass")

    run(main())


def test_close_under_an_awaiting_call_is_refused_and_the_call_completes():
    it = interpreters.create()
    q = create()
    it.prepare_main(q=q)

    async def main():
        call = asyncio.ensure_future(it.exec_async("q.get()"))
        while not it.is_running():
            await asyncio.sleep(0.01)
        with pytest.raises(InterpreterError):
            it.close()
        q.put(1)
        await call

    run(main())
    it.close()


def test_cancelled_call_async_lets_the_call_finish():
    it = interpreters.create()
    q = create()
    it.prepare_main(q=q)

    async def main():
        call = asyncio.ensure_future(it.exec_async("import time; time.sleep(0.1); q.put('finished')"))
        await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return await q.get_async(timeout=30)

    try:
        assert run(main()) == "finished"
    finally:
        while it.is_running():
            threading.Event().wait(0.01)
        it.close()


# ----------------------------------------------------------------- channels


def test_channel_async_send_and_recv_with_threads_and_each_other():
    from crossinterp import channels

    ch = channels.create()

    async def main():
        got = []
        t = threading.Thread(target=lambda: got.append(ch.recv(timeout=30)))
        t.start()
        await ch.send_async("to a thread")  # returns once received
        t.join()
        t = threading.Thread(target=ch.send, args=("from a thread",), kwargs={"timeout": 30})
        t.start()
        got.append(await ch.recv_async(timeout=30))
        t.join()
        r = asyncio.ensure_future(ch.recv_async())
        await asyncio.sleep(0.01)
        await ch.send_async("async to async")
        got.append(await r)
        s = asyncio.ensure_future(ch.send_async("offered first"))
        await asyncio.sleep(0.01)
        assert ch.pending == 1 and not s.done()  # no thread holds the offer
        got.append(await ch.recv_async())
        await s
        return got

    assert run(main()) == ["to a thread", "from a thread", "async to async", "offered first"]


def test_channel_cancelled_or_timed_out_send_async_is_never_received():
    from crossinterp import channels

    ch = channels.create()

    async def main():
        s = asyncio.ensure_future(ch.send_async("cancelled"))
        await asyncio.sleep(0.01)
        s.cancel()
        with pytest.raises(asyncio.CancelledError):
            await s
        with pytest.raises(TimeoutError):
            await ch.send_async("timed out", timeout=0.05)
        with pytest.raises(TimeoutError):
            await ch.recv_async(timeout=0.05)
        assert ch.pending == 0
        assert ch.recv_nowait(None) is None

    run(main())


def test_channel_send_async_cancel_race_exactly_once():
    from crossinterp import channels

    ch = channels.create()
    n = 400

    async def main():
        sends = [asyncio.ensure_future(ch.send_async(i)) for i in range(n)]
        await asyncio.sleep(0)
        got = []

        def receive():  # slower than the cancellations below
            while True:
                try:
                    got.append(ch.recv(timeout=1.0))
                except TimeoutError:
                    return
                threading.Event().wait(0.001)

        t = threading.Thread(target=receive)
        t.start()
        for x in sends[::2]:
            x.cancel()
        res = await asyncio.gather(*sends, return_exceptions=True)
        await asyncio.to_thread(t.join)
        return got, res

    got, res = run(main())
    completed = {i for i, r in enumerate(res) if r is None}
    cancelled = {i for i, r in enumerate(res) if isinstance(r, asyncio.CancelledError)}
    assert completed | cancelled == set(range(n))
    assert sorted(got) == sorted(completed)  # every completed send received once, no cancelled one
    assert cancelled


def test_channel_closed_under_awaiters():
    from crossinterp import channels

    ch = channels.create()
    ch2 = channels.create()

    async def main():
        rs = [asyncio.ensure_future(ch.recv_async()) for _ in range(3)]
        s = asyncio.ensure_future(ch2.send_async("pending"))
        await asyncio.sleep(0.01)
        ch.close()
        assert ch2.close(force=True) == 1
        for r in rs:
            with pytest.raises(channels.ChannelClosedError):
                await r
        with pytest.raises(channels.ChannelClosedError):
            await s
        with pytest.raises(channels.ChannelClosedError):
            await ch.send_async(1)

    run(main())


def test_no_wakeup_lost_over_many_rounds_of_concurrent_producers():
    # Regression: the waker once cleared its flag before reading, so a
    # notification landing in between had its byte eaten and left the flag
    # set: every later put skipped its write and awaiters hung (about 1 round
    # in 20 here; 60 rounds caught it in each of several runs).
    async def one_round():
        q = create()
        n = 1000
        tasks = [asyncio.ensure_future(q.get_async()) for _ in range(n)]
        await asyncio.sleep(0.01)

        def produce(lo, hi):
            for i in range(lo, hi):
                q.put(i)

        ts = [threading.Thread(target=produce, args=(k * n // 4, (k + 1) * n // 4)) for k in range(4)]
        for t in ts:
            t.start()
        got = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for t in ts:
            t.join()
        assert sorted(got) == list(range(n))

    async def main():
        for _ in range(60):
            await one_round()

    run(main(), timeout=300)
