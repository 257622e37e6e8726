"""Shared-object proxies: a method call on a list owned by another interpreter
(`p.append(1)`), side by side with the other ways to run that operation there,
in the same run; plus the issue's stress run (4 interpreters x 2,000
operations on one shared dict and one shared list, repeated).

    scripts/py 3.14 benchmarks/bench_proxy.py [--quick]

Rows (µs per operation, best of several rounds, rounds interleaved):
- floor:   `lst.append(1)` on a list of this interpreter;
- proxy:   `p.append(1)`, `p` a proxy of a list owned by a sub-interpreter;
- ours.call:    crossinterp `Interpreter.call(append_one)` (the list lives there);
- stdlib.call:  `concurrent.interpreters` `Interpreter.call(append_one)` (3.14+);
- pool:    `InterpreterPoolExecutor(1).submit(append_one).result()` (3.14+).
Ratio = peer time / proxy time (> 1: the proxy is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Interpreters made by the stdlib get sys.path from the runtime's path config:
# put this directory on PYTHONPATH so they can import the helper module too.
if HERE not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import _proxy_helpers
from _machine import Meter, fmt_idle, fmt_spread, footer, header, median

from crossinterp import interpreters, share
from crossinterp.queues import Queue


def per_op(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def method_call_rows(number: int, rounds: int) -> None:
    rows: dict[str, list[float]] = {}
    local = []
    it = interpreters.create()
    q = Queue()
    it.prepare_main(q=q)
    it.exec("import _proxy_helpers\nfrom crossinterp import share\nq.put(share(_proxy_helpers.lst))")
    p = q.get(timeout=10)
    cases = {
        "floor (same interpreter)": lambda: local.append(1),
        "proxy p.append(1)": lambda: p.append(1),
        "ours Interpreter.call": lambda: it.call(_proxy_helpers.append_one),
    }
    closers = [it.close]
    if sys.version_info >= (3, 14):
        import concurrent.interpreters as ci
        from concurrent.futures import InterpreterPoolExecutor

        sit = ci.create()
        sit.exec("import _proxy_helpers")
        pool = InterpreterPoolExecutor(max_workers=1)
        pool.submit(_proxy_helpers.reset).result()
        cases["stdlib Interpreter.call"] = lambda: sit.call(_proxy_helpers.append_one)
        cases["InterpreterPoolExecutor"] = lambda: pool.submit(_proxy_helpers.append_one).result()
        closers += [sit.close, pool.shutdown]
    for name, fn in cases.items():
        fn()  # warm up
        rows[name] = []
    meter = Meter()
    for _ in range(rounds):
        for name, fn in cases.items():
            n = number if not name.startswith(("stdlib", "Interp")) else max(number // 10, 50)
            rows[name].append(per_op(fn, n))
    idle = meter.stop()
    got = it.call(_proxy_helpers.length)
    for c in closers:
        c()
    proxy = min(rows["proxy p.append(1)"])
    print(f"method call round trip (best of {rounds} interleaved rounds; idle {fmt_idle(idle)})")
    print(f"  {'':28s} {'best':>12}{'median':>12}{'spread':>8}{'ratio':>10}")
    for name, ts in rows.items():
        best = min(ts)
        ratio = "" if name.startswith(("floor", "proxy")) else f"{best / proxy:.1f}x"
        med = median(ts)
        print(f"  {name:28s} {best * 1e6:9.2f} µs{med * 1e6:9.2f} µs{fmt_spread(ts):>8}{ratio:>10}")
    print(f"  (the proxied list got {got} appends)")


def stress(runs: int, ops: int) -> None:
    meter = Meter()
    t0 = time.perf_counter()
    for r in range(runs):
        d, lst = {}, []
        its = [interpreters.create() for _ in range(4)]
        for k, it in enumerate(its):
            it.prepare_main(d=share(d), lst=share(lst), k=k, n=ops)
        code = "for i in range(n):\n    d[(k, i)] = i\n    lst.append((k, i))"
        ts = [threading.Thread(target=it.exec, args=(code,)) for it in its]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for it in its:
            it.close()
        expect = sorted((k, i) for k in range(4) for i in range(ops))
        if len(d) != 4 * ops or sorted(lst) != expect:
            raise SystemExit(f"stress run {r}: lost updates (dict {len(d)}, list {len(lst)})")
    dt = time.perf_counter() - t0
    total = runs * 4 * ops * 2
    print(
        f"stress: {runs} runs x 4 interpreters x {ops} iterations (a dict set + a list append each): "
        f"no lost update; {total} proxy operations in {dt:.2f} s ({dt / total * 1e6:.1f} µs/op incl. create/close); "
        f"idle {fmt_idle(meter.stop())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    header("shared-object proxies: a method call on a list owned by another interpreter")
    if a.quick:
        method_call_rows(number=2000, rounds=3)
        stress(runs=3, ops=500)
    else:
        method_call_rows(number=20000, rounds=7)
        stress(runs=20, ops=2000)
    footer()


if __name__ == "__main__":
    main()
