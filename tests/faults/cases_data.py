"""Deep and huge data, hostile objects (raising __reduce__, __eq__, __hash__,
__del__), and Ctrl-C (SIGINT to self) in every blocking call (issue 11)."""

from __future__ import annotations

from .framework import Case, raises, returns

IT = "it = interpreters.create()\n"
Q = "q = interpreters.create_queue()\n"
# A Ctrl-C arriving 0.2 s after the blocking call starts.
# Python keeps SIGINT ignored when it starts with it ignored (a background job of a
# shell without job control), and then no Ctrl-C reaches the code under test: the
# cases install the default handler themselves rather than inherit the disposition.
SIGINT = (
    "import os, signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
)

NEST = "def nest(n, leaf=0):\n    x = leaf\n    for _ in range(n): x = (x,)\n    return x\n"
HOSTILE = """
class BadReduce:
    def __reduce__(self): raise ValueError("no reduce")
class BadHash:
    def __hash__(self): raise ArithmeticError("no hash")
class BadEq:
    def __hash__(self): return 1
    def __eq__(self, o): raise LookupError("no eq")
"""

CASES: list[Case] = [
    # deep and huge data
    returns("data/tuple_64_levels", IT + NEST, "it.call(len, nest(64))", "1"),
    returns("data/tuple_65_levels_pickled", IT + NEST, "it.call(str, nest(65)) == str(nest(65))", "True"),
    # Containers cross on an explicit stack (issue 12 part 3): any depth.
    returns("data/tuple_100k_levels", IT + NEST, "it.call(len, nest(100_000))", "1"),
    returns("data/list_100k_levels", IT + "x = []\nfor _ in range(100_000): x = [x]\n", "it.call(len, x)", "1"),
    returns("data/tuple_with_proxy_64_levels", IT + NEST, "it.call(len, nest(64, share([])))", "1"),
    returns("data/huge_int", IT, "it.call(pow, 10, 200_000) == 10**200_000", "True"),
    returns("data/huge_negative_int_back", IT, "it.call(int.__neg__, 7**100_000) == -(7**100_000)", "True"),
    returns("data/big_bytes_queue", IT + Q + "it.prepare_main(q=q)\nit.exec('q.put(bytes(range(256)) * (1 << 18))')\n",
            "q.get(timeout=10) == bytes(range(256)) * (1 << 18)", "True"),
    returns("data/big_bytes_call_arg", IT, "it.call(len, b'x' * (64 << 20))", "64 << 20"),
    returns("data/big_str_surrogates", IT, "it.call(len, '\\udc80' * (1 << 20))", "1 << 20"),
    returns("data/many_items_queue", Q, "[q.put(i) for i in range(20000)] and sum(q.get() for _ in range(20000))",
            "sum(range(20000))"),
    raises("data/big_tuple_strict_refused", Q, "q.put(tuple([[]] * 10), strict=True)", "NotShareableError"),
    # hostile objects
    raises("hostile/reduce_raises_queue", Q + HOSTILE, "q.put(BadReduce())", "NotShareableError"),
    raises("hostile/reduce_raises_call", IT + HOSTILE, "it.call(print, BadReduce())", "NotShareableError"),
    raises("hostile/reduce_raises_prepare_main", IT + HOSTILE, "it.prepare_main(x=BadReduce())", "NotShareableError"),
    raises("hostile/reduce_raises_channel", "ch = channels.create()\n" + HOSTILE, "ch.send_nowait(BadReduce())",
           "NotShareableError"),
    returns("hostile/reduce_raises_nothing_queued",
            Q + HOSTILE + "q.put(1)\ntry:\n    q.put(BadReduce())\nexcept NotShareableError:\n    pass\n",
            "(q.qsize(), q.get_nowait())", "(1, 1)"),
    raises("hostile/hash_raises_atomicdict", "d = AtomicDict()\n" + HOSTILE, "d[BadHash()] = 1", "ArithmeticError"),
    raises("hostile/eq_raises_atomicdict", HOSTILE + "d = AtomicDict(); d[BadEq()] = 1\n", "d[BadEq()]", "LookupError"),
    raises("hostile/hash_raises_proxy", IT + Q + "it.prepare_main(q=q)\n"
           "it.exec('from crossinterp import share\\nclass H:\\n    def __hash__(self): raise ArithmeticError(1)\\nq.put(share(H()))')\n",
           "hash(q.get(timeout=5))", "ArithmeticError"),
    raises("hostile/eq_raises_proxy", IT + Q + "it.prepare_main(q=q)\n"
           "it.exec('from crossinterp import share\\nclass E:\\n    def __eq__(self, o): raise LookupError(1)\\nq.put(share(E()))')\n",
           "q.get(timeout=5) == 1", "LookupError"),
    returns("hostile/del_raises_in_owner_on_release", IT + Q + "it.prepare_main(q=q)\n"
            "it.exec('from crossinterp import share\\nclass D:\\n    def __del__(self): raise ValueError(\"del\")\\n"
            "q.put(share(D()))')\np = q.get(timeout=5); del p\nit.exec('import gc; gc.collect()')\n",
            "it.call(len, 'ok')", "2"),
    returns("hostile/del_raises_at_close", IT
            + "it.exec('class D:\\n    def __del__(self): raise ValueError(\"del\")\\nd = D()')\nit.close()\n",
            "crossinterp.live_owners()", "1"),
    returns("hostile/atomicref_del_raises_on_set",
            "class D:\n    def __del__(self): raise ValueError('del')\nr = AtomicRef(D())\nr.set(1)\n",
            "r.get()", "1"),
    # Ctrl-C in every blocking call of the main thread
    raises("sigint/queue_get", Q + SIGINT, "q.get()", "KeyboardInterrupt"),
    raises("sigint/queue_put_full", "q = interpreters.create_queue(1); q.put(0)\n" + SIGINT, "q.put(1)", "KeyboardInterrupt"),
    raises("sigint/queue_get_timeout", Q + SIGINT, "q.get(timeout=10)", "KeyboardInterrupt"),
    raises("sigint/channel_recv", "ch = channels.create()\n" + SIGINT, "ch.recv()", "KeyboardInterrupt"),
    raises("sigint/channel_send", "ch = channels.create()\n" + SIGINT, "ch.send(1)", "KeyboardInterrupt"),
    raises("sigint/close_waiting_for_guard",
           IT + "threading.Thread(target=crossinterp._native._testing_hold_guard, args=(it.id, 1.5)).start()\n"
           "time.sleep(0.1)\n" + SIGINT,
           "it.close(); time.sleep(2)", "KeyboardInterrupt"),
    raises("sigint/exec_blocked_in_subinterpreter_queue",
           IT + Q + "it.prepare_main(q=q)\n" + SIGINT,
           "it.exec('q.get(timeout=2)'); time.sleep(1)", "(KeyboardInterrupt, ExecutionFailed)"),
    raises("sigint/call_in_thread_join", IT + SIGINT, "it.call_in_thread(time.sleep, 1.5).join()", "KeyboardInterrupt"),
]
