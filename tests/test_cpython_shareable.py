"""Objects CPython's own cross-interpreter registry shares (and crossinterp
does not natively) cross with CPython's machinery, as in the stdlib."""

import pytest

from crossinterp import interpreters

ch = pytest.importorskip("_interpchannels")


def test_cpython_channel_id_is_shareable_and_crosses_by_prepare_main():
    cid = ch.create(1)
    assert interpreters.is_shareable(cid)
    interp = interpreters.create()
    try:
        interp.prepare_main(cid=cid, n=7)
        interp.exec("import _interpchannels as ch; ch.send(cid, b'hi', blocking=False); ch.send(cid, n, blocking=False)")
        assert ch.recv(cid)[0] == b"hi"
        assert ch.recv(cid)[0] == 7
    finally:
        interp.close()


def test_plain_unshareable_object_is_not_claimed():
    assert not interpreters.is_shareable(object())
