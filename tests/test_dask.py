"""Dask on crossinterp (tests/dask_cases/): the interpreter pool as Dask's
local scheduler, and distributed workers running their tasks in crossinterp
interpreters. Each case runs in its own process with Dask and distributed
(pinned, installed by scripts/test_deps) on its path."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "dask_cases"


def _build() -> str:
    v = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return v + "t"
    if hasattr(sys, "gettotalrefcount"):
        return v + "d"
    return v


@pytest.fixture(scope="module")
def deps() -> str:
    r = subprocess.run([str(ROOT / "scripts" / "test_deps"), _build()], capture_output=True,
                       text=True, check=False)
    if r.returncode == 3:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("case", ["local.py", "distributed_cluster.py"])
def test_dask(case, deps, tmp_path):
    path = os.pathsep.join([deps, *(p for p in sys.path if p)])
    env = dict(os.environ, PYTHONPATH=path, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    r = subprocess.run([sys.executable, "-X", "faulthandler", str(CASES / case)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), f"{r.stdout}\n{r.stderr[-4000:]}"


def _guide_blocks() -> list[str]:
    import re

    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide.split("## Dask: the pool as a scheduler", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.parametrize("index", [0, 1])
def test_guide_dask_examples(index, deps, tmp_path):
    """docs/guide.md's Dask blocks run (and print what they say)."""
    import re

    code = _guide_blocks()[index]
    script = tmp_path / "example.py"
    script.write_text(code)
    path = os.pathsep.join([deps, *(p for p in sys.path if p)])
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=path),
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-4000:]
    wants = re.findall(r"print\(.*\)\s+#\s*(\S+)", code)
    assert wants and r.stdout.split() == wants, (r.stdout, wants)
