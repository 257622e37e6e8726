"""What every benchmark prints with its figures: the CPU model and the
commit under test (machines differ; a figure without both means little)."""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def commit(path: str | None = None) -> str:
    """The short commit of the checkout that holds ``path`` (default: the
    crossinterp package under test), with "+ uncommitted changes" when the
    work tree differs from it."""
    if path is None:
        import crossinterp

        path = os.path.dirname(os.path.realpath(crossinterp.__file__))

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", path, *args], capture_output=True, text=True,
                              timeout=30, check=False)

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode != 0:
            return "unknown"
        out = rev.stdout.strip()
        if git("diff", "--quiet", "HEAD").returncode != 0:
            out += " + uncommitted changes"
        return out
    except (OSError, subprocess.SubprocessError):
        return "unknown"
