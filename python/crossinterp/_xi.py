"""Python-side helpers of the cross-interpreter data layer (called by the
native module; not public API).

Pickles carry the sender's ``__main__`` file name so that a function or class
defined in the sender's main script can be found by the receiver: there the
script is loaded once as the module ``__mp_main__`` (its
``if __name__ == "__main__":`` block does not run), as multiprocessing's spawn
method does.
"""

from __future__ import annotations

import io
import pickle
import sys
import traceback
import types

_MAIN_ALIAS = "__mp_main__"


def dumps(obj: object) -> tuple[bytes, str | None]:
    data = pickle.dumps(obj, protocol=5)
    main_file = None
    if b"__main__" in data:
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
    return data, main_file


def loads(data: bytes, main_file: str | None) -> object:
    try:
        return pickle.loads(data)
    except (AttributeError, ImportError):
        if main_file is None and _MAIN_ALIAS.encode() not in data:
            raise
    return _MainUnpickler(io.BytesIO(data), main_file).load()


def _load_main(path: str) -> types.ModuleType:
    mod = sys.modules.get(_MAIN_ALIAS)
    if mod is not None and getattr(mod, "__file__", None) == path:
        return mod
    mod = types.ModuleType(_MAIN_ALIAS)
    mod.__file__ = path
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    sys.modules[_MAIN_ALIAS] = mod
    try:
        exec(code, mod.__dict__)  # noqa: S102 - the sender's own main script, as spawn does
    except BaseException:
        del sys.modules[_MAIN_ALIAS]
        raise
    return mod


class _MainUnpickler(pickle.Unpickler):
    """Resolves ``__main__`` to the sender's main script (loaded here as
    ``__mp_main__``) and ``__mp_main__`` (an object made from such a copy) back
    to this interpreter's own ``__main__``."""

    def __init__(self, file: io.BytesIO, main_file: str | None) -> None:
        super().__init__(file)
        self._main_file = main_file

    def find_class(self, module: str, name: str) -> object:
        obj: object
        if module == "__main__" and self._main_file is not None:
            obj = _load_main(self._main_file)
        elif module == _MAIN_ALIAS and _MAIN_ALIAS not in sys.modules:
            obj = sys.modules["__main__"]
        else:
            return super().find_class(module, name)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj


def excinfo(exc: BaseException) -> tuple[str, str, str, str, str, str]:
    t = type(exc)
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - any __str__ may fail; describe the exception anyway
        msg = "<exception str() failed>"
    try:
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


def proxy_exc(exc: BaseException) -> tuple[str | None, tuple | None, tuple | None]:
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


def proxy_raise(owner: int, transfer: tuple | None) -> None:
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
