"""crossinterp.futures.InterpreterPoolExecutor against the real peers, same run.

Peers: the stdlib's ``concurrent.futures.InterpreterPoolExecutor`` (3.14+),
``ProcessPoolExecutor`` (forkserver) and ``ThreadPoolExecutor``, every pool
with 2 workers, warmed up before timing. Cases (issue 12):

1. tiny task round trip ``submit(abs, 1).result()``;
2. ``map`` over tiny items, default ``chunksize`` and ``chunksize=256``;
3. a ``list`` / ``dict`` of 100 and of 10,000 small items as argument and
   result: ours, ours with the pickle path forced (the value pickled by hand
   both ways), the process pool;
4. CPU-bound pure-Python tasks on 2 workers: speed-up over running them
   sequentially in this thread, for each pool;
5. a lambda by value, first call (a new function each task: pickled here,
   rebuilt in the worker) and cached call (the same function: rebuilt once
   per worker), against cloudpickle (the function pickled by cloudpickle for
   every task, loaded in the worker); and one ``dumps`` + ``loads`` of a
   closure in this interpreter, ``crossinterp._xi`` vs cloudpickle;
6. the crossing the executor is built on: a round trip over a pair of
   crossinterp queues served by a loop parked in the interpreter (the floor
   of case 1's round trip), and ``Interpreter.call`` from this thread and
   from another thread (what the executor did before it moved to queues);
7. case 1's round trip right after the pool idled for 50 ms (untimed), so
   its threads were asleep and the first task woke them: where the woken
   threads land decides whether the caller and a worker share a CPU.

    PYTHONPATH=$(scripts/bench_peers 3.14) scripts/py 3.14 benchmarks/bench_executor.py [--quick]

(``scripts/bench_peers`` installs cloudpickle; without it the cloudpickle
rows say "not installed".) Ratio = peer time / crossinterp time (> 1:
crossinterp is faster); for case 4, each pool's speed-up over sequential.
Best of N rounds, peers alternated round by round. On a loaded machine the
figures are indicative only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import pickle
import sys
import threading
import time

from _machine import Meter, Timed, fmt_idle, footer, header

from crossinterp import _xi
from crossinterp import interpreters as xi_interpreters
from crossinterp.futures import InterpreterPoolExecutor as Ours

WORKERS = 2


def ident(x):
    return x


def via_pickle(data):
    """The forced pickle path: the value arrives and leaves as a pickle."""
    return pickle.dumps(ident(pickle.loads(data)), protocol=5)


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def cloud_call(data, arg):
    import cloudpickle

    return cloudpickle.loads(data)(arg)


def make_lambda(k):
    return lambda x: x + k


def queue_server(inq, outq):
    while True:
        x = inq.get()
        if x is None:
            return
        outq.put(x)


def best(fn, repeat):
    b = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t0)
    return b


def rounds(cases, repeat, rotate=False, settle=None):
    """{name: best seconds}: each case once per round, in turn (a Timed: all
    rounds in .samples, the idle fraction while the rounds ran in .idle).
    ``rotate``: each round starts one case later, so that no case always runs
    right after the same one (a pool run right after a long single-threaded
    case is measurably slower on this VM, whichever pool it is). ``settle``:
    {name: fn} run untimed just before that case's timed run in every round
    (a pool whose threads slept through the other pools' turns takes a few
    hundred tasks to be back at its steady speed, whichever pool it is)."""
    out = {k: [] for k in cases}
    meter = Meter()
    order = list(cases.items())
    for r in range(repeat):
        turn = order[r % len(order) :] + order[: r % len(order)] if rotate else order
        for name, fn in turn:
            if fn is None:
                continue
            if settle is not None and settle.get(name) is not None:
                settle[name]()
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    idle = meter.stop()
    return {k: (Timed(v, idle) if cases[k] is not None else None) for k, v in out.items()}


def fmt(s, per=1):
    if s is None:
        return "n/a"
    s /= per
    for unit, f in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if s * f >= 1:
            return f"{s * f:8.2f} {unit}"
    return f"{s * 1e9:8.2f} ns"


def report(title, times, per, ours_key="crossinterp"):
    idle = next((t.idle for t in times.values() if t is not None), None)
    print(f"\n## {title} (idle {fmt_idle(idle)})")
    base = times[ours_key]
    for name, t in times.items():
        if t is None:
            print(f"  {name:<34} {'n/a':>11}")
            continue
        ratio = "" if name == ours_key else f"   ratio {t / base:6.2f}x"
        print(f"  {name:<34} {fmt(t, per)}{ratio:<18}   spread {t.spread:>5}")




def nap(seconds):
    """Sleep in a worker, as a function of this module: the first task of it
    a worker runs imports this module there (~100 ms on 3.14), which must not
    land in a timed round."""
    time.sleep(seconds)


def warm(ex):
    list(ex.map(abs, range(WORKERS * 4)))
    # Every worker started and has imported this module (the module of every
    # function timed here): WORKERS naps at once cannot all go to one worker.
    # Otherwise the worker a pool hands fewer tasks to (ours wakes its most
    # recent sleeper first) paid for the import in whichever timed round
    # first gave it one of this module's functions.
    for f in [ex.submit(nap, 0.05) for _ in range(WORKERS)]:
        f.result()


# --- main ----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer items and rounds")
    ap.add_argument(
        "--only", nargs="*", type=int, default=[1, 2, 3, 4, 5, 6, 7], help="case numbers to run"
    )
    ap.add_argument(
        "--watchdog", type=float, default=1800, help="dump every thread and exit after this many s"
    )
    a = ap.parse_args()
    import faulthandler

    faulthandler.dump_traceback_later(a.watchdog, exit=True)  # a hang prints where it is stuck
    repeat = 2 if a.quick else 3
    n_rt = 300 if a.quick else 2000
    n_map = 10_000 if a.quick else 100_000
    n_cont = 50 if a.quick else 300
    spin_n, spin_tasks = (300_000, 8) if a.quick else (1_000_000, 8)

    header(f"# bench_executor: {WORKERS} workers{', --quick' if a.quick else ''}")
    print(
        "# ratio = peer time / crossinterp time (> 1: crossinterp faster); the machine may be loaded"
    )

    try:
        import cloudpickle
    except ImportError:
        cloudpickle = None
    std_cls = None
    if sys.version_info >= (3, 14):
        try:
            from concurrent.futures.interpreter import InterpreterPoolExecutor as std_cls
        except ImportError:
            std_cls = None

    ours = Ours(WORKERS)
    pools = {"crossinterp": ours}
    if std_cls is not None:
        pools["stdlib InterpreterPoolExecutor"] = std_cls(WORKERS)
    pools["ProcessPoolExecutor (forkserver)"] = cf.ProcessPoolExecutor(
        WORKERS, mp_context=multiprocessing.get_context("forkserver")
    )
    pools["ThreadPoolExecutor"] = cf.ThreadPoolExecutor(WORKERS)
    for ex in pools.values():
        warm(ex)
    if std_cls is None:
        print("# stdlib InterpreterPoolExecutor: not in this Python (3.14+)")

    if 1 in a.only:
        # 1. round trip
        def rt(ex, n=n_rt):
            def run():
                for _ in range(n):
                    ex.submit(abs, 1).result()

            return run

        report(
            "1. round trip submit(abs, 1).result()",
            rounds(
                {k: rt(v) for k, v in pools.items()},
                repeat,
                settle={k: rt(v, 50) for k, v in pools.items()},
            ),
            n_rt,
        )

    if 2 in a.only:
        # 2. map
        def mp(ex, chunksize):
            def run():
                for _ in ex.map(abs, range(n_map), chunksize=chunksize):
                    pass

            return run

        for cs in (1, 256):
            times = rounds({k: mp(v, cs) for k, v in pools.items()}, repeat)
            report(f"2. map(abs, range({n_map:,}), chunksize={cs}) (per item)", times, n_map)

    if 3 in a.only:
        # 3. containers as argument and result
        proc = pools["ProcessPoolExecutor (forkserver)"]
        for label, value in (
            ("list of 100 ints", list(range(100))),
            ("dict of 100 str->int", {str(i): i for i in range(100)}),
            ("list of 10,000 ints", list(range(10_000))),
            ("dict of 10,000 str->int", {str(i): i for i in range(10_000)}),
        ):

            def native(v=value):
                for _ in range(n_cont):
                    ours.submit(ident, v).result()

            def forced(v=value):
                for _ in range(n_cont):
                    pickle.loads(ours.submit(via_pickle, pickle.dumps(v, protocol=5)).result())

            def process(v=value):
                for _ in range(n_cont):
                    proc.submit(ident, v).result()

            # Untimed: each path once with this value (the first round paid
            # for first-time work, a spread of thousands of percent).
            ours.submit(ident, value).result()
            pickle.loads(ours.submit(via_pickle, pickle.dumps(value, protocol=5)).result())
            proc.submit(ident, value).result()
            times = rounds(
                {
                    "crossinterp": native,
                    "crossinterp, pickle path forced": forced,
                    "ProcessPoolExecutor (forkserver)": process,
                },
                repeat,
            )
            report(f"3. ident({label}) round trip", times, n_cont)

    if 4 in a.only:
        # 4. CPU-bound
        def seq():
            for _ in range(spin_tasks):
                spin(spin_n)

        def par(ex):
            def run():
                list(ex.map(spin, [spin_n] * spin_tasks))

            return run

        for ex in pools.values():
            # The workers import this module (spin's) before the timing, in
            # every pool alike.
            list(ex.map(spin, [1] * 2 * WORKERS))
        cases = {"sequential": seq, **{k: par(v) for k, v in pools.items()}}
        times = rounds(cases, max(repeat, len(cases)), rotate=True)
        print(f"\n## 4. {spin_tasks} x spin({spin_n:,}) pure Python: speed-up over sequential "
              f"(idle {fmt_idle(times['sequential'].idle)})")
        for name, t in times.items():
            if name != "sequential" and t is not None:
                print(f"  {name:<34} {fmt(t)}   speed-up {times['sequential'] / t:5.2f}x   spread {t.spread:>5}")
        print(f"  {'sequential':<34} {fmt(times['sequential'])}                      "
              f"spread {times['sequential'].spread:>5}")

    if 5 in a.only:
        # 5. lambda by value
        n_fn = n_rt
        if cloudpickle is not None:
            probe = ours.submit(cloud_call, cloudpickle.dumps(make_lambda(1)), 1)
            try:
                probe.result()
            except ImportError:
                print(
                    "\n# cloudpickle does not import in the worker interpreters: its rows say n/a"
                )
                cloudpickle = None

        def ours_first():
            for i in range(n_fn):
                ours.submit(make_lambda(i), 1).result()

        cached = make_lambda(5)

        def ours_cached():
            for _ in range(n_fn):
                ours.submit(cached, 1).result()

        def cloud_each():
            for _ in range(n_fn):
                ours.submit(cloud_call, cloudpickle.dumps(cached), 1).result()

        times = rounds(
            {
                "crossinterp": ours_first,
                "cloudpickle per task": cloud_each if cloudpickle else None,
            },
            repeat,
        )
        report("5a. lambda by value, first call (new function each task)", times, n_fn)
        times = rounds(
            {
                "crossinterp": ours_cached,
                "cloudpickle per task": cloud_each if cloudpickle else None,
            },
            repeat,
        )
        report("5b. lambda by value, cached call (same function)", times, n_fn)

        g = 10

        def outer(k):
            def closure(x):
                return x + k + g

            return closure

        clo = outer(3)
        n_pk = 2000

        def xi_roundtrip():
            for _ in range(n_pk):
                _xi.loads(*_xi.dumps(clo))

        def cloud_roundtrip():
            for _ in range(n_pk):
                cloudpickle.loads(cloudpickle.dumps(clo))

        times = rounds(
            {"crossinterp": xi_roundtrip, "cloudpickle": cloud_roundtrip if cloudpickle else None},
            repeat,
        )
        report(
            "5c. dumps + loads of a closure, in this interpreter (_xi vs cloudpickle)", times, n_pk
        )

    if 6 in a.only:
        # 6. where the round trip goes: the executor against the crossings it
        # could be built on (a ratio below 1: that crossing is cheaper)
        from crossinterp import queues

        it = xi_interpreters.create()
        it2 = xi_interpreters.create()  # `it` is busy serving the queues
        inq, outq = queues.create(), queues.create()
        server = threading.Thread(target=it.call, args=(queue_server, inq, outq))
        server.start()

        def by_call():
            for _ in range(n_rt):
                it2.call(abs, 1)

        def by_queues():
            for _ in range(n_rt):
                inq.put(1)
                outq.get()

        def by_call_from_thread():
            # the executor's design before the queues: a thread that calls
            box = []
            ev_in, ev_out = threading.Event(), threading.Event()

            def worker():
                for _ in range(n_rt):
                    ev_in.wait()
                    ev_in.clear()
                    box.append(it2.call(abs, 1))
                    ev_out.set()

            t = threading.Thread(target=worker)
            t.start()
            for _ in range(n_rt):
                ev_in.set()
                ev_out.wait()
                ev_out.clear()
            t.join()

        def by_executor():
            for _ in range(n_rt):
                ours.submit(abs, 1).result()

        times = rounds(
            {
                "crossinterp": by_executor,
                "queue pair, loop in the interpreter (floor)": by_queues,
                "Interpreter.call, this thread": by_call,
                "Interpreter.call from a worker thread": by_call_from_thread,
            },
            repeat,
        )
        report(
            "6. one round trip: the executor (submit+result) vs the crossings under it",
            times,
            n_rt,
        )

    if 7 in a.only:
        # 7. round trips right after the pool idled: every pool's threads
        # fall asleep in 50 ms, and the first task wakes one; a woken thread
        # may land on its waker's CPU, and a pair that never sleeps again
        # stays there (benchmarks/README.md, "co-located round trips")
        n_idle = 1000 if a.quick else 3000

        def after_idle(ex):
            def run():
                for _ in range(n_idle):
                    ex.submit(abs, 1).result()

            return run

        def idle():
            time.sleep(0.05)  # untimed, just before each timed run

        times = rounds(
            {k: after_idle(v) for k, v in pools.items()},
            repeat,
            settle={k: idle for k in pools},
        )
        report(f"7. {n_idle} round trips right after 50 ms idle (per round trip)", times, n_idle)
        inq.put(None)
        server.join()
        it.close()
        it2.close()

    for ex in pools.values():
        ex.shutdown(wait=True)
    footer()


if __name__ == "__main__":
    main()
