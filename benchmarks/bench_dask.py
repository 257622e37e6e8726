"""Dask on crossinterp against Dask's own schedulers, same run, as ratios.

    PYTHONPATH=$(scripts/test_deps 3.14) scripts/py 3.14 benchmarks/bench_dask.py [--quick]

The graph: CPU-bound pure Python (Collatz step counts over ranges), 2 x
workers chunks deep enough that each task costs milliseconds.

- Local: ``dask.compute(graph, scheduler=...)`` with the threaded scheduler
  (the default), the processes scheduler (forkserver/spawn pool of
  ``workers`` processes), and ``scheduler=InterpreterPoolExecutor(workers)``.
- distributed: a ``LocalCluster`` of 1 worker process with ``workers``
  threads, default worker against the same cluster with
  ``InterpreterWorkerPlugin`` registered (tasks in own-GIL interpreters).

Ratio = peer time / crossinterp time (> 1: crossinterp is faster). Every
figure comes with the CPU model and the commit under test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import dask
from _machine import Meter, Timed, fmt_idle, footer, header
from dask import delayed

import crossinterp
from crossinterp.futures import InterpreterPoolExecutor


def collatz_range(lo: int, hi: int) -> int:
    total = 0
    for n in range(lo, hi):
        steps = 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
        total += steps
    return total


def graph(chunks: int, per_chunk: int):
    parts = [delayed(collatz_range)(1 + k * per_chunk, 1 + (k + 1) * per_chunk) for k in range(chunks)]
    return delayed(sum)(parts)




def best(fn, repeat: int) -> Timed:
    """The best of `repeat` rounds (all rounds and the idle fraction kept)."""
    out = []
    meter = Meter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Timed(out, meter.stop())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    w = args.workers
    chunks, per = (2 * w, 6_000) if args.quick else (4 * w, 12_000)
    repeat = 2 if args.quick else 3
    g = graph(chunks, per)
    want = dask.compute(g, scheduler="sync")[0]

    header(f"bench_dask: crossinterp {crossinterp.__version__}, {w} workers, {chunks} tasks of {per} Collatz counts, "
           f"best of {repeat}")

    rows = []
    t_sync = best(lambda: dask.compute(g, scheduler="sync"), repeat)
    t_thr = best(lambda: dask.compute(g, scheduler="threads", num_workers=w), repeat)
    ctx = multiprocessing.get_context("forkserver")
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(w, mp_context=ctx) as pp:
        dask.compute(g, scheduler=pp)  # warm the processes
        t_proc = best(lambda: dask.compute(g, scheduler=pp), repeat)
    with InterpreterPoolExecutor(w) as ex:
        assert dask.compute(g, scheduler=ex)[0] == want  # warm the interpreters
        t_ours = best(lambda: dask.compute(g, scheduler=ex), repeat)
    rows.append(("local: sequential (sync)", t_sync, t_ours))
    rows.append(("local: threaded scheduler", t_thr, t_ours))
    rows.append(("local: processes (forkserver pool)", t_proc, t_ours))

    from distributed import Client, LocalCluster

    from crossinterp.dask import InterpreterWorkerPlugin

    def on_cluster(plugin: bool) -> float:
        with (
            LocalCluster(n_workers=1, threads_per_worker=w, processes=True, dashboard_address=None) as cl,
            Client(cl) as c,
        ):
            if plugin:
                c.register_plugin(InterpreterWorkerPlugin())
            assert c.compute(g).result() == want  # warm up

            def run():
                c.compute(graph(chunks, per + 1)).result()  # a new graph: no cached keys

            return best(run, repeat)

    t_dist_default = on_cluster(False)
    t_dist_ours = on_cluster(True)
    rows.append(("distributed: default worker (threads)", t_dist_default, t_dist_ours))

    print(f"  {'peer':40} {'peer s':>8} {'ours s':>8} {'ratio':>6} {'spread peer/ours':>17} {'idle p/o':>9}")
    for name, peer, ours in rows:
        sp = f"{peer.spread}/{ours.spread}"
        idle = f"{fmt_idle(peer.idle)}/{fmt_idle(ours.idle)}"
        print(f"  {name:40} {peer:8.3f} {ours:8.3f} {peer / ours:6.2f} {sp:>17} {idle:>9}")
    print(f"  speed-up over sequential: interpreters {t_sync / t_ours:.2f}x, processes {t_sync / t_proc:.2f}x,"
          f" threads {t_sync / t_thr:.2f}x, distributed+plugin {t_sync / t_dist_ours:.2f}x")
    footer()


if __name__ == "__main__":
    main()
