"""interpreters.create(site=False): a new interpreter without the ``site``
import (crossinterp's fast path), and the stdlib-compatible default."""

import sys
import threading

import pytest

from crossinterp import interpreters
from crossinterp.futures import InterpreterPoolExecutor


def site_state():
    """In the target: whether ``site`` was imported, sys.flags.no_site, and
    whether site's builtins exist."""
    import builtins

    return ("site" in sys.modules, sys.flags.no_site, hasattr(builtins, "exit"))


def import_probe(name):
    mod = __import__(name)
    return mod.VALUE


def queue_round_trip(q):
    item = q.get(timeout=60)
    q.put(item * 2)
    return item


def main_value(name):
    return getattr(sys.modules["__main__"], name)


def test_default_runs_site():
    with interpreters.create() as it:
        assert it.call(site_state) == (True, 0, True)


def test_site_false_skips_site():
    with interpreters.create(site=False) as it:
        assert it.call(site_state) == (False, 1, False)
        assert it.whence == "_interpreters module"


def test_site_true_is_the_default():
    with interpreters.create(site=True) as it:
        assert it.call(site_state) == (True, 0, True)


def test_creator_config_is_restored():
    """The creator's config is only borrowed: afterwards its own flags and
    interpreters made by anyone else run site again."""
    import _interpreters

    before = sys.flags
    interpreters.create(site=False).close()
    assert sys.flags == before
    with interpreters.create() as it:
        assert it.call(site_state)[0] is True
    iid = _interpreters.create("isolated")
    try:
        _interpreters.run_string(
            iid, "import sys; assert 'site' in sys.modules, sorted(sys.modules)"
        )
    finally:
        _interpreters.destroy(iid)


def test_fast_interpreter_imports_from_creators_path(tmp_path, monkeypatch):
    (tmp_path / "xi_site_probe_mod.py").write_text("VALUE = 'from the creator path'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with interpreters.create(site=False) as it:
        assert it.call(import_probe, "xi_site_probe_mod") == "from the creator path"


def test_fast_interpreter_calls_queues_prepare_main():
    with interpreters.create(site=False) as it:
        assert it.call(pow, 2, 10) == 1024
        it.prepare_main(answer=42, name="x")
        it.exec("doubled = answer * 2")
        assert it.call(main_value, "doubled") == 84
        q = interpreters.create_queue()
        q.put(21)
        assert it.call(queue_round_trip, q) == 21
        assert q.get(timeout=60) == 42
        with pytest.raises(interpreters.ExecutionFailed, match="ZeroDivisionError"):
            it.exec("1 / 0")


def test_concurrent_fast_creations_restore_the_flag():
    results = []

    def worker():
        # An exception here leaves its results missing (checked below).
        for _ in range(3):
            with interpreters.create(site=False) as it:
                results.append(it.call(site_state)[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == [False] * 12
    with interpreters.create() as it:
        assert it.call(site_state) == (True, 0, True)


def test_created_from_a_subinterpreter():
    """A creation from a subinterpreter borrows that interpreter's config."""
    with interpreters.create() as outer:
        outer.exec(
            "from crossinterp import interpreters as I\n"
            "with I.create(site=False) as it:\n"
            "    it.exec('import sys; assert \"site\" not in sys.modules')\n"
            "with I.create() as it:\n"
            "    it.exec('import sys; assert \"site\" in sys.modules')\n"
        )


def test_executor_workers_run_site():
    """The pool's workers stay stdlib-like (a sitecustomize runs there: CPython's
    executor tests rely on it), so they are not made with site=False."""
    with InterpreterPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(lambda _: site_state()[0], range(4))) == [True] * 4


class BadBool:
    def __bool__(self):
        raise ZeroDivisionError("no truth")


def test_site_bad_input():
    with pytest.raises(ZeroDivisionError, match="no truth"):
        interpreters.create(site=BadBool())
    with pytest.raises(TypeError):
        interpreters.create(False)  # type: ignore[misc]  # keyword-only


def test_fast_creation_leaves_no_thread_behind():
    """On the main thread the creation runs on a helper thread, joined."""
    before = {t.ident for t in threading.enumerate()}
    with interpreters.create(site=False) as it:
        assert it.call(pow, 3, 2) == 9
    assert {t.ident for t in threading.enumerate()} == before
    assert "crossinterp-create" not in {t.name for t in threading.enumerate()}
