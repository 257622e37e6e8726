"""crossinterp demo: the same CPU-bound pure-Python job run sequentially, in
threads, and in own-GIL interpreters, side by side.

    scripts/py 3.14 examples/demo.py [--workers N] [--n N]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from crossinterp import interpreters


def work(n: int) -> int:
    """A CPU-bound pure-Python job (no C extension releases the GIL here)."""
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def run_sequential(workers: int, n: int) -> list[int]:
    return [work(n) for _ in range(workers)]


def run_threads(workers: int, n: int) -> list[int]:
    results = [0] * workers

    def target(k: int) -> None:
        results[k] = work(n)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_interpreters(interps: list[interpreters.Interpreter], n: int) -> list[int]:
    results = [0] * len(interps)

    def target(k: int) -> None:
        results[k] = interps[k].call(work, n)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(len(interps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def timed(f, *args):
    t0 = time.perf_counter()
    r = f(*args)
    return time.perf_counter() - t0, r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--n", type=int, default=3_000_000)
    p.add_argument("--repeat", type=int, default=3, help="best of N runs")
    a = p.parse_args()

    gil = "free-threaded (GIL disabled)" if not getattr(sys, "_is_gil_enabled", lambda: True)() else "GIL build"
    print(f"Python {sys.version.split()[0]} [{gil}], {os.cpu_count()} cores, "
          f"{a.workers} workers x work({a.n:,})")

    t0 = time.perf_counter()
    interps = [interpreters.create() for _ in range(a.workers)]
    t_create = time.perf_counter() - t0
    # Warm up: each interpreter imports the job's module once.
    for it in interps:
        it.call(work, 1)

    expected = run_sequential(1, a.n)[0]
    rows = []
    for name, f, arg in (
        ("sequential", run_sequential, a.workers),
        ("threads", run_threads, a.workers),
        ("interpreters", run_interpreters, interps),
    ):
        best = float("inf")
        for _ in range(a.repeat):
            dt, res = timed(f, arg, a.n)
            assert res == [expected] * a.workers, (name, res)
            best = min(best, dt)
        rows.append((name, best))

    seq = rows[0][1]
    print(f"{'mode':<14}{'wall time':>12}{'speedup':>10}")
    for name, dt in rows:
        print(f"{name:<14}{dt:>10.3f} s{seq / dt:>9.2f}x")
    print(f"(creating {a.workers} interpreters took {t_create * 1000:.1f} ms, not counted above)")
    for it in interps:
        it.close()


if __name__ == "__main__":
    main()
