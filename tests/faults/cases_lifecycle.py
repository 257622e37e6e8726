"""Closed and dead interpreters, closed channels, owner death during every
kind of operation, and concurrent close (issue 11)."""

from __future__ import annotations

from .framework import Case, raises, returns

IT = "it = interpreters.create()\n"
CLOSED = "it = interpreters.create(); it.close()\n"
# `p`: a proxy of a list owned by `it`; `q`: a queue both see.
PROXY = """
q = interpreters.create_queue()
it = interpreters.create(); it.prepare_main(q=q)
it.exec("from crossinterp import share\\nl = [1]\\nq.put(share(l))")
p = q.get(timeout=5)
"""
LENT = """
q = interpreters.create_queue()
it = interpreters.create(); it.prepare_main(q=q)
it.exec("data = bytearray(b'hello')\\nq.put(memoryview(data))")
b = q.get(timeout=5)
"""
CH = "ch = channels.create()\n"

TABLE: list[tuple[str, str, str, str]] = [
    ("closed/exec", CLOSED, "it.exec('pass')", "InterpreterNotFoundError"),
    ("closed/call", CLOSED, "it.call(len, ())", "InterpreterNotFoundError"),
    ("closed/prepare_main", CLOSED, "it.prepare_main(x=1)", "InterpreterNotFoundError"),
    ("closed/is_running", CLOSED, "it.is_running()", "InterpreterNotFoundError"),
    ("closed/close_again", CLOSED, "it.close()", "InterpreterNotFoundError"),
    ("closed/view", CLOSED, "it.view()", "InterpreterNotFoundError"),
    ("closed/Interpreter_by_id", CLOSED, "interpreters.Interpreter(it.id)", "InterpreterNotFoundError"),
    ("closed/call_in_thread", CLOSED + "seen = []\nthreading.excepthook = lambda a: seen.append(a.exc_type)\n",
     "it.call_in_thread(len, ()).join()\nraise seen[0]", "InterpreterNotFoundError"),
    ("closed/close_while_running",
     IT + "q = interpreters.create_queue(); it.prepare_main(q=q)\n"
     "t = threading.Thread(target=it.exec, args=('q.get()',)); t.start(); time.sleep(0.3)\n",
     "try:\n    it.close()\nfinally:\n    q.put(1); t.join()", "InterpreterError"),
    ("closed/close_holding_guard", IT + "g = it.view().guard()\n", "it.close()", "InterpreterError"),
    ("closed/guard_after_close", IT + "v = it.view(); it.close()\n", "v.guard()", "InterpreterGoneError"),
    # owner death
    ("owner_death/proxy_call", PROXY + "m = p.append; it.close()\n", "m(2)", "InterpreterGoneError"),
    ("owner_death/proxy_len", PROXY + "it.close()\n", "len(p)", "InterpreterGoneError"),
    ("owner_death/proxy_getitem", PROXY + "it.close()\n", "p[0]", "InterpreterGoneError"),
    ("owner_death/proxy_setattr", PROXY + "it.close()\n", "p.x = 1", "InterpreterGoneError"),
    ("owner_death/proxy_iter", PROXY + "it.close()\n", "iter(p)", "InterpreterGoneError"),
    ("owner_death/lent_memoryview", LENT + "it.close()\n", "memoryview(b)", "InterpreterGoneError"),
    ("owner_death/lent_release_then_use", LENT + "it.close(); b.release()\n", "len(b)", "ValueError"),
    ("owner_death/guard_on_closed_view", IT + "v = it.view(); it.close()\n", "with v.guard(): pass", "InterpreterGoneError"),
    ("owner_death/queue_item_unbound_error",
     "q = interpreters.create_queue(unbounditems=queues.UNBOUND_ERROR)\n" + IT
     + "it.prepare_main(q=q); it.exec('q.put([1, 2])'); it.close()\n",
     "q.get(timeout=5)", "queues.ItemInterpreterDestroyed"),
    ("owner_death/big_bytes_pinned_sender_gone",
     "q = interpreters.create_queue(unbounditems=queues.UNBOUND_ERROR)\n" + IT
     + "it.prepare_main(q=q); it.exec('q.put(bytes(1 << 20))'); it.close()\n",
     "q.get(timeout=5)", "(queues.ItemInterpreterDestroyed, InterpreterGoneError)"),
    # closed channels
    ("channel_closed/send", CH + "ch.close()\n", "ch.send_nowait(1)", "channels.ChannelClosedError"),
    ("channel_closed/recv", CH + "ch.close()\n", "ch.recv_nowait(None)", "channels.ChannelClosedError"),
    ("channel_closed/send_end_recv", CH + "ch.close(send=True)\n", "ch.recv(timeout=1)", "channels.ChannelClosedError"),
    ("channel_closed/close_twice", CH + "ch.close()\n", "ch.close()", "channels.ChannelClosedError"),
    ("channel_closed/close_with_pending",
     CH + "t = threading.Thread(target=lambda: ch.send(1)); t.start()\nwhile ch.pending == 0: time.sleep(0.01)\n",
     "try:\n    ch.close()\nfinally:\n    ch.recv(); t.join()", "channels.ChannelNotEmptyError"),
    ("channel_closed/force_close_pending_sender",
     CH + "err = []\ndef s():\n    try: ch.send(1)\n    except BaseException as e: err.append(e)\n"
     "t = threading.Thread(target=s); t.start()\nwhile ch.pending == 0: time.sleep(0.01)\n"
     "ch.close(force=True); t.join(5)\n",
     "raise err[0]", "channels.ChannelClosedError"),
    ("channel_closed/recv_blocked_then_closed",
     CH + "threading.Timer(0.2, lambda: ch.close()).start()\n", "ch.recv(timeout=5)", "channels.ChannelClosedError"),
]

CASES: list[Case] = [raises(n, s, st, e) for n, s, st, e in TABLE]
CASES += [
    # The problem 4: reading a method of a dead proxy must raise.
    raises("owner_death/proxy_attribute_read", PROXY + "it.close()\n", "p.append", "InterpreterGoneError"),
    returns("owner_death/lent_alive_false", LENT + "it.close()\n", "b.alive", "False"),
    returns("owner_death/view_state", IT + "v = it.view(); it.close()\n", "(v.is_alive(), v.state())", "(False, 'finalized')"),
    returns(
        "owner_death/queue_item_unbound_remove",
        "q = interpreters.create_queue(unbounditems=queues.UNBOUND_REMOVE)\n" + IT
        + "it.prepare_main(q=q); it.exec('q.put([1])'); q.put(2); it.close()\n",
        "(q.qsize(), q.get_nowait())",
        "(1, 2)",
    ),
    returns(
        "owner_death/queue_item_unbound",
        "q = interpreters.create_queue()\n" + IT + "it.prepare_main(q=q); it.exec('q.put([1])'); it.close()\n",
        "q.get(timeout=5)",
        "queues.UNBOUND",
    ),
    # Concurrent close: two threads close one interpreter; exactly one wins.
    returns(
        "concurrent/close_twice_from_threads",
        IT + "res = []\nbar = threading.Barrier(4)\n"
        "def c():\n    bar.wait()\n    try:\n        it.close(); res.append('ok')\n"
        "    except InterpreterNotFoundError:\n        res.append('nf')\n"
        "ts = [threading.Thread(target=c) for _ in range(4)]\n[t.start() for t in ts]; [t.join() for t in ts]\n",
        "sorted(res)",
        "['nf', 'nf', 'nf', 'ok']",
    ),
    # Close the owner while another thread hammers its proxy: the hammering
    # ends with InterpreterGoneError, nothing else.
    returns(
        "concurrent/close_during_proxy_calls",
        PROXY + "errs = []\n"
        "def h():\n    try:\n        while True: p.append(1); len(p)\n"
        "    except BaseException as e:\n        errs.append(type(e).__name__)\n"
        "t = threading.Thread(target=h); t.start(); time.sleep(0.2); it.close(); t.join(10)\n",
        "errs",
        "['InterpreterGoneError']",
    ),
    # Close a channel while threads are blocked in send and recv.
    returns(
        "concurrent/channel_close_with_blocked_recv_threads",
        CH + "errs = []\n"
        "def r():\n    try: ch.recv()\n    except BaseException as e: errs.append(type(e).__name__)\n"
        "ts = [threading.Thread(target=r) for _ in range(3)]\n[t.start() for t in ts]; time.sleep(0.2)\n"
        "ch.close(); [t.join(5) for t in ts]\n",
        "errs",
        "['ChannelClosedError'] * 3",
    ),
    # Many producers and consumers across interpreters: nothing lost or doubled.
    returns(
        "concurrent/queue_count_across_interpreters",
        "q = interpreters.create_queue(8); out = interpreters.create_queue()\n"
        "its = [interpreters.create() for _ in range(2)]\n"
        "for i, it in enumerate(its):\n    it.prepare_main(q=q, base=i * 500)\n"
        "ts = [threading.Thread(target=it.exec, args=('for i in range(500): q.put(base + i)',)) for it in its]\n"
        "[t.start() for t in ts]\ngot = [q.get(timeout=10) for _ in range(1000)]\n[t.join() for t in ts]\n",
        "sorted(got)",
        "list(range(1000))",
    ),
    # CPython 3.13's static-type race (issue 11): the first subinterpreter to
    # import `_datetime` closed before the last one (which then frees the
    # first one's tuples into its own allocator: "free(): invalid pointer").
    returns(
        "static_types/datetime_first_importer_closed_first",
        "days = []\n"
        "for _ in range(5):\n"
        "    a = interpreters.create(); a.exec('import _datetime')\n"
        "    b = interpreters.create()\n"
        "    days.append(b.call(eval, '__import__(\"datetime\").date(2026, 12, 1).toordinal()'))\n"
        "    a.close(); b.close()\n",
        "days",
        "[__import__('datetime').date(2026, 12, 1).toordinal()] * 5",
    ),
    # The same race with the imports concurrent (two threads) and the closes
    # done by a third thread, as in a pool whose interpreters are closed
    # under it.
    returns(
        "static_types/datetime_concurrent_import_close_from_other_thread",
        "for _ in range(5):\n"
        "    its = [interpreters.create() for _ in range(2)]\n"
        "    ts = [threading.Thread(target=it.exec, args=('import _datetime',)) for it in its]\n"
        "    [t.start() for t in ts]; [t.join() for t in ts]\n"
        "    c = threading.Thread(target=lambda: [it.close() for it in its]); c.start(); c.join()\n",
        "interpreters.list_all() == [interpreters.get_main()]",
        "True",
    ),
    # CPython 3.13's sys._current_frames() race (issue 11): the main
    # interpreter samples every thread's frames (as distributed's profiler
    # does) while own-GIL subinterpreters run Python code.
    returns(
        "current_frames/sampled_in_main_while_subinterpreters_run",
        "stop = threading.Event()\n"
        "def sampler():\n"
        "    while not stop.is_set():\n"
        "        sys._current_frames(); sys._current_exceptions(); time.sleep(0.0005)\n"
        "s = threading.Thread(target=sampler); s.start()\n"
        "its = [interpreters.create() for _ in range(2)]\n"
        "src = 'def rec(n):\\n    return 0 if n == 0 else 1 + rec(n - 1)\\nfor i in range(2000): rec(40)'\n"
        "for _ in range(3):\n"
        "    ts = [threading.Thread(target=it.exec, args=(src,)) for it in its]\n"
        "    [t.start() for t in ts]; [t.join() for t in ts]\n"
        "stop.set(); s.join()\n"
        "[it.close() for it in its]\n",
        "sorted(sys._current_frames()) == [threading.get_ident()]",
        "True",
    ),
]

# A blocked get/recv in one interpreter while another one dies (issue 11): the
# queue or channel is owned by no interpreter, so it outlives its creator and
# the wait goes on (until its timeout, or an item from anyone); items the dead
# interpreter put follow the queue's unbounditems; nothing hangs or is lost.
# `a`: made the queue/channel and then dies; the main interpreter waits on it.
MADE_BY_A = """
a = interpreters.create(); qq = interpreters.create_queue(); a.prepare_main(qq=qq)
a.exec("from crossinterp import interpreters\\nfrom crossinterp.channels import Channel\\n"
       "qq.put(interpreters.create_queue()); qq.put(Channel())")
q = qq.get(timeout=5); ch = qq.get(timeout=5)
res = []
def waiting(f):
    def run():
        try: res.append(f())
        except BaseException as e: res.append(type(e).__name__)
    t = threading.Thread(target=run); t.start(); time.sleep(0.3)
    return t
"""
# The main interpreter blocked in get() while `a` puts items it owns and dies.
ITEMS_OF_A = """
res = []
def getter(n, timeout):
    def run():
        for _ in range(n):
            try: res.append(q.get(timeout=timeout))
            except BaseException as e: res.append(type(e).__name__)
    t = threading.Thread(target=run); t.start(); time.sleep(0.3)
    return t
a = interpreters.create(); a.prepare_main(q=q)
"""
CASES += [
    returns(
        "owner_death/blocked_get_queue_creator_closed",
        MADE_BY_A + "t = waiting(lambda: q.get(timeout=10)); a.close(); time.sleep(0.2)\n"
        "q.put(42); t.join(15)\n",
        "(res, t.is_alive())",
        "([42], False)",
    ),
    returns(
        "owner_death/blocked_get_no_timeout_only_other_holder_closed",
        MADE_BY_A + "t = waiting(q.get); a.close(); threading.Timer(0.3, q.put, (7,)).start(); t.join(15)\n",
        "(res, t.is_alive())",
        "([7], False)",
    ),
    returns(
        "owner_death/blocked_get_timeout_after_creator_closed",
        MADE_BY_A + "t0 = time.monotonic(); t = waiting(lambda: q.get(timeout=1.5)); a.close(); t.join(15)\n",
        "(res, t.is_alive(), time.monotonic() - t0 < 12)",
        "(['QueueEmpty'], False, True)",
    ),
    returns(
        "owner_death/blocked_recv_channel_creator_closed",
        MADE_BY_A + "t = waiting(lambda: ch.recv(timeout=1.5)); a.close(); t.join(15)\n"
        "t2 = threading.Thread(target=ch.send, args=([3],)); t2.start(); got = ch.recv(timeout=10); t2.join(10)\n",
        "(res, t.is_alive(), got, ch.closed)",
        "(['TimeoutError'], False, [3], False)",
    ),
    returns(
        "owner_death/blocked_recv_sender_thread_in_dying_owner",
        # `a`'s own thread is blocked in send when we close `a`: close waits for
        # that thread, whose send our recv completes; the item is not lost.
        "from crossinterp.channels import Channel\nch = Channel()\n"
        "a = interpreters.create(); a.prepare_main(ch=ch)\n"
        "a.exec('import threading\\nt = threading.Thread(target=lambda: ch.send([5]))\\nt.start()')\n"
        "while ch.pending == 0: time.sleep(0.01)\n"
        "closer = threading.Thread(target=a.close); closer.start(); time.sleep(0.2)\n"
        "got = ch.recv(timeout=10); closer.join(15)\n",
        "(got, closer.is_alive(), a.id in [i.id for i in interpreters.list_all()])",
        "([5], False, False)",
    ),
]
for _ub, _marker in (("UNBOUND", "queues.UNBOUND"), ("UNBOUND_ERROR", "'ItemInterpreterDestroyed'")):
    CASES.append(
        returns(
            f"owner_death/blocked_get_items_of_dying_owner_{_ub.lower()}",
            # Each item arrives, or (put by `a`, not taken before it died) as the
            # queue's marker; nothing is duplicated or lost, nothing hangs.
            f"q = interpreters.create_queue(unbounditems=queues.{_ub})\n" + ITEMS_OF_A
            + "t = getter(3, 10)\n"
            "a.exec('from crossinterp import share\\nl = [1]\\nq.put(share(l)); q.put([2]); q.put(3)')\n"
            "a.close(); t.join(30)\n"
            f"ok = len(res) == 3 and all(r == w or r is {_marker} or r == {_marker} for r, w in zip(res[1:], ([2], 3)))\n"
            "first = res[0]\n"
            # The proxy, if taken in time, is dead now (its owner is gone).
            "ok = ok and (crossinterp._native.proxy_info(first) == (a.id, False)\n"
            f"             if isinstance(first, crossinterp.SharedObjectProxy) else first == {_marker})\n",
            "(ok, t.is_alive(), q.qsize())",
            "(True, False, 0)",
        )
    )
CASES.append(
    returns(
        "owner_death/blocked_get_items_of_dying_owner_unbound_remove",
        "q = interpreters.create_queue(unbounditems=queues.UNBOUND_REMOVE)\n" + ITEMS_OF_A
        + "t = getter(3, 1.5)\n"
        "a.exec('q.put([2]); q.put(3)')\n"
        "a.close(); t.join(30)\n"
        # Taken before `a` died, else removed with it (then the get times out).
        "ok = [r for r in res if r != 'QueueEmpty'] in ([[2], 3], [[2]], [])\n",
        "(ok, t.is_alive(), q.qsize(), len(res))",
        "(True, False, 0, 3)",
    )
)
