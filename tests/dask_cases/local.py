"""Dask's local scheduler on the interpreter pool: results equal the threaded
scheduler's, tasks run in subinterpreters."""

import dask
import dask.bag as db
from dask import delayed

import crossinterp.dask as cdask
from crossinterp import NotShareableError, interpreters
from crossinterp.futures import InterpreterPoolExecutor


def inc(x):
    return x + 1


def where(_):
    return interpreters.get_current().id


def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def graph():
    parts = [delayed(sum)([delayed(collatz)(i) for i in range(k * 50 + 1, k * 50 + 51)]) for k in range(8)]
    return delayed(max)(parts), delayed(sum)(parts)


if __name__ == "__main__":
    # Not at the top: the workers load this script to find its functions,
    # and numpy (which dask.array imports) refuses subinterpreters.
    import dask.array as da

    main_id = interpreters.get_current().id
    with InterpreterPoolExecutor(2) as ex:
        # delayed: scheduler=ex
        want = dask.compute(*graph(), scheduler="threads")
        got = dask.compute(*graph(), scheduler=ex)
        assert got == want, (got, want)
        ids = set(dask.compute(*[delayed(where)(i) for i in range(16)], scheduler=ex))
        assert main_id not in ids and ids, ids
        # bag, with lambdas (by value), through dask.config.set
        b = db.from_sequence(range(2000), npartitions=8)
        expr = b.map(inc).filter(lambda x: x % 3 == 0).map(lambda x: (x % 7, x)).foldby(
            lambda kv: kv[0], lambda acc, kv: acc + kv[1], 0, lambda a, b: a + b, 0)
        want = sorted(expr.compute(scheduler="threads"))
        with dask.config.set(scheduler=ex):
            got = sorted(expr.compute())
        assert got == want, (got[:3], want[:3])
        # an exception raised by a task keeps its type
        try:
            delayed(lambda: 1 / 0)().compute(scheduler=ex)
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("no ZeroDivisionError")
        # dask.array: numpy refuses subinterpreters. Directly: a clear error;
        # through crossinterp.dask.scheduler: those tasks run in main threads.
        x = da.arange(10_000, chunks=1000)
        y = (x * 2 + 1).sum()
        try:
            y.compute(scheduler=ex)
        except NotShareableError:  # numpy's objects cannot cross
            pass
        else:
            raise AssertionError("numpy tasks crossed into a subinterpreter?")
        s = cdask.scheduler(ex)
        assert int(y.compute(scheduler=s)) == int(y.compute(scheduler="threads"))
        assert s.routed.in_main > 0
        # a mixed graph: pure-Python tasks in the pool, numpy ones in main
        ran = dask.compute(*[delayed(where)(i) for i in range(8)], scheduler=s)
        assert main_id not in set(ran), ran
    print("OK")
