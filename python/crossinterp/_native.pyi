"""The native core of crossinterp (``crossinterp._native``).

Low-level: the public API is ``crossinterp`` and ``crossinterp.interpreters``.
Interpreter ids are CPython's. Excinfo tuples are
``(type_name, type_qualname, type_module, msg, formatted, errdisplay)``.
"""

from collections.abc import Callable
from typing import Any

type ExcInfoTuple = tuple[str, str, str, str, str, str]

def create() -> int:
    """Create an interpreter with its own GIL; returns its id."""

def destroy(id: int, /) -> None:
    """Close an interpreter made by ``create()``. Raises InterpreterError if it
    is running, current or not ours; InterpreterNotFoundError if gone."""

def list_all() -> list[tuple[int, str]]:
    """``(id, whence)`` of every live owner interpreter."""

def get_current() -> tuple[int, str]:
    """``(id, whence)`` of the current interpreter."""

def get_main() -> tuple[int, str]:
    """``(id, whence)`` of the main interpreter."""

def whence(id: int, /) -> str:
    """How interpreter ``id`` was created; InterpreterNotFoundError if gone."""

def is_running(id: int, /) -> bool:
    """Whether interpreter ``id`` runs code for crossinterp now."""

def exec(id: int, code: str | Callable[[], object], /) -> ExcInfoTuple | None:
    """Run code in the interpreter's ``__main__``; the excinfo on failure."""

def call(
    id: int, callable: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None, /
) -> tuple[Any, ExcInfoTuple | None]:
    """Call in the interpreter: ``(result, None)`` or ``(None, excinfo)``."""

def set_main_attrs(id: int, items: dict[str, Any], /) -> ExcInfoTuple | None:
    """Bind names in the interpreter's ``__main__``."""

def is_shareable(obj: object, /) -> bool:
    """Whether ``obj`` crosses interpreters natively (no pickle)."""

def live_owners() -> int:
    """Number of registered, not yet finalized owners."""

def set_finalize_warn_after(seconds: float, /) -> float:
    """Set the finalization warning interval; returns the old one."""

def _testing_hold_guard(id: int, seconds: float, /) -> None:
    """Testing: a native thread holds a guard on ``id`` for ``seconds``."""

def _testing_push_pending(id: int, source: str, /) -> None:
    """Testing: queue a pending call that runs ``source`` in ``id``'s ``__main__``."""
