"""What every benchmark prints with its figures: the CPU model and the
commit under test (machines differ; a figure without both means little),
the spread over each row's rounds, and how idle the machine was meanwhile."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def commit(path: str | None = None) -> str:
    """The short commit of the checkout that holds ``path`` (default: the
    crossinterp package under test), with "+ uncommitted changes" when the
    work tree differs from it."""
    if path is None:
        import crossinterp

        path = os.path.dirname(os.path.realpath(crossinterp.__file__))

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", path, *args], capture_output=True, text=True,
                              timeout=30, check=False)

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode != 0:
            return "unknown"
        out = rev.stdout.strip()
        if git("diff", "--quiet", "HEAD").returncode != 0:
            out += " + uncommitted changes"
        return out
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------- stability
# Every benchmark prints, next to each row, the spread over its rounds and how
# idle the machine was while the row was measured, and a header / footer with
# the machine, the commit and the idle fraction over the whole run. A ratio
# measured while other processes took CPU time is unreliable: it is flagged.

IDLE_WARN = 0.80  # below this idle fraction a row (or the run) is flagged


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(idle, total) jiffies of the aggregate ``cpu`` line of /proc/stat text.

    idle = idle + iowait; total = user + nice + system + idle + iowait + irq +
    softirq + steal (guest and guest_nice are already counted in user and
    nice, so they are left out)."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            v = [int(x) for x in parts[1:9]] + [0] * (8 - len(parts[1:9]))
            return v[3] + v[4], sum(v)
    raise ValueError("no aggregate 'cpu' line in /proc/stat text")


def parse_pid_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime + cutime + cstime) from /proc/PID/stat text (the
    command name, in parentheses, may hold spaces and parentheses)."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_jiffies(root: int | None = None, proc: str = "/proc") -> int:
    """CPU time (jiffies) used so far by process ``root`` (default: this one)
    and all its descendants, including reaped children (cutime/cstime)."""
    root = os.getpid() if root is None else root
    times: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="utf-8", errors="replace") as f:
                ppid, t = parse_pid_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not readable
        times[int(name)] = t
        children.setdefault(ppid, []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


class CpuSample:
    """One reading of /proc/stat (all CPUs) and of this process tree's CPU time."""

    __slots__ = ("idle", "own", "total")

    def __init__(self, idle: int, total: int, own: int):
        self.idle, self.total, self.own = idle, total, own

    @classmethod
    def take(cls) -> CpuSample | None:
        """None where /proc is not available (not Linux)."""
        try:
            with open("/proc/stat", encoding="ascii") as f:
                idle, total = parse_proc_stat(f.read())
            return cls(idle, total, tree_jiffies())
        except (OSError, ValueError):
            return None


class Idle:
    """The idle fraction between two samples.

    ``raw``: (idle + iowait) / total jiffies over all CPUs, as /proc/stat says.
    ``free``: the same, counting this benchmark's own CPU time (this process
    and its children: peers' worker processes) as idle, i.e. the share of the
    machine that *other* processes left to the benchmark. ``free`` is what the
    flag looks at: a benchmark busy on one of two cores is 50 % idle by
    ``raw`` yet undisturbed."""

    __slots__ = ("free", "jiffies", "raw")

    def __init__(self, raw: float, free: float, jiffies: int):
        self.raw, self.free, self.jiffies = raw, free, jiffies

    @classmethod
    def between(cls, a: CpuSample | None, b: CpuSample | None) -> Idle | None:
        if a is None or b is None or b.total <= a.total:
            return None
        total = b.total - a.total
        idle = max(0, b.idle - a.idle)
        own = max(0, b.own - a.own)
        return cls(idle / total, min(1.0, (idle + own) / total), total)

    @property
    def low(self) -> bool:
        return self.free < IDLE_WARN


class Meter:
    """Measures the idle fraction from its creation to ``stop()``."""

    def __init__(self) -> None:
        self.start = CpuSample.take()

    def stop(self) -> Idle | None:
        return Idle.between(self.start, CpuSample.take())


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of no samples")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def spread_pct(xs: list[float]) -> float:
    """(max - min) / min over the rounds, in %: 0 for perfectly stable rounds.
    The same whether the samples are times or rates."""
    lo, hi = min(xs), max(xs)
    if lo <= 0:
        return float("inf") if hi > lo else 0.0
    return (hi - lo) / lo * 100


def fmt_spread(xs: list[float] | None) -> str:
    """A spread cell: ``12%`` (n/a without samples)."""
    if not xs:
        return "n/a"
    p = spread_pct(xs)
    return f"{p:.0f}%" if p < 10_000 else ">9999%"


class Rounds(dict):
    """name -> the figure of a case (by default its best, i.e. smallest, round),
    as the benchmarks' "best of N" helpers return it, keeping every round in
    ``samples`` (name -> list) and the idle fraction while they ran in ``idle``."""

    def __init__(self, samples: dict, idle: Idle | None, pick=min):
        super().__init__((k, pick(v)) for k, v in samples.items() if v)
        self.samples = samples
        self.idle = idle

    def spread(self, name: str) -> str:
        return fmt_spread(self.samples.get(name))


class Timed(float):
    """A case's figure (its best round by default) that is still a float for
    the arithmetic of the ratios, carrying every round in ``samples`` and the
    idle fraction while they ran in ``idle``."""

    samples: list[float]
    idle: Idle | None

    def __new__(cls, samples: list[float], idle: Idle | None = None, pick=min):
        self = super().__new__(cls, pick(samples))
        self.samples = list(samples)
        self.idle = idle
        return self

    @property
    def spread(self) -> str:
        return fmt_spread(self.samples)


class _State:
    run: Meter | None = None
    low_rows = 0
    rows = 0


def fmt_idle(idle: Idle | None) -> str:
    """An idle cell: ``97%``, or ``62%!`` when below IDLE_WARN (counted for the
    footer's warning); ``n/a`` without /proc."""
    if idle is None:
        return "n/a"
    _State.rows += 1
    if idle.low:
        _State.low_rows += 1
        return f"{idle.free * 100:.0f}%!"
    return f"{idle.free * 100:.0f}%"


class Placement:
    """Where a multi-threaded benchmark's threads run, and whether they ran
    at once.

    With ``pin`` (the default of the thread benchmarks), the i-th thread of
    a run binds itself to the i-th CPU this process may use (round robin,
    ``os.sched_setaffinity`` on the calling thread), so that N threads of a
    row run on N CPUs: on the 2-vCPU VM these figures come from, the
    scheduler kept both threads of a run on one vCPU in some runs and not in
    others (its kernel carries a CPU-packing option), and the 2-thread rows
    then measured time slicing, not the structures; every implementation in
    a run is placed the same way.

    Either way each run records its *parallelism*: the CPU time of all its
    threads over the wall time of the run (``time.thread_time``), about N
    when N threads ran at once and about 1 when they took turns; the tables
    print the lowest of a row's rounds as ``par``. With ``pin``, the clock of
    a run starts once all its threads are running (:meth:`all_running`)."""

    def __init__(self, pin: bool = True) -> None:
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.pin = bool(pin and self.cpus and hasattr(os, "sched_setaffinity"))
        self.last = float("nan")

    def enter(self, index: int) -> None:
        """Called by the ``index``-th thread of a run before it starts."""
        if self.pin:
            os.sched_setaffinity(0, {self.cpus[index % len(self.cpus)]})

    @staticmethod
    def start_line() -> list:
        """The shared state of one run's :meth:`all_running`."""
        import threading

        return [0, threading.Lock()]

    def all_running(self, line: list, threads: int) -> None:
        """Called by each thread of a run after its barrier: spin until all
        ``threads`` of the run are running. A thread woken from the barrier on
        a halted vCPU can start milliseconds after the others (the VM wakes
        it through the host), which a short run would count as its own time;
        with pinned threads, spinning costs nobody a CPU."""
        with line[1]:
            line[0] += 1
        # Not on a GIL build: the spinner would hold the GIL the others need.
        if self.pin and not getattr(sys, "_is_gil_enabled", lambda: True)():
            while line[0] < threads:
                pass

    def record(self, cpu_seconds: list[float], wall: float) -> float:
        """A run's parallelism from its threads' CPU times; kept in ``last``."""
        self.last = sum(cpu_seconds) / wall if wall > 0 else float("nan")
        return self.last

    def describe(self) -> str:
        if self.pin:
            return (f"threads pinned one per CPU (of {len(self.cpus)}; --no-pin: where the "
                    "scheduler puts them); par = CPU time of a run's threads / its wall time, "
                    "lowest round (about N when N threads ran at once)")
        return ("threads where the scheduler puts them (--no-pin); par = CPU time of a run's "
                "threads / its wall time, lowest round (about N when N threads ran at once)")


def fmt_par(xs: list[float] | None) -> str:
    """A ``par`` cell: the lowest parallelism over a row's rounds."""
    if not xs:
        return "n/a"
    return f"{min(xs):.2f}"


def python_build() -> str:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return f"Python {sys.version.split()[0]} ({'GIL' if gil else 'free-threaded'} build)"


def header(title: str, pre_idle_seconds: float = 0.5, out=print) -> None:
    """Print the run's header (title, CPU model, commit, Python version and
    build, the machine's idle fraction over ``pre_idle_seconds`` before the
    start) and start the whole-run idle meter that ``footer()`` reads."""
    out(title)
    out(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); commit {commit()}; {python_build()}")
    m = Meter()
    time.sleep(pre_idle_seconds)
    pre = m.stop()
    if pre is None:
        out("machine idle: n/a (no /proc/stat)")
    else:
        line = f"machine idle before the start: {pre.raw * 100:.0f}% over {pre_idle_seconds:g} s"
        out(line + (f"  WARNING: below {IDLE_WARN:.0%}, expect unreliable figures" if pre.low else ""))
    out(
        "columns: spread = (max - min) / min over the rounds; idle = share of all CPUs left by "
        f"other processes while the row ran ('!' below {IDLE_WARN:.0%}: ratio unreliable)"
    )
    _State.run = Meter()
    _State.low_rows = _State.rows = 0


def footer(out=print) -> Idle | None:
    """Print the idle fraction over the whole run and, when the machine was
    busy (whole run or some rows below IDLE_WARN), a warning line; return
    the whole run's idle fraction."""
    idle = _State.run.stop() if _State.run is not None else None
    if idle is None:
        out("\nmachine idle over the run: n/a (no /proc/stat)")
        return None
    out(
        f"\nmachine idle over the run: {idle.free * 100:.0f}% left by other processes "
        f"(raw /proc/stat idle {idle.raw * 100:.0f}%, the rest used by this benchmark)"
    )
    if idle.low:
        out(
            f"WARNING: other processes took {(1 - idle.free) * 100:.0f}% of the CPU time during "
            "this run: the ratios are unreliable, rerun on an idle machine"
        )
    if _State.low_rows:
        out(
            f"WARNING: {_State.low_rows} of {_State.rows} rows ran with the machine below "
            f"{IDLE_WARN:.0%} idle (marked '!'): their ratios are unreliable"
        )
    return idle
