"""crossinterp.channels.Channel: PEP 554 rendezvous semantics and closing rules."""

import threading
import time

import helpers
import pytest

from crossinterp import interpreters
from crossinterp.channels import (
    Channel,
    ChannelClosedError,
    ChannelEmptyError,
    ChannelNotEmptyError,
    ChannelNotFoundError,
    create,
)


def _later(delay, fn, *args):
    t = threading.Timer(delay, fn, args)
    t.start()
    return t


def test_send_returns_only_once_received():
    ch = create()
    got, done = [], []
    t = threading.Thread(target=lambda: (ch.send("x"), done.append(time.monotonic())))
    t.start()
    time.sleep(0.2)
    assert done == [] and ch.pending == 1  # still waiting: nobody received
    received_at = time.monotonic()
    got.append(ch.recv(timeout=5))
    t.join(5)
    assert got == ["x"] and done and done[0] >= received_at
    assert ch.pending == 0


def test_send_timeout_withdraws_the_item():
    ch = Channel()
    with pytest.raises(TimeoutError):
        ch.send("lost?", timeout=0.05)
    assert ch.pending == 0
    assert ch.recv_nowait(None) is None  # withdrawn: never received later


def test_recv_timeout_and_nowait():
    ch = Channel()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)
    with pytest.raises(ChannelEmptyError):
        ch.recv_nowait()
    assert ch.recv_nowait(default="d") == "d"


def test_send_nowait_needs_a_waiting_receiver():
    ch = Channel()
    assert ch.send_nowait(1) is False
    assert ch.pending == 0
    out = []
    t = threading.Thread(target=lambda: out.append(ch.recv(timeout=5)))
    t.start()
    deadline = time.monotonic() + 5
    while not ch.send_nowait("now") and time.monotonic() < deadline:
        time.sleep(0.01)
    t.join(5)
    assert out == ["now"]


def test_close_rules():
    ch = Channel()
    ch.close(send=True)
    assert ch.send_closed and not ch.recv_closed
    with pytest.raises(ChannelClosedError):
        ch.send(1, timeout=1)
    with pytest.raises(ChannelClosedError):
        ch.recv(timeout=1)  # send end closed and nothing pending
    with pytest.raises(ChannelClosedError):
        ch.close(send=True)  # already closed
    ch.close()
    assert ch.closed
    with pytest.raises(ChannelClosedError):
        ch.close()


def test_close_with_pending_sends_needs_force():
    ch = Channel()
    errors = []

    def sender():
        try:
            ch.send("pending", timeout=30)
        except ChannelClosedError as e:
            errors.append(e)

    t = threading.Thread(target=sender)
    t.start()
    deadline = time.monotonic() + 5
    while ch.pending == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ChannelNotEmptyError):
        ch.close()
    with pytest.raises(ChannelNotEmptyError):
        ch.close(recv=True)
    assert not ch.closed
    assert ch.close(force=True) == 1
    t.join(5)
    assert len(errors) == 1  # the sender got its item back as an error


def test_pending_sends_still_receivable_after_send_close():
    ch = Channel()
    t = threading.Thread(target=ch.send, args=("last",))
    t.start()
    deadline = time.monotonic() + 5
    while ch.pending == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    ch.close(send=True)
    assert ch.recv(timeout=5) == "last"
    t.join(5)
    with pytest.raises(ChannelClosedError):
        ch.recv(timeout=1)


def test_iteration_until_closed_across_interpreters():
    ch = Channel()
    it = interpreters.create()
    try:
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("n", it.call(helpers.send_range, ch, 50)))
        t.start()
        got = []
        for x in ch:
            got.append(x)
            if len(got) == 50:
                t.join(10)
                ch.close(send=True)
        assert got == list(range(50)) and result["n"] == 50
    finally:
        it.close()


def test_receiver_in_another_interpreter(interp):
    ch = Channel()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", interp.call(helpers.recv_all, ch)))
    t.start()
    for i in range(10):
        ch.send(("item", i), timeout=10)
    ch.close(send=True)
    t.join(10)
    assert out["v"] == tuple(("item", i) for i in range(10))


def test_identity_and_lookup():
    from crossinterp.channels import _from_id

    a, b = Channel(), Channel()
    assert a != b and a == a and hash(a) == hash(a)  # noqa: PLR0124 - self-equality
    assert _from_id(a.id) == a
    cid = b.id
    del b
    with pytest.raises(ChannelNotFoundError):
        _from_id(cid)
    assert interpreters.is_shareable(a)


def test_bad_input():
    ch = Channel()
    with pytest.raises(ValueError):
        ch.send(1, timeout=-1)
    with pytest.raises(ValueError):
        ch.recv(timeout=-1)
    with pytest.raises(TypeError):
        ch.recv(timeout="1")
    with pytest.raises(interpreters.NotShareableError):
        ch.send_nowait(threading.Lock())


def test_strict_send():
    ch = Channel()
    with pytest.raises(interpreters.NotShareableError):
        ch.send({"x": 1}, timeout=1, strict=True)
    assert ch.send_nowait((1, 2), strict=True) is False  # shareable, no receiver


def test_force_with_send_end_only_is_refused():
    with pytest.raises(ValueError):
        Channel().close(send=True, force=True)
