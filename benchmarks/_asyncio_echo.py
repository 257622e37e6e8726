"""The echo function aiointerpreters' workers run for bench_asyncio.

A file of its own, with nothing imported: aiointerpreters loads a function
of ``__main__`` by its file path in each worker, and bench_asyncio imports
modules that do not load in the stdlib's subinterpreters.
"""


def echo(x: object) -> object:
    return x


# Load this file by path in the workers (as aiointerpreters does for
# functions of __main__): the workers' sys.path has no benchmarks/.
echo.__module__ = "__main__"
