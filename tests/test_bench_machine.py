"""benchmarks/_machine.py's stability helpers on synthetic input: the idle
fraction from /proc/stat text, a process tree's CPU time from /proc/PID/stat
files, and the spread over rounds (no benchmark is run)."""

import importlib.util
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "_machine.py")
_spec = importlib.util.spec_from_file_location("_bench_machine", _PATH)
machine = importlib.util.module_from_spec(_spec)
sys.modules["_bench_machine"] = machine
_spec.loader.exec_module(machine)

# user nice system idle iowait irq softirq steal guest guest_nice
STAT_A = """cpu  1000 10 200 5000 40 5 5 0 300 0
cpu0 500 5 100 2500 20 3 2 0 150 0
cpu1 500 5 100 2500 20 2 3 0 150 0
intr 12345 0 0
ctxt 999
"""
STAT_B = """cpu  1100 10 250 5300 60 10 10 60 900 0
cpu0 550 5 125 2650 30 5 5 30 450 0
cpu1 550 5 125 2650 30 5 5 30 450 0
"""


def test_parse_proc_stat_idle_and_total_exclude_guest():
    idle, total = machine.parse_proc_stat(STAT_A)
    assert idle == 5000 + 40
    # guest (300) is already part of user: not added again
    assert total == 1000 + 10 + 200 + 5000 + 40 + 5 + 5 + 0


def test_parse_proc_stat_short_line_and_missing_line():
    assert machine.parse_proc_stat("cpu 1 2 3 4\n") == (4, 10)
    with pytest.raises(ValueError):
        machine.parse_proc_stat("cpu0 1 2 3 4\n")


def test_idle_between_samples():
    a = machine.CpuSample(*machine.parse_proc_stat(STAT_A), own=100)
    b = machine.CpuSample(*machine.parse_proc_stat(STAT_B), own=220)
    idle = machine.Idle.between(a, b)
    # deltas: user 100, system 50, idle 300, iowait 20, irq 5, softirq 5, steal 60
    total = 100 + 50 + 300 + 20 + 5 + 5 + 60
    assert idle.jiffies == total
    assert idle.raw == pytest.approx(320 / total)
    assert idle.free == pytest.approx((320 + 120) / total)
    # 440 / 540 = 81.5 %: just above the 80 % flag (raw 59 % alone would be below)
    assert not idle.low
    assert machine.fmt_idle(idle) == "81%"


def test_idle_threshold_and_cells():
    a = machine.CpuSample(0, 0, 0)
    quiet = machine.Idle.between(a, machine.CpuSample(90, 100, 5))
    busy = machine.Idle.between(a, machine.CpuSample(30, 100, 20))
    assert quiet.free == pytest.approx(0.95) and not quiet.low
    assert busy.free == pytest.approx(0.50) and busy.low
    assert machine.fmt_idle(quiet) == "95%"
    assert machine.fmt_idle(busy) == "50%!"
    assert machine.fmt_idle(None) == "n/a"
    # no time passed, or a missing sample: no figure rather than a division by 0
    assert machine.Idle.between(a, a) is None
    assert machine.Idle.between(None, a) is None
    # own time cannot make the machine more than fully idle
    assert machine.Idle.between(a, machine.CpuSample(90, 100, 50)).free == 1.0


def _stat(pid, comm, ppid, utime, stime, cutime, cstime):
    # fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
    # majflt cmajflt utime stime cutime cstime priority ...
    return (
        f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194304 10 0 0 0 "
        f"{utime} {stime} {cutime} {cstime} 20 0 1 0 100 1000 50\n"
    )


def test_parse_pid_stat_with_odd_command_name():
    text = _stat(42, "we ird) (name", 7, 11, 22, 33, 44)
    assert machine.parse_pid_stat(text) == (7, 11 + 22 + 33 + 44)


def test_tree_jiffies_sums_descendants_only(tmp_path):
    procs = {
        1: (0, 1000, 0, 0, 0),
        10: (1, 5, 5, 0, 0),  # the root
        11: (10, 7, 3, 2, 1),  # child
        12: (11, 4, 0, 0, 0),  # grandchild
        20: (1, 900, 100, 0, 0),  # unrelated
    }
    for pid, (ppid, u, s, cu, cs) in procs.items():
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(_stat(pid, "python3", ppid, u, s, cu, cs))
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    (tmp_path / "99").mkdir()  # a process gone meanwhile (no stat) is skipped
    assert machine.tree_jiffies(10, proc=str(tmp_path)) == 10 + 13 + 4
    assert machine.tree_jiffies(12, proc=str(tmp_path)) == 4
    assert machine.tree_jiffies(20, proc=str(tmp_path)) == 1000


def test_spread_and_median():
    ts = [2.0e-6, 2.5e-6, 2.2e-6, 3.0e-6]
    assert machine.spread_pct(ts) == pytest.approx(50.0)
    assert machine.median(ts) == pytest.approx(2.35e-6)
    assert machine.median([3.0, 1.0, 2.0]) == 2.0
    assert machine.spread_pct([5.0, 5.0, 5.0]) == 0.0
    # rates (higher is better) give the same spread as the times they invert
    rates = [1 / t for t in ts]
    assert machine.spread_pct(rates) == pytest.approx(50.0)
    assert machine.fmt_spread(ts) == "50%"
    assert machine.fmt_spread([]) == "n/a"
    with pytest.raises(ValueError):
        machine.median([])


def test_live_sample_is_sane():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc (not Linux)")
    a = machine.CpuSample.take()
    x = 0
    for i in range(2_000_000):
        x += i
    b = machine.CpuSample.take()
    assert a is not None and b is not None
    assert b.total >= a.total and b.own > a.own  # the loop above used CPU time
    idle = machine.Idle.between(a, b)
    if idle is not None:
        assert 0.0 <= idle.raw <= idle.free <= 1.0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity (not Linux)")
def test_placement_pins_each_thread_to_its_cpu_and_measures_parallelism():
    import math
    import threading

    place = machine.Placement(pin=True)
    assert place.pin and place.cpus == sorted(os.sched_getaffinity(0))
    seen: dict[int, set[int]] = {}
    line = place.start_line()
    n = 3

    def body(i: int) -> None:
        place.enter(i)
        seen[i] = os.sched_getaffinity(0)
        place.all_running(line, n)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # round robin over the allowed CPUs; the main thread is left as it was
    assert seen == {i: {place.cpus[i % len(place.cpus)]} for i in range(n)}
    assert os.sched_getaffinity(0) == set(place.cpus)
    assert line[0] == n
    # parallelism: the threads' CPU time over the wall time
    assert place.record([0.5, 0.5], 0.5) == pytest.approx(2.0)
    assert place.last == pytest.approx(2.0)
    assert math.isnan(place.record([0.3], 0.0))  # no wall time: no figure
    assert machine.fmt_par([1.9, 1.2, 2.0]) == "1.20"
    assert machine.fmt_par([]) == "n/a"
    assert "pinned one per CPU" in place.describe()
    unpinned = machine.Placement(pin=False)
    assert not unpinned.pin and "--no-pin" in unpinned.describe()
    unpinned.enter(1)  # no effect
    assert os.sched_getaffinity(0) == set(place.cpus)
