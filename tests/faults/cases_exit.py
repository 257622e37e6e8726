"""Process exit while threads are blocked in every kind of wait (issue 11,
problems 1 and 2): the exit must finish, with status 0, and no crash."""

from __future__ import annotations

from .framework import Case

# Each setup defines `start()` (starts the blocked daemon thread(s)) from a
# queue `q` (full when `full`), a channel `ch` and an interpreter `it`.
PRELUDE = """
import sys, threading, time
from crossinterp import interpreters, channels
"""

WAITS = {
    "queue_get": ("q = interpreters.create_queue()", "q.get()"),
    "queue_put_full": ("q = interpreters.create_queue(maxsize=1); q.put(0)", "q.put(1)"),
    "channel_send": ("ch = channels.create()", "ch.send(1)"),
    "channel_recv": ("ch = channels.create()", "ch.recv()"),
}


def _main_thread_case(kind: str, setup: str, call: str) -> Case:
    src = PRELUDE + f"""
{setup}
def wait():
    {call}
for _ in range(2):
    threading.Thread(target=wait, daemon=True).start()
time.sleep(0.3)
print("OK")
"""
    return Case(f"exit/{kind}/daemon_thread", src)


def _subinterp_case(kind: str, setup: str, call: str) -> Case:
    obj = "ch" if "ch" in setup.split("=")[0] else "q"
    src = PRELUDE + f"""
{setup}
it = interpreters.create()
it.prepare_main({obj}={obj})
threading.Thread(target=it.exec, args=({call!r},), daemon=True).start()
time.sleep(0.5)
print("OK")
"""
    return Case(f"exit/{kind}/in_subinterpreter", src)


def _call_in_thread_case(kind: str, setup: str, call: str) -> Case:
    # The waiter runs in the subinterpreter on a thread it does not own
    # (call_in_thread); two interpreters blocked on the same object.
    obj = "ch" if "ch" in setup.split("=")[0] else "q"
    src = PRELUDE + f"""
{setup}
its = [interpreters.create() for _ in range(2)]
for it in its:
    it.prepare_main({obj}={obj})
    threading.Thread(target=it.exec, args=({call!r},), daemon=True).start()
threading.Thread(target=lambda: {call}, daemon=True).start()
time.sleep(0.5)
print("OK")
"""
    return Case(f"exit/{kind}/two_subinterpreters_and_main", src)


CASES: list[Case] = []
for _kind, (_setup, _call) in WAITS.items():
    CASES.append(_main_thread_case(_kind, _setup, _call))
    CASES.append(_subinterp_case(_kind, _setup, _call))
    CASES.append(_call_in_thread_case(_kind, _setup, _call))

CASES += [
    # A waiter with a timeout on the exiting thread itself (an atexit
    # callback that runs after crossinterp's): it must not park.
    Case(
        "exit/queue_get_timeout_in_later_atexit",
        """
import atexit
def late():
    try:
        q.get(timeout=0.1)
    except interpreters.QueueEmpty:
        print("OK", flush=True)
atexit.register(late)   # registered first: runs after crossinterp's hook
from crossinterp import interpreters
q = interpreters.create_queue()
""",
    ),
    # A daemon thread whose blocking get ends (an item arrives) while the
    # exit is under way.
    Case(
        "exit/queue_get_woken_during_exit",
        PRELUDE
        + """
import atexit
q = interpreters.create_queue()
threading.Thread(target=lambda: [q.get() for _ in range(1000)], daemon=True).start()
def feed():
    for i in range(1000):
        q.put(i)
atexit.register(feed)
time.sleep(0.2)
print("OK")
""",
    ),
    # A daemon thread blocked in close() waiting for a guard held elsewhere.
    Case(
        "exit/close_waiting_for_guard",
        PRELUDE
        + """
it = interpreters.create()
g = it.view().guard()
threading.Thread(target=it.close, daemon=True).start()
time.sleep(0.5)
print("OK")
""",
    ),
    # A daemon thread inside a subinterpreter's exec, blocked in a guard
    # wait of its own (close of a third interpreter whose guard main holds).
    Case(
        "exit/exec_blocked_on_queue_while_main_holds_guard",
        PRELUDE
        + """
q = interpreters.create_queue()
it = interpreters.create(); it.prepare_main(q=q)
g = it.view().guard()
threading.Thread(target=it.exec, args=("q.get()",), daemon=True).start()
time.sleep(0.5)
print("OK")
""",
    ),
]
