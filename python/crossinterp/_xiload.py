"""The receiving side of crossinterp's pickling (see :mod:`crossinterp._xi`):
loading a pickle, rebuilding a function sent by value, and calling a callable
from a frame of ``__main__``. Kept small: every interpreter that receives a
pickled value or a call imports it, and on 3.13 what an interpreter imported
stays in the process's memory after it closes (issue 11.6); the sender's side
(``_xi``, with its pickler) is imported only where something is pickled.
Not public API."""

from __future__ import annotations

import functools
import marshal
import pickle
import sys
import types

# Not `typing.TYPE_CHECKING`: importing typing costs every interpreter memory.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# The name the sender's main script runs under in a receiver (the stdlib's).
_MAIN_ALIAS = "<fake __main__>"


# (pickle, main) -> (object, name, main copy) for a pickle that is nothing
# but one name of the sender's main script (a main-script function called
# again and again), filled by `_xi._load_with_main`. A hit is checked as that
# load would resolve the name now (not defined by this interpreter's own
# `__main__`, still bound to the object in the main script's copy), so it
# gives what a full load would, without the failed plain load and the
# unpickler (~3 us of each call of such a function).
_main_names: dict[tuple[bytes, str], tuple[object, str, types.ModuleType]] = {}
_MISSING = object()


def _lookup(obj: object, dotted: str) -> object:
    """``obj.a.b`` for ``dotted`` ``"a.b"``, or ``_MISSING`` where a part is missing."""
    for part in dotted.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def loads(data: bytes, main_file: str | None) -> object:
    if main_file is not None:
        hit = _main_names.get((data, main_file))
        if hit is not None:
            obj, name, copy = hit
            if _lookup(sys.modules.get("__main__"), name) is _MISSING and _lookup(copy, name) is obj:
                return obj
    try:
        return pickle.loads(data)
    except (AttributeError, ImportError):
        if main_file is None and _MAIN_ALIAS.encode() not in data:
            raise
    from ._xi import _load_with_main

    return _load_with_main(data, main_file)


def _import_module(name: str) -> types.ModuleType:
    import importlib

    return importlib.import_module(name)


def _new_globals(name: str | None) -> dict[str, Any]:
    import builtins

    return {"__name__": name, "__builtins__": builtins}


def _make_function(
    code: bytes, globals_: dict[str, Any] | None, name: str, qualname: str, module: str | None
) -> types.FunctionType:
    co = marshal.loads(code)
    if globals_ is None:
        main = sys.modules["__main__"]
        globals_ = main.__dict__
    closure = tuple(types.CellType() for _ in co.co_freevars) or None
    f = types.FunctionType(co, globals_, name, None, closure)
    f.__qualname__ = qualname
    f.__module__ = module  # type: ignore[assignment]  # None: no module, as pickle's
    return f


def _set_function_state(f: types.FunctionType, state: tuple[Any, ...]) -> None:
    defaults, kwdefaults, cells, glob, fdict = state
    f.__defaults__ = defaults
    f.__kwdefaults__ = kwdefaults
    for cell, v in zip(f.__closure__ or (), cells):
        if v is not _EMPTY_CELL:
            cell.cell_contents = v
    for n, v in glob.items():
        f.__globals__.setdefault(n, v)
    if fdict:
        f.__dict__.update(fdict)


# --- builtins that need a frame ------------------------------------------


@functools.cache
def _trampoline() -> types.CodeType:
    # `"x".__call__()`, not `"x"()`: calling a literal is a SyntaxWarning,
    # and silencing it would import `warnings` into every interpreter that
    # receives a call (issue 11.6).
    return compile('"__crossinterp_call__".__call__()', "<crossinterp call>", "eval")


def call_in_main(
    f: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> object:
    """``f(*args, **kwargs)`` from a frame whose globals and locals are this
    interpreter's ``__main__`` (so ``eval``, ``exec``, ``dir``, ``globals``,
    ``locals`` and ``vars`` called without a namespace see ``__main__``, as
    they do in ``concurrent.interpreters``). The frame's only constant is the
    call (a ``functools.partial``, which adds no frame of its own; its
    ``__call__`` is a C slot, no frame either)."""
    call = functools.partial(f, *args, **(kwargs or {}))
    code = _trampoline().replace(co_consts=(call,))
    ns = sys.modules["__main__"].__dict__
    return eval(code, ns, ns)  # runs only `call()`


class _EmptyCell:
    def __reduce__(self) -> str:
        return "_EMPTY_CELL"


_EMPTY_CELL = _EmptyCell()
