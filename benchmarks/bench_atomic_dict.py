"""AtomicDict side by side with the concurrent-dict peers, in the same run.

    PYTHONPATH=$(scripts/bench_peers 3.13t) scripts/py 3.13t benchmarks/bench_atomic_dict.py [--quick]

Meaningful on a free-threaded build (3.13t); on a GIL build the threads take
turns and only the single-thread figures mean much.

1. 90/10 get/set: each thread runs its own pre-generated list of operations
   over one fixed set of 1024 str keys (90 % ``d[k]``, 10 % ``d[k] = i & 255``,
   through ``d.__getitem__`` / ``d.__setitem__`` bound in the thread).
   1b. the same with reads only (``d[k]``), the workload the reader protocol
   is built to scale.
2. word counting: a generated corpus (Zipf-like over a 5000-word vocabulary)
   split between the threads; each thread feeds its share in batches of 4096
   words. Ours: ``reduce_count(batch)`` (local pre-aggregation, then one
   compare-and-set merge per distinct word) and, informational, one
   ``update(word, inc, 0)`` per word. cereggii: ``AtomicDict.reduce_count(batch)``.
   ft_utils: ``ConcurrentDict`` of ``AtomicInt64`` counters, fed from a local
   ``Counter`` of each batch (``ConcurrentDict`` has no atomic
   read-modify-write or insert-if-absent; a missing counter is created under a
   lock, double-checked). ``dict + Lock``: a local ``Counter`` per batch merged
   into a plain dict under one ``threading.Lock``. Every implementation's final
   counts are checked against ``collections.Counter`` of the corpus.

Peers: cereggii ``AtomicDict`` and ft_utils ``ConcurrentDict``
(``PYTHONPATH=$(scripts/bench_peers VERSION)``); a peer that cannot be imported
is reported "not installed". Also a plain ``dict`` (no lock; single thread) for
the single-thread slowdown.

Inputs are per thread, so the benchmark measures the dicts and not contention
on its own inputs (on 3.13t a reference count is a plain add only in the
object's owner thread; every other thread's incref is an atomic on a shared
field, and one object touched by two threads bounces its cache line): each
thread builds its operation list / copies its batches itself, before the
barrier; keys and words are interned (immortal on free-threaded builds);
90/10 values are small ints (immortal); methods are bound once per thread
(``d[k]`` increfs ``d`` on every operation). Every implementation is measured
the same way. Each case is timed inside its threads, from the first thread's
start (after the barrier) to the last one's end. Rounds are interleaved (every case once per round, in turn, so machine
noise hits all alike); the figure is the **median** over the rounds (7, or
3 with ``--quick``), after one warm-up round. Full run: ~3 minutes on 2 vCPUs.
Ratio = ours ops/s / peer ops/s (>= 1: ours is faster). With 1 and 2
threads, a last table gives each implementation's scaling from 1 to 2 threads
(ops/s with 2 / ops/s with 1; issue 14 asks >= 1.6x of ours for reads and
``reduce_count``).

Each thread of a run is pinned to a CPU of its own (``--no-pin``: left to
the scheduler), and every row prints ``par``, how many of its threads ran
at once (``_machine.Placement``): on the 2-vCPU VM these figures come from,
the scheduler kept both threads on one vCPU in some runs, which made the
1 -> 2 thread scaling of every implementation bimodal (about 1x in those
runs, 1.7-2x in the others).
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import sys
import threading
import time

from _machine import Meter, Placement, fmt_idle, fmt_par, fmt_spread, footer, header

from crossinterp import AtomicDict

try:
    import cereggii
except ImportError:  # reported as "not installed"
    cereggii = None
try:
    from ft_utils.concurrency import AtomicInt64, ConcurrentDict
except ImportError:
    ConcurrentDict = AtomicInt64 = None

NKEYS = 1024
VOCAB = 5000
BATCH = 4096
PLACE = Placement()


def run_threads(nthreads: int, target, args_per_thread) -> float:
    """Run target(*prepare()) in `nthreads` threads released together, for each
    `(prepare, *args)` of `args_per_thread`; seconds from the first thread's
    start to the last one's end, read inside the threads (a main thread that is
    descheduled after the barrier cannot shorten the interval).

    `prepare()` runs in the worker thread *before* the barrier, untimed: it
    builds that thread's inputs (its operation list, its batches), so the
    objects each thread iterates are created, and owned, by that thread
    (3.13t's biased reference counting: the owner's increfs are plain adds;
    every other thread's go to a shared atomic field, which bounces between
    the cores of all threads touching the object)."""
    barrier = threading.Barrier(nthreads)
    errors = []
    starts: list[float] = []
    ends: list[float] = []
    cpu: list[float] = []
    running = PLACE.start_line()

    def body(i, prepare, args):
        PLACE.enter(i)
        try:
            own = prepare()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        PLACE.all_running(running, nthreads)
        starts.append(time.perf_counter())
        c0 = time.thread_time()
        try:
            target(*args, *own)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
        cpu.append(time.thread_time() - c0)
        ends.append(time.perf_counter())

    ts = [threading.Thread(target=body, args=(i, a[0], a[1:])) for i, a in enumerate(args_per_thread)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    wall = max(ends) - min(starts)
    PLACE.record(cpu, wall)
    return wall


# ---------------------------------------------------------------- 90/10


def getset_work(d, ops):
    # Methods bound once per thread: `d[k]` would incref/decref `d` itself
    # on every operation (LOAD_FAST on 3.13), and `d` is owned by the main
    # thread, so both workers would bounce its reference count's cache line.
    get, set_ = d.__getitem__, d.__setitem__
    for is_set, k, v in ops:
        if is_set:
            set_(k, v)
        else:
            get(k)


def getset_locked_work(d, ops, lock):
    get, set_ = d.__getitem__, d.__setitem__
    for is_set, k, v in ops:
        with lock:
            if is_set:
                set_(k, v)
            else:
                get(k)


def getset_keys() -> list[str]:
    # Interned: immortal on 3.13t (free-threaded builds immortalize interned
    # strings), so no thread touches a key's reference count.
    return [sys.intern(f"key{i}") for i in range(NKEYS)]


def getset_plan(t: int, nops: int, keys: list[str], writes: float = 0.1) -> list:
    """Thread t's operations (a share ``writes`` of them sets), built in that
    thread. Values are small ints (immortal cached objects), so reading a
    value another thread stored does not bounce that value's reference count
    either."""
    rnd = random.Random(t)
    return [(rnd.random() < writes, rnd.choice(keys), i & 255) for i in range(nops)]


def getset_cases(nthreads: int, nops: int, writes: float = 0.1) -> dict:
    keys = getset_keys()

    def make(factory, locked=False):
        def run():
            d = factory()
            for k in keys:
                d[k] = 0
            extra = (threading.Lock(),) if locked else ()
            work = getset_locked_work if locked else getset_work
            # args: (prepare, d); prepare() returns (plan, *extra), built in the thread
            args = [
                (lambda t=t: (getset_plan(t, nops, keys, writes), *extra), d)
                for t in range(nthreads)
            ]
            dt = run_threads(nthreads, work, args)
            return nthreads * nops / dt

        return run

    cases = {"AtomicDict (ours)": make(AtomicDict)}
    cases["cereggii AtomicDict"] = make(cereggii.AtomicDict) if cereggii else None
    cases["ft_utils ConcurrentDict"] = make(ConcurrentDict) if ConcurrentDict else None
    cases["dict + threading.Lock"] = make(dict, locked=True)
    if nthreads == 1:
        cases["plain dict (no lock)"] = make(dict)
    return cases


# ---------------------------------------------------------------- word count


def corpus(nwords: int) -> list[str]:
    rnd = random.Random(42)
    # Interned (immortal on 3.13t): the hot words of a Zipf corpus are in
    # every thread's batches, and a shared mortal str would have its
    # reference count bounced between the threads' cores on every use.
    vocab = [sys.intern(f"w{i:04d}") for i in range(VOCAB)]
    weights = [1.0 / (r + 1) for r in range(VOCAB)]  # Zipf, s = 1
    return rnd.choices(vocab, weights, k=nwords)


def batches(words: list[str]):
    return [words[i : i + BATCH] for i in range(0, len(words), BATCH)]


def wc_ours_reduce(d, bs):
    reduce_count = d.reduce_count
    for b in bs:
        reduce_count(b)


def _inc(v):
    return v + 1


def wc_ours_update(d, bs):
    update = d.update
    for b in bs:
        for w in b:
            update(w, _inc, 0)


def wc_cereggii(d, bs):
    reduce_count = d.reduce_count
    for b in bs:
        reduce_count(b)


def wc_ft(d, bs, lock):
    get, set_ = d.__getitem__, d.__setitem__
    for b in bs:
        for w, c in collections.Counter(b).items():
            try:
                a = get(w)
            except KeyError:
                with lock:
                    try:
                        a = get(w)
                    except KeyError:
                        a = AtomicInt64(0)
                        set_(w, a)
            a += c


def wc_locked(d, bs, lock):
    for b in bs:
        local = collections.Counter(b)
        with lock:
            for w, c in local.items():
                d[w] = d.get(w, 0) + c


def wc_plain(d, bs):
    for b in bs:
        for w in b:
            d[w] = d.get(w, 0) + 1


def wordcount_cases(nthreads: int, nwords: int, want: collections.Counter) -> dict:
    words = corpus(nwords)
    share = len(words) // nthreads
    parts = [batches(words[t * share : (t + 1) * share]) for t in range(nthreads)]

    def check(counts: dict, name: str):
        if counts != want:
            raise AssertionError(f"{name}: wrong word counts")

    def make(name, factory, work, lock=False, value=lambda v: v, snapshot=dict):
        def run():
            d = factory()
            extra = (threading.Lock(),) if lock else ()
            # each thread copies its share of batches (lists it then owns)
            args = [(lambda p=p: ([list(b) for b in p], *extra), d) for p in parts]
            dt = run_threads(nthreads, work, args)
            check({k: value(v) for k, v in snapshot(d).items()}, name)
            return len(words) / dt

        return run

    def cereggii_snapshot(d):
        return {k: v for k, v in d.fast_iter()}

    def ft_snapshot(d):
        return d.as_dict()

    cases = {
        "AtomicDict.reduce_count (ours)": make(
            "ours", AtomicDict, wc_ours_reduce, snapshot=AtomicDict.to_dict
        ),
        "AtomicDict.update per word (ours)": make(
            "ours update", AtomicDict, wc_ours_update, snapshot=AtomicDict.to_dict
        ),
    }
    cases["cereggii AtomicDict.reduce_count"] = (
        make("cereggii", cereggii.AtomicDict, wc_cereggii, snapshot=cereggii_snapshot)
        if cereggii
        else None
    )
    cases["ft_utils ConcurrentDict + AtomicInt64"] = (
        make(
            "ft_utils",
            ConcurrentDict,
            wc_ft,
            lock=True,
            value=lambda a: a.get(),
            snapshot=ft_snapshot,
        )
        if ConcurrentDict
        else None
    )
    cases["dict + threading.Lock (Counter per batch)"] = make(
        "dict+Lock", dict, wc_locked, lock=True
    )
    if nthreads == 1:
        cases["plain dict (no lock, per word)"] = make("plain", dict, wc_plain)
    return cases, len(words) - len(words) % nthreads


# ---------------------------------------------------------------- driver


SPREAD: dict = {}  # name -> every round of the last interleaved() call
PAR: dict = {}  # name -> every round's parallelism (Placement) of the last interleaved() call
IDLE: list = [None]  # the idle fraction while the last interleaved() call ran


def interleaved(cases: dict, rounds: int) -> dict:
    live = {k: v for k, v in cases.items() if v is not None}
    res = {k: [] for k in live}
    par = {k: [] for k in live}
    meter = None
    for r in range(rounds + 1):
        if r == 1:
            meter = Meter()
        for name, run in live.items():
            rate = run()
            if r:  # round 0 warms up (imports, allocator, caches)
                res[name].append(rate)
                par[name].append(PLACE.last)
    IDLE[0] = meter.stop() if meter is not None else None
    SPREAD.clear()
    SPREAD.update(res)
    PAR.clear()
    PAR.update(par)
    return {k: (statistics.median(res[k]) if k in res else None) for k in cases}


def fmt_rate(r: float) -> str:
    return f"{r / 1e6:.2f} M/s" if r >= 1e6 else f"{r / 1e3:.0f} k/s"


def report(title: str, ours_name: str, best: dict, rows: list, nthreads: int, label: str):
    print(f"\n  {title} (idle {fmt_idle(IDLE[0])})")
    print(f"    {'':<46}{'ops/s':>12}{'ours/peer':>12}{'spread':>8}{'par':>6}   rounds min..max")
    ours = best[ours_name]
    for name, rate in best.items():
        if rate is None:
            print(f"    {name:<46}{'not installed':>12}")
            continue
        ratio = "" if name == ours_name else f"{ours / rate:.2f}x"
        lo, hi = min(SPREAD[name]), max(SPREAD[name])
        spread = f"{fmt_rate(lo)}..{fmt_rate(hi)}"
        print(f"    {name:<46}{fmt_rate(rate):>12}{ratio:>12}{fmt_spread(SPREAD[name]):>8}"
              f"{fmt_par(PAR[name]):>6}   {spread}")
    for peer in ("cereggii", "ft_utils"):
        name = next(n for n in best if n.startswith(peer))
        rate = best[name]
        rows.append(
            (f"{label}, {nthreads} thread(s): ours vs {peer}", ours / rate if rate else None)
        )
    if nthreads == 1:
        plain = next(n for n in best if n.startswith("plain dict"))
        rows.append((f"{label}, 1 thread: ours vs plain dict (slowdown)", ours / best[plain]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="3 rounds, smaller inputs (~20 s)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-pin", action="store_true", help="leave the threads where the scheduler puts them")
    a = p.parse_args()
    global PLACE
    PLACE = Placement(pin=not a.no_pin)
    rounds = 3 if a.quick else 7
    nops = 100_000 if a.quick else 1_000_000
    nwords = 200_000 if a.quick else 2_000_000

    header("crossinterp AtomicDict vs cereggii AtomicDict, ft_utils ConcurrentDict")
    print(f"median of {rounds} interleaved rounds (after 1 warm-up); ratio = ours / peer ops/s")
    print(PLACE.describe())
    for peer, mod in (("cereggii", cereggii), ("ft_utils", ConcurrentDict)):
        if mod is None:
            print(f"  {peer}: not installed (PYTHONPATH=$(scripts/bench_peers VERSION))")

    rows: list = []
    # {(workload, implementation): {threads: ops/s}}: the 1 -> 2 thread scaling.
    rates: dict = collections.defaultdict(dict)
    print("\n[1] 90/10 get/set over 1024 str keys (ops/s, all threads together)")
    for n in a.threads:
        best = interleaved(getset_cases(n, nops), rounds)
        report(f"{n} thread(s)", "AtomicDict (ours)", best, rows, n, "90/10 get/set")
        for k, v in best.items():
            rates[("90/10 get/set", k)][n] = v

    print("\n[1b] reads only (d[k]) over the same 1024 str keys (ops/s, all threads together)")
    for n in a.threads:
        best = interleaved(getset_cases(n, nops, writes=0.0), rounds)
        report(f"{n} thread(s)", "AtomicDict (ours)", best, rows, n, "reads only")
        for k, v in best.items():
            rates[("reads only", k)][n] = v

    print(f"\n[2] word counting, {nwords} words, batches of {BATCH} (words/s)")
    want = collections.Counter(corpus(nwords))
    for n in a.threads:
        w = want
        if nwords % n:
            w = collections.Counter(corpus(nwords)[: nwords - nwords % n])
        cases, _ = wordcount_cases(n, nwords, w)
        best = interleaved(cases, rounds)
        report(f"{n} thread(s)", "AtomicDict.reduce_count (ours)", best, rows, n, "word count")
        for k, v in best.items():
            rates[("word count", k)][n] = v

    print("\ntargets (ours / peer >= 1.0; the slowdown rows are informational)")
    for label, r in rows:
        if r is None:
            print(f"  {label:<60}{'n/a':>8}")
            continue
        verdict = "" if "slowdown" in label else ("met" if r >= 1.0 else "MISSED")
        print(f"  {label:<60}{r:>7.2f}x  {verdict}")
    if 1 in a.threads and 2 in a.threads:
        # Issue 14: ours should get faster from 1 to 2 threads (reads and
        # reduce_count >= 1.6x); the peers' and 90/10's for comparison.
        print("\nscaling, 1 -> 2 threads (ops/s with 2 / with 1; target >= 1.6x for ours,")
        print("reads only and reduce_count; the others are informational)")
        for (work, name), by_n in rates.items():
            if by_n.get(1) is None or by_n.get(2) is None:
                continue
            r = by_n[2] / by_n[1]
            ours = name.endswith("(ours)") and not name.startswith("AtomicDict.update")
            verdict = ("met" if r >= 1.6 else "MISSED") if ours and work != "90/10 get/set" else ""
            print(f"  {work + ': ' + name:<60}{r:>7.2f}x  {verdict}")
    footer()


if __name__ == "__main__":
    main()
