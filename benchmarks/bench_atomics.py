"""Atomics: crossinterp's AtomicInt and AtomicRef side by side with the
third-party peers, in the same run, with 1 and 2 threads, reported as ratios.

    PYTHONPATH=$(scripts/bench_peers 3.13t) scripts/py 3.13t benchmarks/bench_atomics.py \
        [--quick] [--only int|ref] [--threads 1 2]

Meaningful on a free-threaded build (3.13t), where the threads really run in
parallel; on GIL builds it still runs (the threads take turns).

1. increments: each thread increments one shared counter N times. Ours:
   ``AtomicInt.inc()``, ``.add(1)`` and ``+= 1``. Peers: cereggii
   ``AtomicInt64`` (``increment_and_get()`` and ``+= 1``), ft_utils
   ``concurrency.AtomicInt64`` (``incr()``), and ``threading.Lock`` around a
   plain int. The final count is checked for every implementation.
2. read-mostly reference: each thread runs 10,000 ``get()`` then 1 ``set()``,
   repeatedly. Ours: ``AtomicRef``. Peers: cereggii ``AtomicRef``, ft_utils
   ``AtomicReference``.

Each case runs in every round, rounds interleave all cases of a table (the
order rotates each round), and the figure is the median over rounds (the
machine is a noisy 2-vCPU VM). ops/s = threads x N / wall time from the
first thread's start to the last thread's end. Ratio = ours / peer in ops/s
(> 1: crossinterp is faster), ours being our fastest variant in that table.
A peer that cannot be imported is reported as "not installed" and skipped.

Each thread of a run is pinned to a CPU of its own (``--no-pin``: left to
the scheduler), and every row prints ``par``, how many of its threads ran
at once (``_machine.Placement``): on the 2-vCPU VM these figures come
from, the scheduler kept both threads on one vCPU in some runs, and a
2-thread row then measured time slicing (``par`` about 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable

from _machine import Meter, Placement, fmt_idle, fmt_par, fmt_spread, footer, header

from crossinterp import AtomicInt, AtomicRef

try:
    import cereggii
except ImportError:
    cereggii = None
try:
    from ft_utils import concurrency as ft
except ImportError:
    ft = None

READS_PER_WRITE = 10_000
PLACE = Placement()

# A case: (label, is_ours, make() -> (state, worker(state, n)), check(state, total) | None)
Case = tuple[str, bool, Callable[[], tuple[object, Callable[[object, int], None]]], object]


def run_threads(threads: int, n: int, state: object, worker: Callable[[object, int], None]) -> float:
    """Run `worker(state, n)` on `threads` threads at once; wall seconds from
    the first start to the last end (clocks read inside the threads)."""
    barrier = threading.Barrier(threads)
    starts: list[float] = []
    ends: list[float] = []
    cpu: list[float] = []
    running = PLACE.start_line()

    def body(i: int) -> None:
        PLACE.enter(i)
        barrier.wait()
        PLACE.all_running(running, threads)
        starts.append(time.perf_counter())
        c0 = time.thread_time()
        worker(state, n)
        cpu.append(time.thread_time() - c0)
        ends.append(time.perf_counter())

    ts = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = max(ends) - min(starts)
    PLACE.record(cpu, wall)
    return wall


# ---------------------------------------------------------------- increments


def w_inc(a, n):
    inc = a.inc
    for _ in range(n):
        inc()


def w_add(a, n):
    add = a.add
    for _ in range(n):
        add(1)


def w_iadd(a, n):
    # `a` is a one-item list holding the atomic: `+=` on an in-place
    # type rebinds to the same object.
    for _ in range(n):
        a[0] += 1


def w_cereggii_inc(a, n):
    inc = a.increment_and_get
    for _ in range(n):
        inc()


def w_ft_incr(a, n):
    incr = a.incr
    for _ in range(n):
        incr()


def w_lock(s, n):
    lock, box = s
    for _ in range(n):
        with lock:
            box[0] += 1


def int_cases() -> list[Case]:
    cases: list[Case] = [
        ("crossinterp AtomicInt.inc()", True, lambda: (AtomicInt(), w_inc), lambda s: s.get()),
        ("crossinterp AtomicInt.add(1)", True, lambda: (AtomicInt(), w_add), lambda s: s.get()),
        ("crossinterp AtomicInt += 1", True, lambda: ([AtomicInt()], w_iadd), lambda s: s[0].get()),
    ]
    if cereggii is not None:
        cases += [
            (
                "cereggii AtomicInt64.increment_and_get()",
                False,
                lambda: (cereggii.AtomicInt64(0), w_cereggii_inc),
                lambda s: s.get(),
            ),
            (
                "cereggii AtomicInt64 += 1",
                False,
                lambda: ([cereggii.AtomicInt64(0)], w_iadd),
                lambda s: s[0].get(),
            ),
        ]
    else:
        cases.append(("cereggii AtomicInt64", False, None, None))
    if ft is not None:
        cases.append(
            ("ft_utils AtomicInt64.incr()", False, lambda: (ft.AtomicInt64(0), w_ft_incr), lambda s: s.get())
        )
    else:
        cases.append(("ft_utils AtomicInt64", False, None, None))
    cases.append(
        (
            "threading.Lock + int",
            False,
            lambda: ((threading.Lock(), [0]), w_lock),
            lambda s: s[1][0],
        )
    )
    return cases


# ---------------------------------------------------------------- read-mostly


def w_ref(r, n):
    """n operations: READS_PER_WRITE gets, then one set, repeatedly."""
    get, set_ = r.get, r.set
    values = (object(), object())
    done = 0
    k = 0
    while done < n:
        for _ in range(READS_PER_WRITE):
            get()
        set_(values[k & 1])
        k += 1
        done += READS_PER_WRITE + 1


def ref_cases() -> list[Case]:
    cases: list[Case] = [("crossinterp AtomicRef", True, lambda: (AtomicRef(0), w_ref), None)]
    if cereggii is not None:
        cases.append(("cereggii AtomicRef", False, lambda: (cereggii.AtomicRef(0), w_ref), None))
    else:
        cases.append(("cereggii AtomicRef", False, None, None))
    if ft is not None:
        cases.append(("ft_utils AtomicReference", False, lambda: (ft.AtomicReference(0), w_ref), None))
    else:
        cases.append(("ft_utils AtomicReference", False, None, None))
    return cases


# ---------------------------------------------------------------- driver


def measure_table(title: str, cases: list[Case], threads: int, n: int, rounds: int) -> dict[str, float]:
    live = [c for c in cases if c[2] is not None]
    samples: dict[str, list[float]] = {c[0]: [] for c in live}
    pars: dict[str, list[float]] = {c[0]: [] for c in live}
    meter = Meter()
    for r in range(rounds):
        order = live[r % len(live) :] + live[: r % len(live)]
        for label, _ours, make, check in order:
            state, worker = make()
            secs = run_threads(threads, n, state, worker)
            if check is not None:
                got = check(state)
                if got != threads * n:
                    raise SystemExit(f"{label}: counted {got}, expected {threads * n} (lost updates)")
            samples[label].append(threads * n / secs)
            pars[label].append(PLACE.last)
    idle = meter.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    best_ours = max(v for (label, ours, _m, _c) in live if ours for v in [med[label]])
    print(f"\n{title}, {threads} thread(s): median of {rounds} interleaved rounds, {n:,} ops/thread, "
          f"idle {fmt_idle(idle)}")
    print(f"  {'implementation':<44}{'Mops/s':>9}{'ours/peer':>11}{'min..max':>15}{'spread':>8}{'par':>6}")
    for label, ours, make, _check in cases:
        if make is None:
            print(f"  {label:<44}{'not installed':>20}")
            continue
        ratio = "" if ours else f"{best_ours / med[label]:>10.2f}x"
        lo, hi = min(samples[label]) / 1e6, max(samples[label]) / 1e6
        spread = f"{lo:.2f}..{hi:.2f}"
        print(f"  {label:<44}{med[label] / 1e6:>9.2f}{ratio:>11}{spread:>15}{fmt_spread(samples[label]):>8}"
              f"{fmt_par(pars[label]):>6}")
    return med


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="shorter runs, 5 rounds")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--only", choices=["int", "ref"], help="run only one of the two tables")
    p.add_argument("--no-pin", action="store_true", help="leave the threads where the scheduler puts them")
    a = p.parse_args()
    global PLACE
    PLACE = Placement(pin=not a.no_pin)
    rounds = 5 if a.quick else 7
    n_int = 100_000 if a.quick else 400_000
    n_ref = 200_010 if a.quick else 800_040
    gil = "GIL" if getattr(sys, "_is_gil_enabled", lambda: True)() else "free-threaded"
    header("crossinterp atomics vs cereggii, ft_utils")
    if gil == "GIL":
        print("  (GIL build: threads take turns; the comparison is meant for 3.13t)")
    print(PLACE.describe())
    for threads in a.threads if a.only != "ref" else ():
        measure_table("AtomicInt increments", int_cases(), threads, n_int, rounds)
    for threads in a.threads if a.only != "int" else ():
        measure_table(
            f"AtomicRef read-mostly (1 set per {READS_PER_WRITE:,} gets)", ref_cases(), threads, n_ref, rounds
        )
    footer()


if __name__ == "__main__":
    main()
