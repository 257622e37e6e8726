"""Python-side helpers of the cross-interpreter data layer (called by the
native module; not public API).

Objects that do not cross natively are pickled by :class:`XIPickler`, which
adds two rules to pickle's:

- **Functions by value.** A function that the receiver cannot find by
  reference (a lambda, a nested function or closure, a function whose module
  cannot be imported there, a function of a main script without an
  ``if __name__ == "__main__":`` guard, of ``-c`` or of the REPL) crosses as
  its code object (marshalled: same Python, same process), its defaults, its
  closure cells and the globals it names (its code's ``co_names`` found in its
  module's globals; builtins are not sent), each of these by the same rules. A
  global, cell or default that cannot cross fails with a message naming it.
  The receiver rebuilds the function: with its own ``__main__`` as globals
  when the function names no global (as ``concurrent.interpreters`` does for
  "stateless" functions), else with a fresh globals dict (one per sending
  module and crossing) holding the names it sent.
  Module-level functions of importable modules (and of a guarded main
  script) cross by reference, as pickle does.
- **Modules by name**: a module crosses as its name (imported in the receiver).

Functions and classes defined in the sender's guarded main script cross by
reference: the pickle carries the sender's main (its file, or the module name
it was run as with ``python -m``), and the receiver loads that script once as
a module named ``<fake __main__>`` (its ``if __name__ == "__main__":`` block
does not run), as ``concurrent.interpreters`` does; a main run with ``-m``
is imported by its module name instead, as multiprocessing's spawn does.

:func:`dumps` / :func:`loads` are the whole API (``loads`` and the
receiver's helpers live in :mod:`crossinterp._xiload`) (a future
``InterpreterPoolExecutor`` pickles its tasks through them).
"""

from __future__ import annotations

import io
import marshal
import pickle
import sys
import types

# What a receiver needs (rebuilding functions, loading, calling) lives in the
# small `_xiload`: a receiver imports only that (issue 11.6: every module an
# interpreter imports stays in its memory after it closes, on 3.13).
from ._xiload import (
    _EMPTY_CELL,
    _MAIN_ALIAS,
    _MISSING,
    _import_module,
    _lookup,
    _main_names,
    _make_function,
    _new_globals,
    _set_function_state,
    call_in_main,  # noqa: F401 - re-exported: `_xi.dumps` / `_xi.loads` are the API
    loads,  # noqa: F401 - re-exported (see above)
)

# Not `typing.TYPE_CHECKING`: every interpreter imports this module, and
# importing typing there costs memory (issue 11.6).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from typing import Any

# `main` references to a main module run with `-m` carry this prefix.
_MODULE_PREFIX = "module:"


def dumps(obj: object) -> tuple[bytes, str | None]:
    """``(pickle, main)``: ``main`` says where the receiver finds the sender's
    ``__main__`` (a file path, ``"module:NAME"``, or None)."""
    # Plain pickle first (XIPickler's hook costs a Python call per object);
    # XIPickler when that fails, or when the pickle names the sender's main
    # while its functions cannot be found by reference (no guard, -c, REPL).
    # A function that must go by value skips the plain attempt: pickle would
    # only fail on it (an exception raised and caught: 1-2 us of each call).
    if type(obj) is types.FunctionType and not _by_reference(obj):
        data = None
    else:
        try:
            data = pickle.dumps(obj, protocol=5)
        except Exception:  # noqa: BLE001 - any failure: retry with the by-value rules
            data = None
    if data is None or (b"__main__" in data and not _main_is_guarded()):
        buf = io.BytesIO()
        p = XIPickler(buf)
        try:
            p.dump(obj)
        except Exception as e:
            culprit = p.diagnose()
            if culprit is not None:
                raise pickle.PicklingError(culprit) from e
            raise
        data = buf.getvalue()
    return data, (_main_ref() if b"__main__" in data else None)


_MAX_MAIN_NAMES = 256  # entries of `_xiload._main_names`
_MAX_NAME_PICKLE = 256  # bytes: a pickle of one global reference is far smaller


def _load_with_main(data: bytes, main_file: str | None) -> object:
    """``loads`` when the pickle names the sender's main script."""
    u = _MainUnpickler(io.BytesIO(data), main_file)
    obj = u.load()
    first = u.first_in_copy
    # Remembered only for a pickle that was that one name and nothing else.
    if u.names == 1 and first is not None and first[2] is obj and len(data) <= _MAX_NAME_PICKLE:
        if len(_main_names) >= _MAX_MAIN_NAMES:
            _main_names.clear()
        _main_names[(data, main_file)] = (obj, first[0], first[1])  # type: ignore[index]  # set only with a main file
    return obj


def _main_ref() -> str | None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name: str | None = getattr(spec, "name", None)
    if name and name != "__main__":
        return _MODULE_PREFIX + name
    file: str | None = getattr(main, "__file__", None)
    return file


# --- functions by value ---------------------------------------------------


class XIPickler(pickle.Pickler):
    """pickle, protocol 5, with functions by value where they cannot go by
    reference and modules by name (see the module's docstring)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        # id(sender globals) -> the receiver's globals for them (one per crossing)
        self._globals: dict[int, _Globals] = {}
        # (function, what, value) of each part sent, for `diagnose`
        self._parts: list[tuple[types.FunctionType, str, object]] = []

    def reducer_override(self, obj: object) -> Any:
        t = type(obj)
        if t is types.FunctionType:
            if _by_reference(obj):  # type: ignore[arg-type]
                return NotImplemented
            return self._reduce_function(obj)  # type: ignore[arg-type]
        if t is types.ModuleType and obj is not sys.modules.get("__main__"):
            return (_import_module, (obj.__name__,))  # type: ignore[attr-defined]
        return NotImplemented

    def _reduce_function(self, f: types.FunctionType) -> tuple[Any, ...]:
        code = f.__code__
        names = _global_names(code, f.__globals__)
        if names:
            g = self._globals.get(id(f.__globals__))
            if g is None:
                g = self._globals[id(f.__globals__)] = _Globals(f.__globals__)
        else:
            g = None  # the receiver's __main__, as the stdlib's stateless functions
        glob = {n: f.__globals__[n] for n in names}
        cells = tuple(_cell_value(c) for c in f.__closure__ or ())
        for n, v in glob.items():
            self._parts.append((f, f"its global {n!r}", v))
        for n, v in zip(code.co_freevars, cells):
            self._parts.append((f, f"its free variable {n!r}", v))
        if f.__defaults__:
            self._parts.append((f, "its defaults", f.__defaults__))
        if f.__kwdefaults__:
            self._parts.append((f, "its keyword defaults", f.__kwdefaults__))
        state = (f.__defaults__, f.__kwdefaults__, cells, glob, f.__dict__ or None)
        args = (marshal.dumps(code), g, f.__name__, f.__qualname__, f.__module__)
        return (_make_function, args, state, None, None, _set_function_state)

    def diagnose(self) -> str | None:
        """After a failed dump: which part of a function sent by value does
        not cross (the first found), as a message; None if none of them."""
        for f, what, v in self._parts:
            try:
                XIPickler(io.BytesIO()).dump(v)
            except Exception as e:  # noqa: BLE001 - any failure is the culprit
                return (
                    f"function {f.__qualname__!r} crosses by value, but {what} "
                    f"({type(v).__name__} object) cannot cross: {e}"
                )
        return None


class _Globals:
    """Stands, in a pickle, for the receiver's new globals dict of a module."""

    def __init__(self, g: dict[str, Any]) -> None:
        self.name = g.get("__name__")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_globals, (self.name,))


def _cell_value(c: types.CellType) -> object:
    try:
        return c.cell_contents
    except ValueError:  # an empty cell (a variable not yet bound)
        return _EMPTY_CELL


def _global_names(code: types.CodeType, g: dict[str, Any]) -> list[str]:
    """The names `code` (and the code nested in it) uses that are in `g`."""
    out: list[str] = []
    seen: set[str] = set()
    stack = [code]
    while stack:
        co = stack.pop()
        for n in co.co_names:
            if n not in seen and n != "__builtins__" and n in g:
                seen.add(n)
                out.append(n)
        stack.extend(c for c in co.co_consts if type(c) is types.CodeType)
    return out


def _by_reference(f: types.FunctionType) -> bool:
    """Whether pickle's by-name reference to `f` finds it in a receiver."""
    qualname = f.__qualname__
    modname = f.__module__
    if "<" in qualname or not isinstance(modname, str):  # <lambda>, <locals>
        return False
    if modname == "__main__":
        # Defined by the main script itself (not added at run time by exec)?
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        return f.__code__.co_filename == main_file and _main_is_guarded()
    mod = sys.modules.get(modname)
    if mod is None or (modname != _MAIN_ALIAS and getattr(mod, "__spec__", None) is None):
        return False  # not an importable module
    obj: object = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is f


# Main script path -> whether it is guarded, read once per path: a receiver
# loads its copy of the main script once too (`_load_main`), so an edit of the
# file while the program runs is seen by neither (a `stat` per crossing cost
# ~1 us of every call of a main-script function).
_guard_cache: dict[str, bool] = {}


def _main_is_guarded() -> bool:
    """Whether the main script has a file and an ``if __name__ ==
    "__main__":`` block at its top level (so loading it elsewhere is safe)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str):
        return False  # -c, the REPL, an embedding
    hit = _guard_cache.get(path)
    if hit is not None:
        return hit
    import ast  # here, not at module level: every interpreter imports this module

    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        guarded = False
    else:
        guarded = any(isinstance(node, ast.If) and _is_main_test(node.test) for node in tree.body)
    _guard_cache[path] = guarded
    return guarded


def _is_main_test(test: ast.expr) -> bool:
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


# --- the sender's main script in a receiver --------------------------------

_main_copies: dict[str, types.ModuleType] = {}


def _load_main(ref: str) -> types.ModuleType:
    if ref.startswith(_MODULE_PREFIX):
        return _import_module(ref[len(_MODULE_PREFIX) :])
    mod = _main_copies.get(ref)
    if mod is not None:
        return mod
    mod = types.ModuleType(_MAIN_ALIAS)
    mod.__file__ = ref
    with open(ref, "rb") as f:
        code = compile(f.read(), ref, "exec")
    # In sys.modules so that its objects can be pickled (by reference) again.
    sys.modules[_MAIN_ALIAS] = mod
    try:
        exec(code, mod.__dict__)  # noqa: S102 - the sender's own main script, as the stdlib does
    except BaseException:
        del sys.modules[_MAIN_ALIAS]
        raise
    _main_copies[ref] = mod
    return mod


class _MainUnpickler(pickle.Unpickler):
    """Resolves a name of ``__main__`` in this interpreter's own ``__main__``
    where it is defined, else in the sender's main script (loaded here as
    ``<fake __main__>``, or imported by name for ``-m``), and ``<fake __main__>``
    (an object made from such a copy) back to this interpreter's own
    ``__main__``."""

    def __init__(self, file: io.BytesIO, main_file: str | None) -> None:
        super().__init__(file)
        self._main_file = main_file
        self.names = 0  # names looked up so far
        # (name, main copy, object) when the first name was resolved in the
        # sender's main script (see `_xiload._main_names`).
        self.first_in_copy: tuple[str, types.ModuleType, object] | None = None

    def find_class(self, module: str, name: str) -> object:
        self.names += 1
        base: object
        if module == "__main__" and self._main_file is not None:
            own = _lookup(sys.modules.get("__main__"), name)
            if own is not _MISSING:
                return own
            base = _load_main(self._main_file)
        elif module == _MAIN_ALIAS and _MAIN_ALIAS not in sys.modules:
            base = sys.modules["__main__"]
        else:
            return super().find_class(module, name)
        obj = base
        for part in name.split("."):
            obj = getattr(obj, part)
        if self.names == 1 and module == "__main__":
            self.first_in_copy = (name, base, obj)
        return obj


def excinfo(exc: BaseException) -> tuple[str, str, str, str, str, str]:
    t = type(exc)
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - any __str__ may fail; describe the exception anyway
        msg = "<exception str() failed>"
    try:
        import traceback  # here: most interpreters never format an exception

        formatted = "".join(traceback.format_exception(exc))
        errdisplay = "".join(traceback.format_exception_only(exc)).rstrip()
    except Exception:  # noqa: BLE001 - same: a broken exception still gets a summary
        formatted = errdisplay = f"{t.__name__}: {msg}"
    return (t.__name__, t.__qualname__, str(t.__module__), msg, formatted, errdisplay)


# Exceptions crossing back from a shared object's owner (crossinterp.share).
# The owner calls ``proxy_exc``; the caller re-raises with ``proxy_raise``.

_CONTROL_FLOW = (StopIteration, StopAsyncIteration, GeneratorExit)


def _is_builtin_exc(t: type) -> bool:
    import builtins

    return getattr(builtins, t.__name__, None) is t


def proxy_exc(
    exc: BaseException,
) -> tuple[str | None, tuple[Any, ...] | None, tuple[str, str, str, str, str, str] | None]:
    """(builtin type name | None, args if natively shareable | None,
    excinfo | None) for an exception raised in the owner."""
    from . import _native

    t = type(exc)
    name = t.__name__ if _is_builtin_exc(t) else None
    args = None
    if name is not None:
        try:
            if all(_native.is_shareable(a) for a in exc.args):
                args = tuple(exc.args)
        except Exception:  # noqa: BLE001 - unshareable args: fall back to the message
            args = None
    info = None if isinstance(exc, _CONTROL_FLOW) else excinfo(exc)
    if name is not None and args is None and info is None:
        info = (t.__name__, t.__qualname__, "builtins", "", "", t.__name__)
    return (name, args, info)


def proxy_raise(owner: int, transfer: tuple[Any, ...] | None) -> None:
    """Raise, in the caller, the exception the owner described."""
    from ._errors import ExceptionInfo, ExecutionFailed

    if transfer is None:
        raise SystemError(f"an exception in interpreter {owner} could not be described")
    name, args, info = transfer
    if name is not None:
        import builtins

        cls = getattr(builtins, name)
        try:
            exc = cls(*args) if args is not None else cls(info[3])
        except Exception:  # noqa: BLE001 - a builtin that wants other arguments
            exc = None
        if exc is not None:
            if info is not None and info[4]:
                exc.add_note(f"[raised in interpreter {owner}; its traceback follows]\n{info[4].rstrip()}")
            raise exc
    raise ExecutionFailed(ExceptionInfo.from_tuple(info))
