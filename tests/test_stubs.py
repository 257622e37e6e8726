"""The .pyi stubs are the API reference: they must match the module."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_checker():
    spec = importlib.util.spec_from_file_location("check_stubs", ROOT / "scripts" / "check_stubs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_native_stub_matches_module():
    checker = load_checker()
    assert checker.check(ROOT / "python" / "crossinterp" / "_native.pyi", "crossinterp._native") == []


def test_stub_checker_catches_a_missing_name(tmp_path):
    checker = load_checker()
    stub = tmp_path / "fake.pyi"
    stub.write_text("def create() -> int: ...\ndef no_such_function() -> None: ...\n")
    problems = checker.check(stub, "crossinterp._native")
    assert any("no_such_function" in p for p in problems)
    assert any("exported at run time, missing in the stub" in p for p in problems)
