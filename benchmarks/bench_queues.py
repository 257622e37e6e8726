"""Cross-interpreter queues and SharedBuffer: crossinterp side by side with the
stdlib peers, in the same run, reported as ratios.

    scripts/py 3.14 benchmarks/bench_queues.py [--quick] [--only NAME ...]

1. ping-pong: a small int bounced main -> subinterpreter -> main over a pair
   of queues (round trips/s). Peers: ``concurrent.interpreters.Queue`` with
   default settings (its blocking get/put sleep-poll every 10 ms), the same
   driven by ``get_nowait`` retry loops (informational), and
   ``multiprocessing.Pipe`` between two processes.
2. streaming: small ints one way, SPSC (main -> one subinterpreter) and
   2 producers x 2 consumers (four subinterpreters). The stdlib queue is driven
   with ``put_nowait``/``get_nowait`` retry loops (its fastest mode); ours with
   plain blocking ``put``/``get``.
3. transfer: 1 KiB .. 64 MiB from main to a subinterpreter, which touches the
   first and last byte through a memoryview and acks with a small int; one
   transfer = one round trip. Ours: a ``SharedBuffer`` (zero-copy) and the same
   data as ``bytes`` (copy path) through our Queue. Peers: ``bytes`` through the
   stdlib interpreters queue (retry loops) and through ``multiprocessing.Queue``
   to another process; plus one ``memcpy`` of the same size for reference.

On 3.13 the stdlib has no public interpreters Queue; the peer there is the
low-level ``_interpqueues`` module (with ``_interpreters``), which has no
blocking get, so it is driven with retry loops everywhere.

Ratio = peer time / crossinterp time (> 1: crossinterp is faster). Each figure
is the best of N interleaved rounds (ours and the peers alternate, so machine
noise hits both alike).
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import multiprocessing as mp
import sys
import threading
import time

from _machine import Meter, Rounds, fmt_idle, footer, header

from crossinterp import SharedBuffer
from crossinterp import interpreters as ours
from crossinterp.queues import Queue

KiB = 1024
MiB = 1024 * KiB
SIZES = (1 * KiB, 64 * KiB, 1 * MiB, 64 * MiB)
HANG_SECONDS = 300  # a single measurement taking longer than this is a hang

# forkserver on every version: with fork (3.13's default) a child forked while a
# subinterpreter is alive crashes in CPython's after-fork cleanup, whoever made
# the interpreter (stdlib or crossinterp): CPython gh-139759 / gh-101437.
MP = mp.get_context("forkserver")


# ---------------------------------------------------------------- shared code
# Defined in the main interpreter and, as source, in every subinterpreter.
# `make_get`/`make_put` give a zero-argument getter / one-argument putter for
# a queue; with SPIN they retry the non-blocking call (the fast way to drive
# the stdlib queue, whose blocking calls sleep-poll every 10 ms).

COMMON = """
from time import perf_counter

def touch(x):
    m = memoryview(x)
    r = m[0] + m[-1]
    m.release()
    return r

def echo_loop(a, b, spin, ack):
    get = make_get(a, spin)
    put = make_put(b, spin)
    while True:
        x = get()
        if x is None:
            break
        if ack:
            touch(x)
            put(1)
        else:
            put(x)

def consume(q, r, spin):
    get = make_get(q, spin)
    put = make_put(r, spin)
    put(0)  # ready
    n = 0
    while True:
        x = get()
        if x is None:
            break
        n += 1
    put(perf_counter())
    put(n)

def produce(q, go, r, n, spin):
    get_go = make_get(go, spin)
    put = make_put(q, spin)
    put_r = make_put(r, spin)
    put_r(0)  # ready
    get_go()
    t0 = perf_counter()
    for i in range(n):
        put(i)
    put(None)
    put_r(t0)
"""

OURS_PRELUDE = """
def make_get(q, spin):
    return q.get

def make_put(q, spin):
    return q.put
"""

STDLIB_PRELUDE = """
from concurrent.interpreters import QueueEmpty, QueueFull

def make_get(q, spin):
    if not spin:
        return q.get
    get_nowait = q.get_nowait
    def get():
        while True:
            try:
                return get_nowait()
            except QueueEmpty:
                pass
    return get

def make_put(q, spin):
    if not spin:
        return q.put
    put_nowait = q.put_nowait
    def put(x):
        while True:
            try:
                return put_nowait(x)
            except QueueFull:
                pass
    return put
"""

# 3.13: the raw module. Its error classes are registered by the (not
# installed) test.support.interpreters.queues; register minimal ones, as that
# module does, else an empty get raises ModuleNotFoundError.
RAW313_PRELUDE = """
import _interpqueues as _q

class Queue:
    pass

class QueueEmpty(_q.QueueError):
    pass

class QueueFull(_q.QueueError):
    pass

_q._register_heap_types(Queue, QueueEmpty, QueueFull)

def make_get(qid, spin):
    raw_get = _q.get
    def get():
        while True:
            try:
                return raw_get(qid)[0]
            except QueueEmpty:
                pass
    return get

def make_put(qid, spin):
    raw_put = _q.put
    def put(x):
        while True:
            try:
                return raw_put(qid, x, 0, 3)  # fmt: shared only; unboundop: UNBOUND
            except QueueFull:
                pass
    return put
"""


# ---------------------------------------------------------------- helpers


class Hang(RuntimeError):
    pass


def arm_watchdog() -> None:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)


class Runner:
    """Run fn(*args) in a thread; join() re-raises its exception."""

    def __init__(self, fn, *args):
        self.exc: BaseException | None = None
        self.t = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.t.start()

    def _run(self, fn, args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised by join()
            self.exc = e

    def join(self) -> None:
        self.t.join(HANG_SECONDS)
        if self.t.is_alive():
            faulthandler.dump_traceback(all_threads=True)
            raise Hang("a benchmark thread did not finish")
        if self.exc is not None:
            raise self.exc


def fmt_time(s: float) -> str:
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_rate(per_s: float) -> str:
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M/s"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k/s"
    return f"{per_s:.1f} /s"


def fmt_size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


def calibrate(run, target: float, n0: int = 2) -> int:
    """Smallest n (>= n0) such that run(n) takes about `target` seconds."""
    n = n0
    while True:
        dt = run(n)
        if dt >= target / 8 or n >= 10_000_000:
            return max(n0, int(n * target / max(dt, 1e-9)))
        n *= 4


def interleaved(cases: dict, repeat: int, target: float, n0: int = 2) -> dict:
    """cases: name -> run(n) returning elapsed seconds for n operations.
    Calibrate each, then `repeat` rounds in turn; best time per operation
    (a Rounds: every round's time in .samples, the idle fraction in .idle)."""
    sizes = {}
    for name, run in cases.items():
        arm_watchdog()
        sizes[name] = calibrate(run, target, n0)
    samples: dict = {name: [] for name in cases}
    meter = Meter()
    for _ in range(repeat):
        for name, run in cases.items():
            arm_watchdog()
            n = sizes[name]
            samples[name].append(run(n) / n)
    return Rounds(samples, meter.stop())


# ---------------------------------------------------------------- interpreter backends


class Backend:
    """One kind of cross-interpreter queue plus the interpreters that drive it."""

    name: str
    prelude: str
    spin = False

    def __init__(self):
        self.ns: dict = {}
        exec(self.prelude + COMMON, self.ns)  # noqa: S102 - our own constant source
        self.interps: list = []
        self.queues: list = []

    # main-side queue operations
    def getter(self, q):
        return self.ns["make_get"](q, self.spin)

    def putter(self, q):
        return self.ns["make_put"](q, self.spin)

    def new_interp(self, **names):
        it = self._create()
        self.interps.append(it)
        self._exec(it, self.prelude + COMMON)
        self._prepare(it, {"SPIN": self.spin, **names})
        return it

    def new_queue(self):
        q = self._queue()
        self.queues.append(q)
        return q

    def start(self, it, src: str) -> Runner:
        return Runner(self._exec, it, src)

    def close(self):
        for it in self.interps:
            self._close(it)
        self.interps.clear()
        self.queues.clear()


class OursBackend(Backend):
    name = "crossinterp Queue"
    prelude = OURS_PRELUDE

    def _create(self):
        return ours.create()

    def _queue(self):
        return Queue()

    def _prepare(self, it, names):
        it.prepare_main(**names)

    def _exec(self, it, src):
        it.exec(src)

    def _close(self, it):
        it.close()


class StdlibBackend(Backend):
    prelude = STDLIB_PRELUDE

    def __init__(self, spin: bool):
        import concurrent.interpreters as ci

        self.ci = ci
        self.spin = spin
        self.name = "concurrent.interpreters.Queue" + (
            " (get_nowait retry)" if spin else " (default)"
        )
        super().__init__()

    def _create(self):
        return self.ci.create()

    def _queue(self):
        return self.ci.create_queue()

    def _prepare(self, it, names):
        it.prepare_main(**names)

    def _exec(self, it, src):
        it.exec(src)

    def _close(self, it):
        it.close()


class Raw313Backend(Backend):
    name = "_interpqueues (3.13, retry)"
    prelude = RAW313_PRELUDE
    spin = True

    def __init__(self):
        import _interpqueues
        import _interpreters

        self.iq = _interpqueues
        self.ii = _interpreters
        super().__init__()

    def _create(self):
        return self.ii.create()

    def _queue(self):
        return self.iq.create(0, 0, 3)

    def _prepare(self, it, names):
        self.ii.set___main___attrs(it, names)

    def _exec(self, it, src):
        exc = self.ii.exec(it, src)
        if exc is not None:
            raise RuntimeError(f"exec failed in interpreter {it}: {exc}")

    def _close(self, it):
        self.ii.destroy(it)

    def close(self):
        super().close()
        for qid in self.queues:
            self.iq.destroy(qid)


def stdlib_backend(spin: bool) -> Backend | None:
    if sys.version_info >= (3, 14):
        return StdlibBackend(spin)
    try:
        import _interpqueues  # noqa: F401
        import _interpreters  # noqa: F401
    except ImportError:
        return None
    return Raw313Backend() if spin else None


# ---------------------------------------------------------------- per-benchmark runs


def xi_echo(be: Backend, item, ack: bool):
    """run(n): n round trips main -> sub -> main carrying `item`."""
    a, b = be.new_queue(), be.new_queue()
    it = be.new_interp(a=a, b=b)
    put, get = be.putter(a), be.getter(b)
    src = f"echo_loop(a, b, SPIN, {ack})"

    def run(n: int) -> float:
        th = be.start(it, src)
        put(item)
        get()  # the loop is running
        t0 = time.perf_counter()
        for _ in range(n):
            put(item)
            get()
        dt = time.perf_counter() - t0
        put(None)
        th.join()
        return dt

    return run


def mp_pipe_echo(conn) -> None:
    while True:
        x = conn.recv()
        if x is None:
            break
        conn.send(x)


def mp_queue_echo(qin, qout) -> None:
    touch = _main_ns["touch"]
    while True:
        x = qin.get()
        if x is None:
            break
        touch(x)
        qout.put(1)


_main_ns: dict = {}
exec(OURS_PRELUDE + COMMON, _main_ns)  # noqa: S102 - our own constant source


class MpPipe:
    def __init__(self):
        self.conn, child = MP.Pipe()
        self.p = MP.Process(target=mp_pipe_echo, args=(child,))
        self.p.start()
        child.close()

    def run(self, n: int) -> float:
        send, recv = self.conn.send, self.conn.recv
        send(1)
        recv()
        t0 = time.perf_counter()
        for _ in range(n):
            send(1)
            recv()
        return time.perf_counter() - t0

    def close(self):
        self.conn.send(None)
        self.p.join(HANG_SECONDS)


class MpQueue:
    def __init__(self):
        self.qin, self.qout = MP.Queue(), MP.Queue()
        self.p = MP.Process(target=mp_queue_echo, args=(self.qin, self.qout))
        self.p.start()

    def runner(self, item):
        def run(n: int) -> float:
            put, get = self.qin.put, self.qout.get
            put(item)
            get()
            t0 = time.perf_counter()
            for _ in range(n):
                put(item)
                get()
            return time.perf_counter() - t0

        return run

    def close(self):
        self.qin.put(None)
        self.p.join(HANG_SECONDS)


def xi_spsc(be: Backend):
    """run(n): main puts n ints, one subinterpreter gets them."""
    q, r = be.new_queue(), be.new_queue()
    it = be.new_interp(q=q, r=r)
    put, get_r = be.putter(q), be.getter(r)

    def run(n: int) -> float:
        th = be.start(it, "consume(q, r, SPIN)")
        get_r()  # ready
        t0 = time.perf_counter()
        for i in range(n):
            put(i)
        put(None)
        th.join()
        t_end, got = get_r(), get_r()
        assert got == n, (got, n)
        return t_end - t0

    return run


def single_thread(be: Backend):
    """run(n): put n ints then get them back, one thread, no other interpreter:
    the per-item cost of the calls themselves (as driven in the streaming runs)."""
    q = be.new_queue()
    put, get = be.putter(q), be.getter(q)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            put(i)
        for _ in range(n):
            get()
        return time.perf_counter() - t0

    return run


def xi_mpmc(be: Backend, producers: int = 2, consumers: int = 2):
    """run(n): `producers` subinterpreters put n ints in all, `consumers`
    subinterpreters get them; from the first producer's start to the last get."""
    q, go = be.new_queue(), be.new_queue()
    prods = []
    for _ in range(producers):
        r = be.new_queue()
        prods.append((be.new_interp(q=q, go=go, r=r), be.getter(r)))
    cons = []
    for _ in range(consumers):
        r = be.new_queue()
        cons.append((be.new_interp(q=q, r=r), be.getter(r)))
    put_go = be.putter(go)

    def run(n: int) -> float:
        each = n // producers
        ths = [be.start(it, "consume(q, r, SPIN)") for it, _ in cons]
        ths += [be.start(it, f"produce(q, go, r, {each}, SPIN)") for it, _ in prods]
        for _, get_r in cons + prods:
            get_r()  # ready
        for _ in prods:
            put_go(1)
        for th in ths:
            th.join()
        starts = [get_r() for _, get_r in prods]
        ends, got = [], 0
        for _, get_r in cons:
            ends.append(get_r())
            got += get_r()
        assert got == each * producers, (got, each * producers)
        return (max(ends) - min(starts)) * n / (each * producers)

    return run


# ---------------------------------------------------------------- benchmarks


def bench_pingpong(a, rows):
    print("\n[1] ping-pong: small int main -> subinterpreter -> main (one round trip)")
    ob = OursBackend()
    peers = {"crossinterp Queue": ob}
    sd = stdlib_backend(spin=False)
    ss = stdlib_backend(spin=True)
    cases = {"crossinterp Queue": xi_echo(ob, 1, ack=False)}
    for be in (sd, ss):
        if be is not None:
            peers[be.name] = be
            cases[be.name] = xi_echo(be, 1, ack=False)
    pipe = MpPipe()
    cases["multiprocessing.Pipe"] = pipe.run
    try:
        best = interleaved(cases, a.repeat, a.target)
    finally:
        pipe.close()
        for be in peers.values():
            be.close()
    o = best["crossinterp Queue"]
    print(f"  {'':<50}{'per round trip':>16}{'round trips/s':>16}{'ratio':>10}{'spread':>8}")
    for name, t in best.items():
        ratio = "" if name == "crossinterp Queue" else f"{t / o:.1f}x"
        print(f"  {name:<50}{fmt_time(t):>16}{fmt_rate(1 / t):>16}{ratio:>10}{best.spread(name):>8}")
    print(f"  (machine idle while measured: {fmt_idle(best.idle)})")
    if sd is not None:
        rows.append(("ping-pong vs stdlib interpreters Queue (default)", best[sd.name] / o, 100))
    else:
        rows.append(("ping-pong vs stdlib interpreters Queue (default)", None, 100))
    rows.append(("ping-pong vs multiprocessing.Pipe", best["multiprocessing.Pipe"] / o, 2))


def bench_streaming(a, rows):
    print("\n[2] streaming small ints one way (time per item; stdlib: nowait retry loops)")
    n0 = 1000
    for label, make, key in (
        ("put + get in one thread, no concurrency (per-item call cost)", single_thread, None),
        ("SPSC (main -> 1 subinterpreter)", xi_spsc, "SPSC"),
        ("2 producers x 2 consumers (4 subinterpreters)", xi_mpmc, "2Px2C"),
    ):
        ob = OursBackend()
        ss = stdlib_backend(spin=True)
        cases = {"crossinterp Queue": make(ob)}
        if ss is not None:
            cases[ss.name] = make(ss)
        try:
            best = interleaved(cases, a.repeat, a.target, n0)
        finally:
            ob.close()
            if ss is not None:
                ss.close()
        o = best["crossinterp Queue"]
        print(f"  {label} (idle {fmt_idle(best.idle)})")
        print(f"    {'':<50}{'per item':>12}{'items/s':>14}{'ratio':>10}{'spread':>8}")
        for name, t in best.items():
            ratio = "" if name == "crossinterp Queue" else f"{t / o:.2f}x"
            print(f"    {name:<50}{fmt_time(t):>12}{fmt_rate(1 / t):>14}{ratio:>10}{best.spread(name):>8}")
        if key is None:
            continue
        r = best[ss.name] / o if ss is not None else None
        rows.append((f"streaming {key} vs stdlib interpreters Queue", r, 3))


def memcpy_times(size: int, target: float) -> tuple[float, float]:
    """(memmove into a warm buffer, bytes(bytearray) = allocate + copy), best per op."""
    src = bytearray(b"\x5a" * size)
    dst = bytearray(size)
    sa = ctypes.addressof((ctypes.c_char * size).from_buffer(src))
    da = ctypes.addressof((ctypes.c_char * size).from_buffer(dst))

    def mm(n):
        t0 = time.perf_counter()
        for _ in range(n):
            ctypes.memmove(da, sa, size)
        return time.perf_counter() - t0

    def alloc(n):
        t0 = time.perf_counter()
        for _ in range(n):
            bytes(src)
        return time.perf_counter() - t0

    best = interleaved({"memmove": mm, "alloc": alloc}, 5, target / 4, 1)
    return best["memmove"], best["alloc"]


def bench_transfer(a, rows):
    print("\n[3] transfer main -> subinterpreter (+ touch first/last byte, + small ack)")
    ob = OursBackend()
    ss = stdlib_backend(spin=True)
    mpq = MpQueue()
    sizes = SIZES[:3] + (16 * MiB,) if a.quick else SIZES
    results = {}
    try:
        for size in sizes:
            data = bytes(range(256)) * (size // 256)
            buf = SharedBuffer.copy_of(data)
            cases = {
                "SharedBuffer / ours": xi_echo(ob, buf, ack=True),
                "bytes / ours": xi_echo(ob, data, ack=True),
            }
            if ss is not None:
                cases["bytes / stdlib"] = xi_echo(ss, data, ack=True)
            cases["bytes / mp.Queue"] = mpq.runner(data)
            best = interleaved(cases, a.repeat, a.target, 1)
            best["memcpy"], best["alloc+copy"] = memcpy_times(size, a.target)
            results[size] = best
            del buf
            ob.close()
            if ss is not None:
                ss.close()
    finally:
        mpq.close()
        ob.close()
        if ss is not None:
            ss.close()

    stdname = ss.name if ss is not None else "n/a"
    print(f"  time per transfer; stdlib = {stdname}; mp.Queue = multiprocessing.Queue")
    keys = ("SharedBuffer / ours", "bytes / ours", "bytes / stdlib", "bytes / mp.Queue")
    hdr = ("SharedBuffer", "bytes/ours", "bytes/stdlib", "bytes/mp.Queue", "memcpy", "alloc+copy")
    sph = "spread (4 cols)"
    print(f"  {'size':<8}" + "".join(f"{h:>15}" for h in hdr) + f"{sph:>24}{'idle':>6}")
    for size, b in results.items():
        cols = [b.get(k) for k in (*keys, "memcpy", "alloc+copy")]
        cells = "".join(f"{fmt_time(c) if c else 'n/a':>15}" for c in cols)
        sp = "/".join(b.spread(k) for k in keys)
        print(f"  {fmt_size(size):<8}{cells}{sp:>24}{fmt_idle(b.idle):>6}")
    print("  ratios (peer / ours) and throughput")
    hdr = ("SB vs stdlib", "SB vs mp", "bytes vs stdlib", "bytes vs mp", "ours GB/s")
    hdr += ("memcpy GB/s", "alloc+cp GB/s")
    print(f"  {'size':<8}" + "".join(f"{h:>16}" for h in hdr))
    for size, b in results.items():
        sb, by, st, mq = (b.get(k) for k in keys)
        cols = [
            f"{st / sb:.1f}x" if st else "n/a",
            f"{mq / sb:.1f}x",
            f"{st / by:.2f}x" if st else "n/a",
            f"{mq / by:.2f}x",
            f"{size / by / 1e9:.2f}",
            f"{size / b['memcpy'] / 1e9:.2f}",
            f"{size / b['alloc+copy'] / 1e9:.2f}",
        ]
        print(f"  {fmt_size(size):<8}" + "".join(f"{c:>16}" for c in cols))
    b = results[max(results)]
    sb, st, mq = b["SharedBuffer / ours"], b.get("bytes / stdlib"), b["bytes / mp.Queue"]
    tag = fmt_size(max(results))
    rows.append((f"transfer {tag}: SharedBuffer vs bytes on stdlib queue", st and st / sb, 100))
    rows.append((f"transfer {tag}: SharedBuffer vs multiprocessing.Queue", mq / sb, 100))


BENCHES = {"pingpong": bench_pingpong, "streaming": bench_streaming, "transfer": bench_transfer}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds (largest transfer 16 MiB)"
    )
    p.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these benchmarks")
    a = p.parse_args()
    a.repeat = 3 if a.quick else 5
    a.target = 0.1 if a.quick else 0.3  # seconds per timed batch

    header(f"crossinterp queues vs the stdlib; multiprocessing start method: {MP.get_start_method()}")
    print(
        f"best of {a.repeat} interleaved rounds of ~{a.target}s; ratio = peer time / crossinterp time"
    )
    rows: list = []
    for name in a.only or BENCHES:
        BENCHES[name](a, rows)
    faulthandler.cancel_dump_traceback_later()

    print("\nissue targets (ratio = peer time / crossinterp time)")
    for label, ratio, target in rows:
        if ratio is None:
            print(f"  {label:<62}{'n/a':>10}   target >= {target}x: n/a")
        else:
            verdict = "met" if ratio >= target else "MISSED"
            print(f"  {label:<62}{ratio:>9.1f}x   target >= {target}x: {verdict}")
    footer()


if __name__ == "__main__":
    main()
