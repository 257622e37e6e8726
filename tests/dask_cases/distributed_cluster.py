"""distributed: a LocalCluster worker whose tasks run in crossinterp
interpreters (InterpreterWorkerPlugin); nothing lost when a worker
interpreter is closed under the pool."""

import os

from distributed import Client, LocalCluster

from crossinterp.dask import InterpreterWorkerPlugin


def where(x):
    from crossinterp import interpreters

    return interpreters.get_current().id, x * 2


def boom(x):
    raise KeyError(f"missing {x}")


def close_pool_interpreters():
    """Run in the worker's main interpreter: close every subinterpreter of its
    pool that is idle between tasks (a pool's loop is parked in each: they are
    running, and `close()` makes the loop leave; one running a task refuses)."""
    from crossinterp import interpreters

    closed = 0
    for it in interpreters.list_all():
        if it.id != interpreters.get_main().id:
            try:
                it.close()
            except interpreters.InterpreterError:
                continue
            closed += 1
    return closed


def replaced(dask_worker):
    return dask_worker.executors["default"].replaced


if __name__ == "__main__":
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cl,
        Client(cl) as c,
    ):
        c.register_plugin(InterpreterWorkerPlugin())
        out = c.gather(c.map(where, range(40)))
        assert [v for _, v in out] == [2 * i for i in range(40)], out
        ids = {i for i, _ in out}
        assert 0 not in ids and 1 <= len(ids) <= 2, ids  # the worker's two interpreters
        try:
            c.submit(boom, 3).result()
        except KeyError as e:
            assert "missing 3" in str(e)
        else:
            raise AssertionError("no KeyError")
        assert c.submit(lambda a: a + 1, 41).result() == 42  # a lambda, by value
        # A worker interpreter closed under the pool: the task is run again in
        # a new pool; nothing lost.
        closed = c.run(close_pool_interpreters)
        print("closed", closed, c.run(os.getpid), flush=True)
        assert sum(closed.values()) >= 1, closed
        out = c.gather(c.map(where, range(100, 140)))
        assert [v for _, v in out] == [2 * i for i in range(100, 140)], out
        assert 0 not in {i for i, _ in out}
        print("ids", {i for i, _ in out}, c.run(replaced), c.run(os.getpid), flush=True)
        assert sum(c.run(replaced).values()) >= 1
    print("OK")
