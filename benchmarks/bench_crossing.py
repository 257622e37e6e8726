"""Per-operation cost of one crossing, and the single-interpreter micro-costs
an extension refactor could slow down. No peers: this is the yardstick for
"before / after" comparisons of crossinterp itself (scripts/bench_ab runs it
against two builds, alternately, in one run).

    scripts/py 3.14 benchmarks/bench_crossing.py [--quick] [--rounds N] [--target S] [--json FILE [--quiet]]

Crossings (ns per round trip; "x int" = this row / the small-int row of its group):
1. queue round trip: the value goes main -> subinterpreter -> main through a
   pair of ``crossinterp.queues.Queue`` (plain blocking ``put``/``get``); the
   subinterpreter runs an echo loop (``interp.exec`` in a thread). Includes
   the two thread hand-offs.
2. ``Interpreter.call(echo, value)``: the value crosses as the argument and
   back as the result, in this thread (no hand-off). ``echo`` is a function
   of that subinterpreter, held here as its proxy: it crosses home as the
   function itself, nothing is pickled.
3. ``put`` + ``get`` of the value on one Queue in one thread: its conversion to
   the interpreter-neutral form and back, nothing else.
Each carries: a small int, a 64-byte ``SharedBuffer``, a ``Queue``, an
``AtomicInt`` and a proxy (``crossinterp.share(list)``, owned by the main
interpreter: a proxy in the subinterpreter, the list itself back home).

Containers (issue 12 part 3): a list of ints and a dict of short str keys to
ints, 100 and 10,000 items, through ``put`` + ``get`` on one Queue and through
``Interpreter.call(echo, value)``, copied natively and, in the same run, by
the pickle path (forced with the test hook ``_testing_pickle_containers``);
the ratio is pickle / native (above 1: native is faster).

Micro-costs (ns per operation, in one interpreter; the statement is unrolled
10 times per loop iteration, and the empty statement's cost is the first row):
``_native.is_shareable`` of a plain list (the "not ours" path), of a
``SharedBuffer`` and of a small int; ``AtomicInt.inc()``; and on a proxy of a
list owned by a subinterpreter: ``p.append(0)`` and ``len(p)``.

Each figure is the best of N rounds; the cases are calibrated once (about
--target seconds each), then every round runs every case in turn, so machine
noise hits all rows alike. Prints the CPU model, the Python version and the
git commit of the crossinterp under test (the checkout its package lives in).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from _machine import Meter, cpu_model, fmt_idle, fmt_spread, footer, header

import crossinterp
from crossinterp import AtomicInt, SharedBuffer, _native, interpreters, share
from crossinterp.queues import Queue

HANG_SECONDS = 120  # one measurement taking longer than this is a hang
UNROLL = 10  # micro-cost statements per loop iteration

# A case: run(n) -> (elapsed seconds, operations done), about n operations.
Run = Callable[[int], tuple[float, int]]


ECHO_LOOP = """
while True:
    x = a.get()
    if x is None:
        break
    b.put(x)
"""

# Run in the `Interpreter.call` target: `echo` crosses to main as a proxy,
# and back home (as the function itself) as the callable of every call, so
# nothing is pickled.
ECHO_FUNCTION = """
from crossinterp import share
def echo(x):
    return x
q.put(share(echo))
"""

PROXY_OWNER = """
from crossinterp import share
owned = []
q.put(share(owned))
"""


# ---------------------------------------------------------------- environment



def code_under_test() -> dict:
    """Where the crossinterp under test comes from: the checkout its Python
    package is (symlinked) from, and that checkout's commit."""
    pkg = os.path.dirname(os.path.realpath(crossinterp.__file__))
    info = {"package": pkg, "native": os.path.realpath(_native.__file__), "rev": "unknown"}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", pkg, *args], capture_output=True, text=True, timeout=30, check=False
        )

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode == 0:
            info["rev"] = rev.stdout.strip()
            if git("diff", "--quiet", "HEAD").returncode != 0:
                info["rev"] += " + uncommitted changes"
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def gil_build() -> str:
    return "GIL" if getattr(sys, "_is_gil_enabled", lambda: True)() else "free-threaded"


# ---------------------------------------------------------------- timing


def arm_watchdog() -> None:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)


def disarm_watchdog() -> None:
    faulthandler.cancel_dump_traceback_later()


def calibrate(run: Run, target: float) -> int:
    """About how many operations take `target` seconds."""
    n = 10
    while True:
        dt, ops = run(n)
        if dt >= target / 8 or n >= 100_000_000:
            return max(10, int(ops * target / max(dt, 1e-9)))
        n *= 4


def measure(cases: dict[str, Run], rounds: int, target: float) -> dict[str, list[float]]:
    """Calibrate every case, then `rounds` rounds of every case in turn.
    Returns name -> seconds per operation of each round."""
    sizes = {}
    for name, run in cases.items():
        arm_watchdog()
        run(10)  # warm up
        sizes[name] = calibrate(run, target)
    per_round: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            arm_watchdog()
            dt, ops = run(sizes[name])
            per_round[name].append(dt / ops)
    disarm_watchdog()
    return per_round


def timed(stmt: str, unroll: int = 1, **names: object) -> Run:
    """run(n): `stmt` executed about n times, `unroll` times per loop
    iteration, with `names` as its (global) names."""
    body = f"        {stmt}\n" * unroll
    src = (
        "def run(iters):\n"
        "    t0 = perf_counter()\n"
        "    for _ in range(iters):\n"
        f"{body}"
        "    return perf_counter() - t0\n"
    )
    ns: dict = {"perf_counter": time.perf_counter, **names}
    exec(src, ns)  # noqa: S102 - our own generated loop
    inner = ns["run"]

    def run(n: int) -> tuple[float, int]:
        iters = max(1, n // unroll)
        return inner(iters), iters * unroll

    return run


# ---------------------------------------------------------------- the cases


class Fixture:
    """The interpreters, queues and values every case uses; closed at the end."""

    def __init__(self) -> None:
        self.closers: list[Callable[[], object]] = []
        self.echo_thread: threading.Thread | None = None
        self.echo_exc: BaseException | None = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        self.lst: list = []
        self.values: dict[str, object] = {
            "int": 7,
            "SharedBuffer": SharedBuffer(64),
            "Queue": Queue(),
            "AtomicInt": AtomicInt(0),
            "proxy": share(self.lst),
        }
        # Echo server for the queue round trip.
        self.a, self.b = Queue(), Queue()
        self.local = Queue()  # put+get in this thread only
        self.echo_it = interpreters.create()
        self.closers.append(self.echo_it.close)
        self.echo_it.prepare_main(a=self.a, b=self.b)
        self.echo_thread = threading.Thread(target=self._echo, daemon=True)
        self.echo_thread.start()
        q = Queue()
        # Interpreter.call target, and its `echo` function (as a proxy here).
        self.call_it = interpreters.create()
        self.closers.append(self.call_it.close)
        self.call_it.prepare_main(q=q)
        self.call_it.exec(ECHO_FUNCTION)
        self.echo = q.get(timeout=30)
        # A list owned by a subinterpreter, and our proxy of it.
        self.owner_it = interpreters.create()
        self.closers.append(self.owner_it.close)
        self.owner_it.prepare_main(q=q)
        self.owner_it.exec(PROXY_OWNER)
        self.remote = q.get(timeout=30)
        self.check()

    def _echo(self) -> None:
        try:
            self.echo_it.exec(ECHO_LOOP)
        except BaseException as e:  # noqa: BLE001 - re-raised by close()
            self.echo_exc = e
            self.b.put(None)

    def check(self) -> None:
        """Every value comes back as what it was (so each row measures a
        crossing, not an error path)."""
        for name, v in self.values.items():
            self.a.put(v)
            back_q = self.b.get(timeout=30)
            back_call = self.call_it.call(self.echo, v)
            self.local.put(v)
            back_local = self.local.get()
            for how, back in (("queue", back_q), ("call", back_call), ("put+get", back_local)):
                ok = back is self.lst if name == "proxy" else type(back) is type(v)
                if name == "int":
                    ok = back == v
                if not ok:
                    raise SystemExit(f"{name} via {how}: came back as {back!r}")
        for what, p in (("list", self.remote), ("echo function", self.echo)):
            if type(p).__name__ != "SharedObjectProxy":
                raise SystemExit(f"the subinterpreter's {what} arrived as {p!r}")

    def close(self) -> None:
        if self.echo_thread is not None:
            self.a.put(None)
            self.echo_thread.join(HANG_SECONDS)
        self.remote = self.echo = None  # our proxies, before their owners close
        for c in reversed(self.closers):
            c()
        if self.echo_exc is not None:
            raise self.echo_exc


def crossing_cases(fx: Fixture) -> dict[str, dict[str, Run]]:
    groups: dict[str, dict[str, Run]] = {
        "queue round trip main -> subinterpreter -> main (ns per round trip)": {},
        "Interpreter.call(echo, value) -> value, this thread (ns per call)": {},
        "put + get on one Queue, one thread (ns per put+get)": {},
    }
    rt, call, local = groups.values()
    for name, v in fx.values.items():
        rt[f"queue rt: {name}"] = timed("put(v); get()", put=fx.a.put, get=fx.b.get, v=v)
        call[f"call echo: {name}"] = timed("call(echo, v)", call=fx.call_it.call, echo=fx.echo, v=v)
        local[f"put+get: {name}"] = timed("put(v); get()", put=fx.local.put, get=fx.local.get, v=v)
    return groups


CONTAINERS = {
    "list of 100 ints": list(range(100)),
    "dict of 100 str->int": {f"k{i}": i for i in range(100)},
    "list of 10,000 ints": list(range(10_000)),
    "dict of 10,000 str->int": {f"k{i}": i for i in range(10_000)},
    # rows and records: containers of containers
    "list of 1,000 3-tuples": [(i, f"n{i}", i * 0.5) for i in range(1000)],
    "list of 1,000 3-key dicts": [{"id": i, "name": f"n{i}", "score": i * 0.5} for i in range(1000)],
}
CONTAINER_PATHS = ("put+get", "call echo")


def pickled(run: Run, on: bool) -> Run:
    """`run` with the pickle path for containers forced on or off."""

    def r(n: int) -> tuple[float, int]:
        _native._testing_pickle_containers(on)
        try:
            return run(n)
        finally:
            _native._testing_pickle_containers(False)

    return r


def container_cases(fx: Fixture) -> dict[str, Run]:
    cases: dict[str, Run] = {}
    for name, v in CONTAINERS.items():
        for on in (False, True):
            mode = "pickle" if on else "native"
            for how in CONTAINER_PATHS:
                if how == "put+get":
                    run = timed("put(v); get()", put=fx.local.put, get=fx.local.get, v=v)
                else:
                    run = timed("call(echo, v)", call=fx.call_it.call, echo=fx.echo, v=v)
                r = pickled(run, on)
                r(1)  # it comes back as it went (each row measures a crossing)
                cases[f"{how}: {name} [{mode}]"] = r
    for on in (False, True):
        _native._testing_pickle_containers(on)
        try:
            for name, v in CONTAINERS.items():
                fx.local.put(v)
                if fx.local.get() != v or fx.call_it.call(fx.echo, v) != v:
                    raise SystemExit(f"{name} (pickle={on}) did not come back equal")
        finally:
            _native._testing_pickle_containers(False)
    return cases


def micro_cases(fx: Fixture) -> dict[str, Run]:
    p = fx.remote
    append = timed("p.append(0)", UNROLL, p=p)

    def append_then_clear(n: int) -> tuple[float, int]:
        r = append(n)
        p.clear()  # outside the timing: keep the owner's list small
        return r

    def shareable(x: object) -> Run:
        return timed("is_shareable(x)", UNROLL, is_shareable=_native.is_shareable, x=x)

    return {
        "empty statement (loop cost)": timed("pass", UNROLL),
        "is_shareable(list)": shareable([1]),
        "is_shareable(SharedBuffer)": shareable(fx.values["SharedBuffer"]),
        "is_shareable(int)": shareable(7),
        "AtomicInt.inc()": timed("a.inc()", UNROLL, a=AtomicInt(0)),
        "proxy p.append(0)": append_then_clear,
        "proxy len(p)": timed("len(p)", UNROLL, p=p),
    }


# ---------------------------------------------------------------- main


def fmt_ns(s: float) -> str:
    ns = s * 1e9
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds of ~0.05 s per case")
    ap.add_argument("--rounds", type=int, help="rounds (default 7, --quick 3)")
    ap.add_argument("--target", type=float, help="seconds per case per round (0.2; --quick 0.05)")
    ap.add_argument("--json", metavar="FILE", help="also write every round's figures to FILE")
    ap.add_argument("--quiet", action="store_true", help="no table (with --json)")
    a = ap.parse_args()
    rounds = a.rounds or (3 if a.quick else 7)
    target = a.target or (0.05 if a.quick else 0.2)

    code = code_under_test()
    meta = {
        "python": sys.version.split()[0],
        "build": gil_build(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "rev": code["rev"],
        "package": code["package"],
        "native": code["native"],
        "rounds": rounds,
        "target": target,
    }
    out = print if not a.quiet else (lambda *_a, **_k: None)
    header(f"crossinterp {meta['rev']} ({meta['package']}): the cost of one crossing", out=out)
    out(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out(f"best of {rounds} rounds of ~{target:g} s per case\n")

    fx = Fixture()
    try:
        groups = crossing_cases(fx)
        micro = micro_cases(fx)
        containers = container_cases(fx)
        cases = {name: run for g in groups.values() for name, run in g.items()} | containers | micro
        meter = Meter()
        per_round = measure(cases, rounds, target)
        idle = meter.stop()
    finally:
        fx.close()
    best = {name: min(ts) for name, ts in per_round.items()}
    sp = {name: fmt_spread(ts) for name, ts in per_round.items()}
    out(f"(all cases interleaved; machine idle while measured: {fmt_idle(idle)}; "
        "spread = (max - min) / min over the rounds)\n")

    for title, g in groups.items():
        out(title)
        base = next(iter(g))
        for name in g:
            ratio = "" if name == base else f"{best[name] / best[base]:8.2f}x int"
            out(f"  {name:30s}{fmt_ns(best[name]):>10s} ns{ratio:12s}  spread {sp[name]:>5s}")
        out()
    out("containers: native copy vs the pickle path, same run (ns per operation)")
    for how in CONTAINER_PATHS:
        for name in CONTAINERS:
            nat, pick = best[f"{how}: {name} [native]"], best[f"{how}: {name} [pickle]"]
            spr = f"{sp[f'{how}: {name} [native]']}/{sp[f'{how}: {name} [pickle]']}"
            out(f"  {how + ': ' + name:38s}{fmt_ns(nat):>11s} ns native{fmt_ns(pick):>11s} ns pickle"
                f"{pick / nat:8.2f}x  spread {spr:>9s}")
    out()
    out(f"single-interpreter micro-costs (ns per operation, {UNROLL}x unrolled)")
    for name in micro:
        out(f"  {name:30s}{fmt_ns(best[name]):>10s} ns  spread {sp[name]:>5s}")
    run_idle = footer(out=out)
    if idle is not None:
        meta["idle"] = {"raw": idle.raw, "free": idle.free}
    if run_idle is not None:
        meta["run_idle"] = {"raw": run_idle.raw, "free": run_idle.free}

    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "meta": meta,
                    "groups": {t: list(g) for t, g in groups.items()}
                    | {"containers": list(containers), "micro": list(micro)},
                    "rows": per_round,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
