"""The guide's numpy example (docs/guide.md, "numpy and `SharedBuffer`") runs,
and numpy indeed refuses subinterpreters. numpy is installed by
scripts/provision into $CROSSINTERP_CACHE/testlib/VERSION for the builds PyPI
has wheels for; elsewhere these tests are skipped with provisioning's reason."""

import os
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("CROSSINTERP_CACHE") or pathlib.Path.home() / ".cache" / "crossinterp")
BUILD = (
    f"{sys.version_info.major}.{sys.version_info.minor}"
    + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    + ("d" if hasattr(sys, "gettotalrefcount") else "")
)
TESTLIB = CACHE / "testlib" / BUILD


def numpy_path() -> pathlib.Path:
    stamp = TESTLIB / "stamp"
    if not stamp.is_file():
        pytest.fail(f"{stamp} missing: run scripts/provision {BUILD}")
    status = stamp.read_text().splitlines()[1]
    if not status.startswith("numpy "):
        pytest.skip(f"no numpy wheel for {BUILD}: {status}")
    return TESTLIB / "lib"


def run(path: pathlib.Path, lib: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*(p for p in sys.path if p), str(lib)])
    return subprocess.run(
        [sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def guide_example() -> str:
    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide.split("### numpy and `SharedBuffer`", 1)[1]
    m = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert m, "no python block in the guide's numpy section"
    return m.group(1)


def test_guide_numpy_example_runs(tmp_path):
    lib = numpy_path()
    script = tmp_path / "numpy_example.py"
    script.write_text(guide_example())
    r = run(script, lib)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["sum", str(sum(range(100_000)) * 0.5)]


def test_numpy_refuses_subinterpreters(tmp_path):
    lib = numpy_path()
    script = tmp_path / "refuse.py"
    script.write_text(
        "from crossinterp import interpreters\n"
        "interp = interpreters.create()\n"
        "try:\n"
        "    interp.exec('import numpy')\n"
        "except interpreters.ExecutionFailed as e:\n"
        "    print(e.excinfo.type.__name__, 'subinterpreters' in e.excinfo.msg)\n"
    )
    r = run(script, lib)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["ImportError", "True"]
