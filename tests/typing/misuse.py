"""Misuses of crossinterp's API that type checkers must reject.

Each line marked ``# expect-error`` must be reported by both mypy --strict
and pyright (strict), and no other line may be (tests/typing/test_typing.py).
Never run.
"""

from __future__ import annotations

import concurrent.futures

import crossinterp
import crossinterp.dask
from crossinterp import AtomicDict, AtomicInt, AtomicRef, Channel, Queue, SharedBuffer, interpreters
from crossinterp.futures import BrokenInterpreterPool, InterpreterPoolExecutor


def twice(x: int) -> int:
    return 2 * x


def misuse() -> None:
    q: Queue[int] = interpreters.create_queue()
    q.put("not an int")  # expect-error
    s: str = q.get()  # expect-error
    q.put(1, timeout="soon")  # expect-error
    ch: Channel[bytes] = crossinterp.channels.create()
    ch.send(42)  # expect-error
    n: int = ch.recv()  # expect-error
    interp = interpreters.create()
    interp.call(twice, "x")  # expect-error
    interp.call(twice, 1, 2)  # expect-error
    r: str = interp.call(twice, 1)  # expect-error
    interp.exec(42)  # expect-error
    interp.call_in_thread(twice, x="1")  # expect-error
    interp.prepare_main([1, 2])  # expect-error
    interp.no_such_method()  # expect-error
    interp.close(True)  # expect-error
    a = AtomicInt(0)
    a.add("1")  # expect-error
    a.compare_and_set(0.5, 1)  # expect-error
    ref: AtomicRef[int] = AtomicRef(1)
    ref.set("x")  # expect-error
    d: AtomicDict[str, int] = AtomicDict()
    d[1] = 2  # expect-error
    d["a"] = "b"  # expect-error
    buf = SharedBuffer("16")  # expect-error
    buf.nbytes = 3  # expect-error
    proxy = crossinterp.share({"a": 1})
    proxy.append(3)  # expect-error
    crossinterp.set_finalize_warn_after("10")  # expect-error
    print(crossinterp.no_such_name)  # expect-error
    interpreters.create_queue(maxsize="big")  # expect-error
    ex = InterpreterPoolExecutor(max_workers=2)
    fut: concurrent.futures.Future[str] = ex.submit(twice, 1)  # expect-error
    ex.submit(twice, "x")  # expect-error
    ex.submit(twice, 1, 2)  # expect-error
    ex.map(twice, [1], chunksize="x")  # expect-error
    doubled: list[str] = list(ex.map(twice, [1]))  # expect-error
    ex.shutdown(wait=True, cancel="yes")  # expect-error
    InterpreterPoolExecutor(max_workers="4")  # expect-error
    with crossinterp.InterpreterPoolExecutor() as scoped:
        scoped.submit(42)  # expect-error
    crossinterp.dask.scheduler(scoped.submit)  # expect-error
    crossinterp.dask.InterpreterWorkerPlugin(max_workers="2")  # expect-error
    broken: BrokenInterpreterPool = RuntimeError("no")  # expect-error
    del s, n, r, fut, doubled, broken
