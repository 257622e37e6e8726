"""Types that check: mypy --strict and pyright (strict) accept usage.py (every
documented API) and reject exactly the marked lines of misuse.py; the package
itself passes mypy --strict; mypy.stubtest finds the stubs and inline
annotations equal to the runtime (with tests/typing/stubtest_allowlist.txt).

The checkers are pinned in the Makefile's `tools` target and installed into
$CROSSINTERP_CACHE/tools/typing-3.14 (mypy is compiled per Python version, so
they run on the 3.14 build): the checker tests run there and are skipped, with
that reason, on the other builds (usage.py itself runs on every build). On
3.14 a missing install is a failure.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = pathlib.Path(os.environ.get("CROSSINTERP_CACHE") or pathlib.Path.home() / ".cache" / "crossinterp")
TOOLS = CACHE / "tools" / "typing-3.14"
MARK = re.compile(r"#\s*expect-error\s*$")

needs_checkers = pytest.mark.skipif(
    sys.version_info[:2] != (3, 14),
    reason="the type checkers run on the 3.14 build only (make tools installs them for it)",
)


def run(args: list[str], cwd: pathlib.Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    if not (TOOLS / "mypy").is_dir() or not (TOOLS / "basedpyright").is_dir():
        pytest.fail(f"type checkers not installed in {TOOLS}: run `make tools`")
    env = dict(os.environ)
    # scripts/py's PYTHONPATH (the staged crossinterp, for stubtest), then the tools.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(TOOLS)) if p)
    env["MYPYPATH"] = str(ROOT / "python")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def mypy(*files: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return run(
        ["-m", "mypy", "--strict", "--no-error-summary", "--no-color-output",
         "--cache-dir", str(TOOLS / ".mypy-cache"), *extra, *files]
    )


def pyright(*files: str) -> subprocess.CompletedProcess[str]:
    return run(["-m", "basedpyright", "--pythonpath", sys.executable, *files], cwd=HERE)


def reported_lines(output: str, name: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(rf"{re.escape(name)}:(\d+)(?::\d+)?", output)}


def marked_lines(path: pathlib.Path) -> set[int]:
    return {i for i, line in enumerate(path.read_text().splitlines(), 1) if MARK.search(line)}


def test_usage_runs() -> None:
    # What the checkers accept must also work: usage.py is a real program.
    p = subprocess.run(
        [sys.executable, str(HERE / "usage.py")], capture_output=True, text=True, timeout=300, check=False
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "usage: ok" in p.stdout


@needs_checkers
def test_mypy_strict_accepts_usage() -> None:
    p = mypy("tests/typing/usage.py")
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout + p.stderr


@needs_checkers
def test_pyright_strict_accepts_usage() -> None:
    p = pyright("usage.py")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 errors, 0 warnings" in p.stdout, p.stdout


@needs_checkers
def test_mypy_rejects_exactly_the_marked_misuses() -> None:
    marked = marked_lines(HERE / "misuse.py")
    assert len(marked) >= 20
    p = mypy("tests/typing/misuse.py")
    assert p.returncode == 1, p.stdout + p.stderr
    assert reported_lines(p.stdout, "misuse.py") == marked, p.stdout


@needs_checkers
def test_pyright_rejects_exactly_the_marked_misuses() -> None:
    marked = marked_lines(HERE / "misuse.py")
    p = pyright("misuse.py")
    assert p.returncode == 1, p.stdout + p.stderr
    assert reported_lines(p.stdout, "misuse.py") == marked, p.stdout


@needs_checkers
@pytest.mark.parametrize("version", ["3.13", "3.14", "3.15"])
def test_package_passes_mypy_strict(version: str) -> None:
    p = mypy("python/crossinterp", extra=("--python-version", version))
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout + p.stderr


def stubtest(*extra: str) -> subprocess.CompletedProcess[str]:
    # pyproject.toml's [tool.mypy] (the optional Dask imports), as mypy reads it.
    return run(
        ["-m", "mypy.stubtest", "crossinterp", "--concise",
         "--mypy-config-file", str(ROOT / "pyproject.toml"), *extra]
    )


@needs_checkers
def test_stubtest_passes_with_the_allowlist() -> None:
    p = stubtest("--allowlist", str(HERE / "stubtest_allowlist.txt"))
    assert p.returncode == 0, p.stdout + p.stderr


@needs_checkers
def test_stubtest_allowlist_has_no_stale_entry() -> None:
    # Every entry is still needed: without the allowlist each one is reported.
    p = stubtest()
    assert p.returncode == 1
    entries = [
        line for line in (HERE / "stubtest_allowlist.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for entry in entries:
        assert re.search(rf"^{entry}\b", p.stdout, re.MULTILINE), f"allowlist entry {entry!r} unused:\n{p.stdout}"
