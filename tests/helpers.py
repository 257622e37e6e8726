"""Functions the tests call in other interpreters (importable there by name)."""

import os
import threading
import time


def square(x):
    return x * x


def echo(*args, **kwargs):
    return args, kwargs


def raise_value_error(msg):
    raise ValueError(msg)


def interp_id():
    from crossinterp import interpreters

    return interpreters.get_current().id


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def spin_window(seconds):
    """Busy-loop for `seconds` of CPU; return (start, end) on the monotonic clock."""
    start = time.monotonic()
    x = 0
    while time.monotonic() - start < seconds:
        x += 1
    return start, time.monotonic()


def returns_lock():
    return threading.Lock()


def pid():
    return os.getpid()


class MyInt(int):
    pass


def main_eval(expr):
    """Evaluate `expr` in the interpreter's __main__ namespace."""
    import sys

    return eval(expr, sys.modules["__main__"].__dict__)


def produce(q, pid, n):
    for seq in range(n):
        q.put((pid, seq))
    return n


def consume(q):
    """Get until a None; UNBOUND items are reported as the string 'UNBOUND'."""
    from crossinterp.queues import UNBOUND

    got = []
    while True:
        item = q.get(timeout=60)
        if item is None:
            return tuple(got)
        got.append("UNBOUND" if item is UNBOUND else item)


def put_each_policy(q):
    from crossinterp.queues import UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE

    q.put("unbound", unbounditems=UNBOUND)
    q.put("error", unbounditems=UNBOUND_ERROR)
    q.put("remove", unbounditems=UNBOUND_REMOVE)
    q.put("default")


def qsize_seen(q, started, stop):
    """Put on ``started``, then read ``q.qsize()`` until ``stop`` holds an
    item: (reads, fewest, most)."""
    started.put(None)
    reads, lo, hi = 0, None, None
    while not stop.qsize():
        for _ in range(100):
            n = q.qsize()
            lo = n if lo is None or n < lo else lo
            hi = n if hi is None or n > hi else hi
        reads += 100
    return reads, lo, hi


def recv_all(ch):
    """Receive until the channel is closed."""
    return tuple(ch)


def send_range(ch, n):
    for i in range(n):
        ch.send(i)
    return n


def view_info(buf):
    """Read a lent buffer in this interpreter: (type name, bytes, readonly)."""
    with memoryview(buf) as mv:
        return type(buf).__name__, mv.tobytes(), mv.readonly


def hammer_queue(q, pid, n, batch):
    """Put n sequence-numbered items in batches, getting as many back from the
    same queue in between (a put/get storm); returns what was got."""
    got = []
    for start in range(0, n, batch):
        for seq in range(start, min(n, start + batch)):
            q.put((pid, seq), timeout=60)
        for _ in range(min(n, start + batch) - start):
            got.append(q.get(timeout=60))
    return tuple(got)


def hammer_big(q, pid, n):
    """Put n large containers (streams from the encoder's buffer pool), each
    getting one back from the same queue; every one got is checked whole.
    Returns the (pid, seq) of what was got."""
    got = []
    for seq in range(n):
        q.put({"id": (pid, seq), "data": list(range(seq, seq + 5000))}, timeout=60)
        item = q.get(timeout=60)
        p, s = item["id"]
        if item["data"] != list(range(s, s + 5000)):
            raise AssertionError(f"item {(p, s)} arrived changed")
        got.append((p, s))
    return tuple(got)


def touch_buffer(buf, rounds):
    for _ in range(rounds):
        with memoryview(buf) as mv:
            mv[0] = (mv[0] + 1) % 256
    return rounds


def identity(x):
    return x


def bump(counter, n):
    for _ in range(n):
        counter.inc()
    return counter.get()


def shared_in_receiver(x):
    """For `[a, a, x]`: whether the receiver got one object twice, and `x`'s type."""
    return x[0] is x[1], type(x[0]).__name__


def self_cycle_in_receiver(x):
    return x[-1] is x


def nesting_depth(x):
    """Depth of a chain of one-item containers (iteratively: no recursion)."""
    n = 0
    while isinstance(x, (list, tuple, dict)) and x:
        x = x["k"] if isinstance(x, dict) else x[0]
        n += 1
    return n


def deep_list(n):
    x = []
    for _ in range(n):
        x = [x]
    return x


def recv_one(ch):
    return ch.recv(timeout=60)


def put_back(q_in, q_out):
    """Get one item and put it back on another queue (a receiver re-sends it)."""
    q_out.put(q_in.get(timeout=60))


class HashFailsAfterLoad:
    """Hashable in the sender; its __hash__ raises once unpickled elsewhere."""

    def __init__(self, loaded=False):
        self.loaded = loaded

    def __reduce__(self):
        return (HashFailsAfterLoad, (True,))

    def __hash__(self):
        if self.loaded:
            raise ValueError("no hash after loading")
        return 1

    def __eq__(self, other):
        return self is other


class MyList(list):
    pass


def str_hashes(x):
    """Each str in `x` (a dict's keys, or a list) with its hash here, and
    the hash of an equal str built here from its characters."""
    return [(s, hash(s), hash("".join(list(s)))) for s in x if isinstance(s, str)]


def identities_in_receiver(x):
    """For `[a, b, c, ...]`: the index of the first item each item is (by
    identity), as the receiver sees them: equal but distinct items differ."""
    return [next(j for j, y in enumerate(x) if y is v) for v in x]
