"""Every native function and method has a text signature `inspect` can read.

The class layer (`ffi::class`) writes each method's `__text_signature__` as
`name($self, ...)` and each module function's as `name($module, ...)`, so
`inspect.signature` works on all of them, with `self` bound away on instances.
"""

import inspect

import pytest

from crossinterp import _native


def native_callables():
    """(qualified name, object) of every builtin function and method
    descriptor of `_native` and its classes (slot wrappers excluded: CPython
    gives those their own signatures)."""
    out = []
    for name, obj in sorted(vars(_native).items()):
        if inspect.isbuiltin(obj):
            out.append((name, obj, False))
        elif isinstance(obj, type):
            for mname, m in sorted(vars(obj).items()):
                kind = type(m).__name__
                if kind in ("method_descriptor", "classmethod_descriptor"):
                    # Class methods come back bound to the class.
                    out.append((f"{name}.{mname}", getattr(obj, mname), kind == "method_descriptor"))
    return out


CALLABLES = native_callables()


def test_there_are_native_callables():
    # The module's functions and the classes' methods were all found.
    names = {n for n, _, _ in CALLABLES}
    assert {"create", "share", "QueueBase.put", "AtomicInt.inc", "AtomicInt.compare_and_set"} <= names


@pytest.mark.parametrize(("name", "obj", "unbound"), CALLABLES, ids=[n for n, _, _ in CALLABLES])
def test_signature(name, obj, unbound):
    sig = inspect.signature(obj)
    params = list(sig.parameters)
    if unbound:
        # An unbound method: `self` comes first.
        assert params and params[0] == "self", (name, str(sig))
    else:
        assert "self" not in params, (name, str(sig))


def test_bound_method_signature_drops_self():
    a = _native.AtomicInt(1)
    assert str(inspect.signature(a.compare_and_set)) == "(expected, new, /)"
    assert str(inspect.signature(a.add)) == "(n=1, /)"
    assert str(inspect.signature(_native.AtomicInt.inc)) == "(self, /)"


def test_keyword_method_signature():
    sig = inspect.signature(_native.QueueBase.put)
    assert list(sig.parameters) == ["self", "obj", "block", "timeout", "unbounditems", "strict"]
    assert sig.parameters["strict"].kind is inspect.Parameter.KEYWORD_ONLY


def test_module_function_signature():
    assert str(inspect.signature(_native.call)) == "(id, callable, args, kwargs, /)"
    assert str(inspect.signature(_native.create)) == "(site, /)"
