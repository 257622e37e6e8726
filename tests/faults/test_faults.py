"""The fault suite (issue 11): every case in its own process, a table at the
end, failing on any CRASH, HANG or LOST."""

from __future__ import annotations

from . import cases_asyncio, cases_badinput, cases_data, cases_exit, cases_fork, cases_lifecycle
from .framework import bad, run_all, table

ALL = cases_exit.CASES + cases_fork.CASES + cases_badinput.CASES + cases_lifecycle.CASES + cases_data.CASES
ALL += cases_asyncio.CASES


def test_fault_suite(capsys):
    results = run_all(ALL)
    report = table(results)
    with capsys.disabled():
        print("\n" + report)
    failed = bad(results)
    assert not failed, report
