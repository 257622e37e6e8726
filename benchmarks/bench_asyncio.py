"""asyncio awaitables: ``Queue.get_async`` against the executor-thread
approach and against aiointerpreters, in the same run, reported as ratios.

    scripts/py 3.14 benchmarks/bench_asyncio.py [--quick]
    (make bench puts the peers on PYTHONPATH: scripts/bench_peers VERSION)

1. round trip: the event loop puts a small int on a queue, a subinterpreter
   (own GIL, its own thread, blocking ``get``/``put``) echoes it on a second
   queue, and the loop awaits the reply:
   - ours: ``await qout.get_async()`` (woken through the loop's wake-up fd);
   - executor: ``await loop.run_in_executor(None, qout.get)`` (a thread of
     the default executor blocks in ``get`` and resolves the future with
     ``call_soon_threadsafe``);
   - for reference, the floor: a blocking ``get`` in the loop's thread;
   - aiointerpreters (3.14+, when installed): ``await runner.run(echo, i)``
     with one worker (its own task/result queues and coordinator thread),
     measured after the others (its threads would load them) with fewer
     round trips, scaled.
2. fan-in: 1,000 awaiters on one queue, a thread puts 1,000 items; the time
   until every awaiter has its item: ours, and 1,000
   ``run_in_executor(None, q.get)`` calls (the default executor's few threads
   each block in ``get`` in turn).

Ratio = peer time / ours (> 1: ours is faster). Best of interleaved rounds;
the machine's CPU model and the commit are printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time

from _asyncio_echo import echo  # aiointerpreters' worker function
from _machine import Meter, Timed, fmt_idle, footer, header

from crossinterp import interpreters as ours
from crossinterp import queues

ECHO = """
while True:
    x = qin.get()
    if x is None:
        break
    qout.put(x)
"""






async def rt_ours(qin: queues.Queue, qout: queues.Queue, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        qin.put(i)
        r = await qout.get_async()
        assert r == i
    return time.perf_counter() - t0


async def rt_blocking(qin: queues.Queue, qout: queues.Queue, n: int) -> float:
    """The floor: the same round trips with a blocking get, no event loop."""
    t0 = time.perf_counter()
    for i in range(n):
        qin.put(i)
        r = qout.get()
        assert r == i
    return time.perf_counter() - t0


async def rt_executor(qin: queues.Queue, qout: queues.Queue, n: int) -> float:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for i in range(n):
        qin.put(i)
        r = await loop.run_in_executor(None, qout.get)
        assert r == i
    return time.perf_counter() - t0


async def rt_aioi(runner: object, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        r = await runner.run(echo, i)  # type: ignore[attr-defined]
        assert r == i
    return time.perf_counter() - t0


async def fan_in(executor: bool, n: int) -> float:
    q = queues.create()
    loop = asyncio.get_running_loop()
    if executor:
        tasks = [loop.run_in_executor(None, q.get) for _ in range(n)]
    else:
        tasks = [asyncio.ensure_future(q.get_async()) for _ in range(n)]
    await asyncio.sleep(0.05)

    def produce() -> None:
        for i in range(n):
            q.put(i)

    t0 = time.perf_counter()
    threading.Thread(target=produce).start()
    got = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    assert sorted(got) == list(range(n))
    return dt


def try_aioi() -> object | None:
    if sys.version_info < (3, 14):
        return None
    try:
        from aiointerpreters.runner import Runner
    except ImportError:
        return None
    return Runner(workers=1)


async def run(args: argparse.Namespace) -> None:
    n = 300 if args.quick else 2000
    rounds = 3 if args.quick else 5
    qin, qout = queues.create(), queues.create()
    interp = ours.create()
    interp.prepare_main(qin=qin, qout=qout)
    partner = threading.Thread(target=interp.exec, args=(ECHO,))
    partner.start()
    best: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    try:
        # Warm up (executor threads, the loop's waker).
        await rt_ours(qin, qout, 50)
        await rt_executor(qin, qout, 50)
        meter = Meter()
        for _ in range(rounds):
            for name, coro in (
                ("ours", lambda: rt_ours(qin, qout, n)),
                ("blocking", lambda: rt_blocking(qin, qout, n)),
                ("executor", lambda: rt_executor(qin, qout, n)),
            ):
                dt = await coro()
                samples.setdefault(name, []).append(dt)
        idle = meter.stop()
        best = {name: Timed(ts, idle) for name, ts in samples.items()}
    finally:
        qin.put(None)
        partner.join()
        interp.close()
    # aiointerpreters apart (its threads would load the runs above), with
    # fewer round trips: each waits on the stdlib queue's 10 ms polling get.
    runner = try_aioi()
    n_aioi = min(n, 50)
    if runner is not None:
        with runner.start():  # type: ignore[attr-defined]
            await rt_aioi(runner, 5)
            m_aioi = Meter()
            t_aioi = [await rt_aioi(runner, n_aioi) * n / n_aioi for _ in range(3)]
            best["aiointerpreters"] = Timed(t_aioi, m_aioi.stop())
    print(f"round trip loop -> subinterpreter -> loop ({n} per round, best of {rounds}; idle {fmt_idle(idle)}):")
    o = best["ours"]
    print(f"  get_async                      {o / n * 1e6:9.1f} us                  spread {o.spread:>5}")
    print(f"  (floor: blocking get, no loop  {best['blocking'] / n * 1e6:9.1f} us)                 "
          f"spread {best['blocking'].spread:>5}")
    print(
        f"  run_in_executor(None, q.get)   {best['executor'] / n * 1e6:9.1f} us"
        f"   ratio {best['executor'] / o:5.2f}x   spread {best['executor'].spread:>5}"
    )
    if "aiointerpreters" in best:
        a = best["aiointerpreters"]
        print(f"  aiointerpreters Runner.run     {a / n * 1e6:9.1f} us   ratio {a / o:5.2f}x   "
              f"spread {a.spread:>5}  idle {fmt_idle(a.idle)} (best of 3)")
    else:
        print("  aiointerpreters                not installed (or Python < 3.14)")

    m = 1000
    meter = Meter()
    fo = Timed([await fan_in(False, m) for _ in range(rounds)])
    fe = Timed([await fan_in(True, m) for _ in range(rounds)])
    print(f"fan-in: {m} awaiters on one queue, {m} puts from a thread (best of {rounds}; "
          f"idle {fmt_idle(meter.stop())}):")
    print(f"  get_async                      {fo * 1e3:9.2f} ms                  spread {fo.spread:>5}")
    print(f"  run_in_executor(None, q.get)   {fe * 1e3:9.2f} ms   ratio {fe / fo:5.2f}x   spread {fe.spread:>5}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs")
    args = p.parse_args()
    import faulthandler

    # A hang is a bug: dump every thread's stack and stop.
    faulthandler.dump_traceback_later(float(os.environ.get("BENCH_HANG_SECONDS", "300")), exit=True)
    header("bench_asyncio: get_async vs run_in_executor and aiointerpreters")
    asyncio.run(run(args))
    footer()


if __name__ == "__main__":
    main()
