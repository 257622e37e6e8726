"""Interpreter create+close and call round-trip: crossinterp side by side with
CPython's own module, in the same run, reported as ratios.

Peers: ``concurrent.interpreters`` on 3.14+, ``_interpreters`` on 3.13 (whose
``call`` takes no arguments and returns no result, so there the round trip is
measured with a no-argument function on both sides).

    scripts/py 3.14 benchmarks/bench_interpreters.py [--quick]

Ratio = peer time / crossinterp time (> 1: crossinterp is faster).
"""

from __future__ import annotations

import argparse
import sys
import time

from _machine import Meter, fmt_idle, fmt_spread, footer, header

from crossinterp import interpreters as ours


def noop():
    return None




def rounds_of(fn, number: int, repeat: int) -> list[float]:
    """Mean time per operation of each of `repeat` rounds, in seconds."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return out


def interleaved_rounds(fns: dict, number: int, repeat: int) -> dict[str, list[float]]:
    """`rounds_of` for several functions at once: round r runs each in turn
    (the order rotated by one every round), so that each sees the process
    in the same state as the others."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        for k in names[r % len(names):] + names[: r % len(names)]:
            out[k] += rounds_of(fns[k], number, 1)
    return out


class Peer:
    name: str

    def create_close(self) -> None: ...
    def make(self): ...
    def call_noop(self, it) -> None: ...
    def call_pow(self, it): ...
    def close(self, it) -> None: ...


class StdlibPeer(Peer):
    name = "concurrent.interpreters"

    def __init__(self):
        import concurrent.interpreters as ci

        self.ci = ci

    def create_close(self):
        self.ci.create().close()

    def make(self):
        return self.ci.create()

    def call_noop(self, it):
        it.call(noop)

    def call_pow(self, it):
        return it.call(pow, 2, 10)

    def close(self, it):
        it.close()


class LowLevelPeer(Peer):
    name = "_interpreters (3.13)"

    def __init__(self):
        import _interpreters

        self.m = _interpreters

    def create_close(self):
        self.m.destroy(self.m.create())

    def make(self):
        return self.m.create()

    def call_noop(self, it):
        self.m.call(it, noop)

    call_pow = None

    def close(self, it):
        self.m.destroy(it)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer iterations")
    a = p.parse_args()
    scale = 0.2 if a.quick else 1.0
    n_create = max(5, int(100 * scale))
    n_call = max(100, int(5000 * scale))

    peer: Peer = StdlibPeer() if sys.version_info >= (3, 14) else LowLevelPeer()
    header(f"crossinterp vs {peer.name}: best of 5 rounds")

    rows = []
    # Warm up all three (imports, allocator pools).
    for _ in range(3):
        ours.create().close()
        ours.create(site=False).close()
        peer.create_close()
    # Ours (the default, and the opt-in fast path with no `site` import in
    # the new interpreter) and the peer take turns, round by round, in a
    # rotating order: a process that has created many interpreters creates
    # the next ones at another speed (CPython 3.13 leaks each one's arenas,
    # so every creation maps fresh memory), and rows measured one after the
    # other compared a younger process with an older one (3.13: the fast
    # path came out slower than the default).
    m = Meter()
    t = interleaved_rounds(
        {
            "default": lambda: ours.create().close(),
            "fast": lambda: ours.create(site=False).close(),
            "peer": peer.create_close,
        },
        n_create,
        5,
    )
    meter = m.stop()
    rows.append(("create+close", t["default"], t["peer"], meter))
    rows.append(("create(site=False)+close", t["fast"], t["peer"], meter))

    it_o = ours.create()
    it_p = peer.make()
    it_o.call(noop)
    peer.call_noop(it_p)
    m = Meter()
    t_ours = rounds_of(lambda: it_o.call(noop), n_call, 5)
    t_peer = rounds_of(lambda: peer.call_noop(it_p), n_call, 5)
    rows.append(("call(noop)", t_ours, t_peer, m.stop()))
    if peer.call_pow is not None:
        assert it_o.call(pow, 2, 10) == peer.call_pow(it_p) == 1024
        m = Meter()
        t_ours = rounds_of(lambda: it_o.call(pow, 2, 10), n_call, 5)
        t_peer = rounds_of(lambda: peer.call_pow(it_p), n_call, 5)
        rows.append(("call(pow, 2, 10)", t_ours, t_peer, m.stop()))
    it_o.close()
    peer.close(it_p)

    print(f"{'operation':<26}{'crossinterp':>14}{'peer':>14}{'ratio':>9}{'spread ours/peer':>18}{'idle':>6}")
    for name, os_, ps, idle in rows:
        o, pe = min(os_), min(ps)
        sp = f"{fmt_spread(os_)}/{fmt_spread(ps)}"
        print(f"{name:<26}{o * 1e6:>11.1f} µs{pe * 1e6:>11.1f} µs{pe / o:>8.2f}x{sp:>18}{fmt_idle(idle):>6}")
    footer()


if __name__ == "__main__":
    main()
