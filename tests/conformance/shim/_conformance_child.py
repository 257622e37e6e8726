"""One child process of the conformance runner: lists or runs unittest ids.

    python -m _conformance_child list OUT MODULE...
    python -m _conformance_child run OUT TIMEOUT ID...

Writes one JSON object per line to OUT. In ``run`` mode a per-test watchdog
(faulthandler.dump_traceback_later(exit=True)) dumps every thread's traceback
to stderr and ends the process when one test runs longer than TIMEOUT seconds;
the runner reports that test as hung with the dump.

This module is the child's ``__main__``: crossinterp may re-run it in a
subinterpreter (as ``__mp_main__``) to unpickle a function of ``__main__``, so
its top level imports only modules every interpreter can load (faulthandler,
a single-phase-init module, is imported where it is used).
"""

import json
import sys
import time
import unittest
from typing import ClassVar


def _ids(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _ids(t)
        else:
            yield t.id(), type(t).__name__


def _list(out, modules):
    loader = unittest.TestLoader()
    for mod in modules:
        try:
            suite = loader.loadTestsFromName(mod)
        except Exception as e:  # noqa: BLE001 -- an import error of the file: report, go on
            out.write(json.dumps({"module": mod, "error": f"{type(e).__name__}: {e}"}) + "\n")
            continue
        for tid, kind in _ids(suite):
            # unittest's stand-ins for an import failure or a module-level skip
            out.write(json.dumps({"module": mod, "id": tid, "kind": kind}) + "\n")


class _Result(unittest.TestResult):
    RANK: ClassVar[dict[str, int]] = {"pass": 0, "skip": 1, "xfail": 1, "xpass": 2, "fail": 3, "error": 4}

    def __init__(self, out, timeout):
        super().__init__()
        self.out, self.timeout = out, timeout
        self.cur = None
        import faulthandler

        self.fh = faulthandler

    def _emit(self, **rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def _note(self, test, status, detail=""):
        if getattr(test, "test_case", None) is not None:  # a subTest's outcome
            if status == "skip":
                return
            test = test.test_case
        if self.cur is None or self.cur["id"] != test.id():
            # a class/module fixture (setUpClass, tearDownModule, ...)
            self._emit(id=test.id(), status=status, detail=detail, fixture=True)
            return
        if self.RANK[status] >= self.RANK[self.cur["status"]]:
            self.cur["status"] = status
        if detail:
            self.cur["detail"] += detail

    def startTest(self, test):
        super().startTest(test)
        self.cur = {"id": test.id(), "status": "pass", "detail": "", "t0": time.monotonic()}
        self._emit(event="start", id=test.id())
        self.fh.dump_traceback_later(self.timeout, exit=True, file=sys.stderr)

    def stopTest(self, test):
        self.fh.cancel_dump_traceback_later()
        super().stopTest(test)
        cur, self.cur = self.cur, None
        if cur is None:
            return
        if not cur.get("got"):
            cur["status"] = max(cur["status"], "fail", key=self.RANK.get)
        self._emit(id=cur["id"], status=cur["status"], detail=cur["detail"],
                   time=round(time.monotonic() - cur["t0"], 3))

    # outcomes
    def _got(self):
        if self.cur is not None:
            self.cur["got"] = True

    def addSuccess(self, test):
        super().addSuccess(test)
        self._got()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._got()
        self._note(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._got()
        self._note(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._got()
        self._note(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._got()
        self._note(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._got()
        self._note(test, "xpass")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._note(test, kind, f"[subtest {subtest._subDescription()}]\n"
                       + self._exc_info_to_string(err, test))


def _run(out, timeout, ids):
    suite = unittest.TestLoader().loadTestsFromNames(ids)
    suite(_Result(out, timeout))


def main():
    mode, out_path = sys.argv[1], sys.argv[2]
    with open(out_path, "a", buffering=1) as out:
        if mode == "list":
            _list(out, sys.argv[3:])
        else:
            _run(out, float(sys.argv[3]), sys.argv[4:])


if __name__ == "__main__":
    main()
