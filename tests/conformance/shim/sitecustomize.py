"""Import shim of the conformance runner (tests/conformance/run.py).

Put on ``PYTHONPATH`` of the child processes only; ``site`` imports it in the
main interpreter and in every subinterpreter (each has its own ``sys.modules``,
so each needs the shim). Driven by two environment variables:

- ``CROSSINTERP_CONFORMANCE_TESTPATH``: directories appended to the ``test``
  package's ``__path__`` (the test files of Debian's ``libpythonX.Y-testsuite``
  live outside the stdlib's ``test`` package, which holds ``test.support``).
- ``CROSSINTERP_CONFORMANCE_SHIM=executor``: ``concurrent.futures.InterpreterPoolExecutor``
  is crossinterp's (``concurrent.interpreters`` stays the stdlib's).
- ``CROSSINTERP_CONFORMANCE_SHIM=1``: route ``concurrent.interpreters`` to
  ``crossinterp.interpreters`` and ``concurrent.interpreters._queues`` to
  ``crossinterp.queues``. ``concurrent.interpreters._crossinterp`` (the
  low-level unbound-item flags the tests pass to ``_interpqueues``) stays the
  stdlib's, loaded from its file. ``_interpreters``, ``_interpqueues`` and
  ``_interpchannels`` are never touched.
"""

import importlib
import importlib.machinery
import os
import sys


def _extend_test_path() -> None:
    extra = os.environ.get("CROSSINTERP_CONFORMANCE_TESTPATH")
    if not extra:
        return
    import test

    for d in extra.split(os.pathsep):
        if d and d not in test.__path__:
            test.__path__.append(d)


class _RouteLoader:
    """Gives the already-imported crossinterp module for the routed name."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        mod = importlib.import_module(self.target)
        self._spec = getattr(mod, "__spec__", None)
        return mod

    def exec_module(self, module) -> None:
        # The import system stamped the routed name's spec on crossinterp's
        # module; give it back its own (its __path__, needed for the
        # submodule imports, stays).
        module.__spec__ = self._spec


class _Same:
    def __init__(self, mod) -> None:
        self.mod = mod

    def create_module(self, spec):
        self._spec = self.mod.__spec__
        return self.mod

    def exec_module(self, module) -> None:
        module.__spec__ = self._spec


_ROUTES = {
    "concurrent.interpreters": "crossinterp.interpreters",
    "concurrent.interpreters._queues": "crossinterp.queues",
    # `from concurrent.interpreters import _queues` asks for the submodule
    # by the module's own __name__
    "crossinterp.interpreters._queues": "crossinterp.queues",
}
_STDLIB = ("concurrent.interpreters._crossinterp", "crossinterp.interpreters._crossinterp")


class _Finder:
    """The meta path finder of the routed names."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in _ROUTES:
            return importlib.machinery.ModuleSpec(
                name, _RouteLoader(_ROUTES[name]), is_package=True
            )
        if name in _STDLIB:
            import concurrent

            std = [os.path.join(os.path.dirname(concurrent.__file__), "interpreters")]
            spec = importlib.machinery.PathFinder.find_spec(
                "concurrent.interpreters._crossinterp", std
            )
            if spec is not None and name != spec.name:
                # one module object under both names
                mod = importlib.import_module(spec.name)
                return importlib.machinery.ModuleSpec(name, _Same(mod))
            return spec
        return None


def _wrap_futures_getattr(cf) -> None:
    std_getattr = getattr(cf, "__getattr__", None)
    if std_getattr is None:
        # 3.15: `lazy from .interpreter import InterpreterPoolExecutor` (PEP
        # 810), bound only where the stdlib has _interpreters; replace the binding.
        if "InterpreterPoolExecutor" in vars(cf):
            from crossinterp.futures import InterpreterPoolExecutor

            cf.InterpreterPoolExecutor = InterpreterPoolExecutor
        return

    def __getattr__(name):
        if name != "InterpreterPoolExecutor":
            return std_getattr(name)
        if sys.version_info >= (3, 14):
            std_getattr(name)  # the stdlib's rules first (no _interpreters: AttributeError)
        else:  # 3.13 has no executor of its own; the same rule
            try:
                import _interpreters  # noqa: F401
            except ImportError:
                raise AttributeError(name) from None
        from crossinterp.futures import InterpreterPoolExecutor

        return InterpreterPoolExecutor

    cf.__getattr__ = __getattr__


class _FuturesLoader:
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _wrap_futures_getattr(module)


class _FuturesFinder:
    """``executor`` mode: ``concurrent.futures.InterpreterPoolExecutor`` is
    crossinterp's. The package is the stdlib's, imported when the program
    imports it (not here: it decides at import whether ``_interpreters``
    exists); its lazy ``__getattr__`` is wrapped, so the stdlib's rules still
    apply and crossinterp is imported only when the name is used."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "concurrent.futures.interpreter" and sys.version_info < (3, 14):
            # 3.13: no such stdlib module; the tests import BrokenInterpreterPool from it
            return importlib.machinery.ModuleSpec(name, _RouteLoader("crossinterp.futures"))
        if name != "concurrent.futures":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _FuturesLoader(spec.loader)
        return spec


_extend_test_path()
if os.environ.get("CROSSINTERP_CONFORMANCE_SHIM") == "1":
    sys.meta_path.insert(0, _Finder)
elif os.environ.get("CROSSINTERP_CONFORMANCE_SHIM") == "executor":
    sys.meta_path.insert(0, _FuturesFinder)
    if sys.version_info < (3, 14):  # 3.13: no concurrent.interpreters of its own
        sys.meta_path.insert(0, _Finder)
