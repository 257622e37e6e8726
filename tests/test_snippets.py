"""Every ``python`` code block of the README and the docs runs, as a script
of its own, on the build pytest runs on: no snippet rots.

A block runs in a fresh process (from an empty directory, so files it writes
go nowhere) and must exit 0 within the timeout; where it says what it prints
(a ``# 1024``-style comment showing a value on a ``print(...)`` line), the
output is checked too. A block preceded by ``<!-- snippet: needs MODULE -->`` is skipped, with
the reason, when MODULE does not import on this build; one preceded by
``<!-- snippet: tested in tests/FILE.py -->`` is run by that test (which must
exist and name the page) instead; one preceded by ``<!-- snippet: aborts on
BUILD -->`` reproduces a CPython crash of that build: skipped there, run (and
must succeed) on every other build.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = ["README.md", "docs/index.md", "docs/guide.md"]
BLOCK = re.compile(
    r"(?:[ ]*<!-- snippet: (?:needs (?P<needs>[\w.]+)|tested in (?P<elsewhere>[\w./]+)"
    r"|aborts on (?P<aborts>[\w.]+)) -->\n)?"
    r"[ ]*```python\n(?P<code>.*?)```",
    re.DOTALL,
)


def _blocks():
    for name in FILES:
        text = (ROOT / name).read_text()
        for m in BLOCK.finditer(text):
            if m.group("elsewhere"):
                # Run by a test of its own (which sets up what it needs).
                other = ROOT / m.group("elsewhere")
                assert other.is_file() and name in other.read_text(), (name, other)
                continue
            line = text.count("\n", 0, m.start("code")) + 1
            code = textwrap.dedent(m.group("code"))  # a block inside a list item
            yield pytest.param(code, m.group("needs"), m.group("aborts"), id=f"{name}:{line}")


def _expected(code: str) -> list[str]:
    """What the block says its print() lines show: ``print(x)  # 1024``
    expects a line starting with ``1024`` (the comment up to ``:``/``;``)."""
    out = []
    for line in code.splitlines():
        m = re.match(r"\s*print\(.*\)\s+#\s*(.+)$", line)
        if m:
            want = re.split(r"[:;]\s", m.group(1))[0].strip()
            # Only comments that show a value (a number, a literal, a
            # container, True/False/None), not ones that explain.
            if re.match(r"""(-?\d|[\[({'"]|b'|b"|True\b|False\b|None\b)""", want):
                out.append(want)
    return out


def _build() -> str:
    v = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return v + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")


@pytest.mark.parametrize(("code", "needs", "aborts"), list(_blocks()))
def test_snippet_runs(code, needs, aborts, tmp_path):
    if needs and importlib.util.find_spec(needs) is None:
        pytest.skip(f"needs {needs}, which is not installed for this build")
    if aborts == _build():
        # A reproducer of a CPython bug on that build (the guide says so): it
        # may abort the process there; crossinterp's workaround is tested by
        # the fault cases it names. Everywhere else it must run cleanly.
        pytest.skip(f"reproduces a CPython {aborts} crash (the process may abort)")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-X", "faulthandler", str(script)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    for want in _expected(code):
        assert any(ln.startswith(want) for ln in lines), (
            f"the block says it prints {want!r}; it printed:\n{r.stdout}"
        )
