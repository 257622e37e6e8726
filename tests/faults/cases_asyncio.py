"""asyncio awaiters (issue 13): cancellation, timeouts, bad input, and queues
and interpreters closed or abandoned under an awaiter."""

from __future__ import annotations

from .framework import Case, raises, returns

A = "import asyncio, gc\n"
RUN = "def run(c):\n    async def g():\n        return await asyncio.wait_for(c, 15)\n    return asyncio.run(g())\n"

CASES: list[Case] = [
    raises("asyncio/get_async_negative_timeout", A, "asyncio.run(queues.create().get_async(timeout=-1))", "ValueError"),
    raises("asyncio/get_async_str_timeout", A, "asyncio.run(queues.create().get_async(timeout='x'))", "TypeError"),
    raises("asyncio/put_async_timeout_full", A + "q = queues.create(1); q.put(0)\n",
           "asyncio.run(q.put_async(1, timeout=0.05))", "queues.QueueFull"),
    raises("asyncio/get_async_timeout_empty", A, "asyncio.run(queues.create().get_async(timeout=0.05))",
           "queues.QueueEmpty"),
    raises("asyncio/put_async_unshareable_strict", A,
           "asyncio.run(queues.create().put_async(threading.Lock(), strict=True))", "NotShareableError"),
    raises("asyncio/watch_not_a_waker", "q = queues.create()\n", "q._watch(None, 0)", "TypeError"),
    raises("asyncio/call_async_closed_interpreter", A + "it = interpreters.create(); it.close()\n",
           "asyncio.run(it.call_async(len, ()))", "InterpreterNotFoundError"),
    raises("asyncio/exec_async_failure", A + "it = interpreters.create()\n",
           "asyncio.run(it.exec_async('1/0'))", "ExecutionFailed"),
    # Cancel get_async awaiters while a thread puts: every item is got by a
    # task that completed or is still in the queue, exactly once.
    returns(
        "asyncio/cancel_get_race_nothing_lost",
        A + RUN + "q = queues.create(); got = []\n"
        "async def one():\n    got.append(await q.get_async())\n"
        "async def main():\n"
        "    ts = [asyncio.ensure_future(one()) for _ in range(500)]\n"
        "    await asyncio.sleep(0.01)\n"
        "    th = threading.Thread(target=lambda: [q.put(i) for i in range(500)]); th.start()\n"
        "    for i, t in enumerate(ts):\n"
        "        if i % 3 == 0: t.cancel()\n"
        "        if i % 50 == 0: await asyncio.sleep(0)\n"
        "    await asyncio.gather(*ts, return_exceptions=True); th.join()\n"
        "run(main())\n"
        "rest = []\nwhile not q.empty(): rest.append(q.get_nowait())\n",
        "(len(got) == len(set(got)), sorted(got + rest))",
        "(True, list(range(500)))",
    ),
    # A cancelled put_async never delivers.
    returns(
        "asyncio/cancelled_put_async_not_delivered",
        A + RUN + "q = queues.create(1); q.put('first')\n"
        "async def main():\n"
        "    t = asyncio.ensure_future(q.put_async('cancelled'))\n"
        "    await asyncio.sleep(0.02); t.cancel()\n"
        "    try: await t\n"
        "    except asyncio.CancelledError: pass\n"
        "    q.get_nowait(); await asyncio.sleep(0.05)\n"
        "run(main())\n",
        "q.qsize()",
        "0",
    ),
    # The interpreter that put an UNBOUND_ERROR item was closed: get_async
    # raises ItemInterpreterDestroyed, as get() does.
    raises(
        "asyncio/unbound_error_item",
        A + "q = queues.create(unbounditems=queues.UNBOUND_ERROR)\n"
        "it = interpreters.create(); it.prepare_main(q=q); it.exec('q.put(1)'); it.close()\n",
        "asyncio.run(q.get_async(timeout=5))",
        "queues.ItemInterpreterDestroyed",
    ),
    # A put_async awaits room in a queue filled by an interpreter; closing that
    # interpreter removes its UNBOUND_REMOVE items, which wakes the awaiter.
    returns(
        "asyncio/interpreter_closed_under_awaiting_put",
        A + RUN + "q = queues.create(2, unbounditems=queues.UNBOUND_REMOVE)\n"
        "it = interpreters.create(); it.prepare_main(q=q); it.exec('q.put(1); q.put(2)')\n"
        "async def main():\n"
        "    t = asyncio.ensure_future(q.put_async('mine'))\n"
        "    await asyncio.sleep(0.05); assert not t.done()\n"
        "    it.close()\n"
        "    await t\n"
        "run(main())\n",
        "(q.qsize(), q.get_nowait())",
        "(1, 'mine')",
    ),
    # An interpreter whose loop was left with a pending awaiter is closed;
    # the queue drops its waker and keeps working.
    returns(
        "asyncio/interpreter_closed_with_abandoned_awaiter",
        "q = queues.create(); it = interpreters.create(); it.prepare_main(q=q)\n"
        "it.exec('import asyncio\\nloop = asyncio.new_event_loop()\\nt = loop.create_task(q.get_async())\\n"
        "loop.run_until_complete(asyncio.sleep(0.05))\\n')\n"
        "before = q._watchers(0)\nit.close()\nq.put('still here')\n",
        "(before, q._watchers(0), q.get_nowait())",
        "(1, 0, 'still here')",
    ),
    # A loop closed with an awaiter pending: a later put wakes nobody, crashes
    # nothing, and the item stays in the queue.
    returns(
        "asyncio/loop_closed_under_awaiter",
        A + "q = queues.create()\nloop = asyncio.new_event_loop()\nt = loop.create_task(q.get_async())\n"
        "loop.run_until_complete(asyncio.sleep(0.02)); loop.close()\n"
        "q.put(1); q.put(2)\n",
        "(q.qsize(), q.get_nowait(), q.get_nowait())",
        "(2, 1, 2)",
    ),
    # Closing an interpreter under an awaiting call is refused; the call ends.
    returns(
        "asyncio/close_under_awaiting_call",
        A + RUN + "it = interpreters.create(); q = queues.create(); it.prepare_main(q=q); res = []\n"
        "async def main():\n"
        "    c = asyncio.ensure_future(it.exec_async('q.get()'))\n"
        "    while not it.is_running(): await asyncio.sleep(0.01)\n"
        "    try: it.close()\n"
        "    except InterpreterError: res.append('refused')\n"
        "    q.put(1); await c; res.append('done')\n"
        "run(main()); it.close()\n",
        "res",
        "['refused', 'done']",
    ),
    # Channels: a closed channel under awaiting receives and a force-closed
    # one under an awaiting send; a cancelled send_async is never received.
    returns(
        "asyncio/channel_closed_under_recv_and_send",
        A + RUN + "ch = channels.create(); ch2 = channels.create(); res = []\n"
        "async def main():\n"
        "    r = asyncio.ensure_future(ch.recv_async()); s = asyncio.ensure_future(ch2.send_async(1))\n"
        "    await asyncio.sleep(0.02); ch.close(); ch2.close(force=True)\n"
        "    for t in (r, s):\n"
        "        try: await t\n"
        "        except channels.ChannelClosedError: res.append('closed')\n"
        "run(main())\n",
        "res",
        "['closed', 'closed']",
    ),
    returns(
        "asyncio/channel_cancelled_send_not_received",
        A + RUN + "ch = channels.create()\n"
        "async def main():\n"
        "    s = asyncio.ensure_future(ch.send_async('no'))\n"
        "    await asyncio.sleep(0.02); s.cancel()\n"
        "    try: await s\n"
        "    except asyncio.CancelledError: pass\n"
        "run(main())\n",
        "(ch.pending, ch.recv_nowait('nothing'))",
        "(0, 'nothing')",
    ),
    raises("asyncio/channel_recv_async_timeout", A + "ch = channels.create()\n",
           "asyncio.run(ch.recv_async(timeout=0.05))", "TimeoutError"),
    raises("asyncio/channel_send_async_bad_timeout", A + "ch = channels.create()\n",
           "asyncio.run(ch.send_async(1, timeout=-1))", "ValueError"),
    raises("asyncio/channel_bad_ticket", "ch = channels.create()\n", "ch._withdraw(-1)", "ValueError"),
]
