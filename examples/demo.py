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


def run_processes(pool, workers: int, n: int) -> list[int]:
    return pool.map(work, [n] * workers)


def timed(f, *args):
    t0 = time.perf_counter()
    r = f(*args)
    return time.perf_counter() - t0, r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--n", type=int, default=3_000_000)
    p.add_argument("--repeat", type=int, default=5, help="best of N rounds")
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

    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(a.workers)
    pool.map(work, [1] * a.workers)  # start the processes before timing

    expected = run_sequential(1, a.n)[0]
    modes = (
        ("sequential", run_sequential, a.workers),
        ("threads", run_threads, a.workers),
        ("interpreters", run_interpreters, interps),
    )
    best = {name: float("inf") for name, _, _ in modes}
    best["processes (ref.)"] = float("inf")
    # Rounds interleave the modes, so a slow spell of the machine hits all of
    # them alike; each mode keeps its best round.
    for _ in range(a.repeat):
        for name, f, arg in modes:
            dt, res = timed(f, arg, a.n)
            assert res == [expected] * a.workers, (name, res)
            best[name] = min(best[name], dt)
        dt, res = timed(run_processes, pool, a.workers, a.n)
        assert res == [expected] * a.workers
        best["processes (ref.)"] = min(best["processes (ref.)"], dt)
    pool.close()
    pool.join()
    rows = list(best.items())

    seq = rows[0][1]
    print(f"{'mode':<18}{'wall time':>12}{'speedup':>10}")
    for name, dt in rows:
        print(f"{name:<18}{dt:>10.3f} s{seq / dt:>9.2f}x")
    print(f"(creating {a.workers} interpreters took {t_create * 1000:.1f} ms, not counted above;")
    print(" processes: multiprocessing, for reference: what this machine's cores give)")
    for it in interps:
        it.close()


if __name__ == "__main__":
    main()
