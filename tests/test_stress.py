"""Stress runs named after the races they exercise. The `_small` variants run
by default; the `_large` ones exist only with CROSSINTERP_LARGE=1. Thread
counts and iteration counts follow CROSSINTERP_STRESS_THREADS and
CROSSINTERP_STRESS_SCALE (conftest.py; `make soak` varies them)."""

import gc
import threading

import helpers
from conftest import LARGE, stress_iterations, stress_threads

from crossinterp import SharedBuffer, interpreters, queues
from crossinterp.channels import Channel
from crossinterp.queues import Queue


def _storm_from_everywhere(q, n_interps, n_threads_main, n, hammer, *args):
    """Run ``hammer(q, pid, n, *args)`` in ``n_interps`` subinterpreters (pids
    0...) and ``n_threads_main`` threads of this one (pids 100...) at once;
    assert that every (pid, seq) was got exactly once and the queue is empty."""
    its = [interpreters.create() for _ in range(n_interps)]
    results, errors = {}, []

    def run(key, fn, *fargs):
        try:
            results[key] = fn(*fargs)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=(("i", k), it.call, hammer, q, k, n, *args))
        for k, it in enumerate(its)
    ] + [
        threading.Thread(target=run, args=(("t", k), hammer, q, 100 + k, n, *args))
        for k in range(n_threads_main)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for it in its:
        it.close()
    assert errors == []
    got = sorted(x for v in results.values() for x in v)
    expected = sorted(
        [(k, s) for k in range(n_interps) for s in range(n)]
        + [(100 + k, s) for k in range(n_threads_main) for s in range(n)]
    )
    assert got == expected  # every item got exactly once
    assert q.empty()


def _put_get_storm(n_interps, n_threads_main, n):
    # Room for every worker's batch: all workers blocked in put at once (a
    # full queue nobody drains) would be a deadlock of the test, not a race.
    q = Queue(maxsize=8 * (n_interps + n_threads_main))
    _storm_from_everywhere(q, n_interps, n_threads_main, n, helpers.hammer_queue, 8)


def test_put_get_storm_across_interpreters_and_threads_small():
    _put_get_storm(stress_threads(3), stress_threads(3), stress_iterations(200))


def _rendezvous_storm(n_senders, n):
    ch = Channel()
    its = [interpreters.create() for _ in range(n_senders)]
    errors = []

    def send(it):
        try:
            it.call(helpers.send_range, ch, n)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=send, args=(it,)) for it in its]
    for t in threads:
        t.start()
    got = [ch.recv(timeout=60) for _ in range(n_senders * n)]
    for t in threads:
        t.join()
    for it in its:
        it.close()
    assert errors == []
    assert sorted(got) == sorted(list(range(n)) * n_senders)
    assert ch.pending == 0


def test_send_recv_rendezvous_storm_small():
    _rendezvous_storm(stress_threads(3), stress_iterations(200))


def _stream_pool_storm(n_interps, n_threads_main, n):
    # Large containers take their stream buffers from one process-wide pool
    # and give them back when the receiver drops them: taken and given by
    # every thread and interpreter at once, no buffer may be handed to two
    # conversions or come back holding another one's bytes (hammer_big
    # checks every item whole).
    _storm_from_everywhere(Queue(), n_interps, n_threads_main, n, helpers.hammer_big)


def test_stream_pool_take_give_storm_small():
    _stream_pool_storm(stress_threads(3), stress_threads(3), stress_iterations(100))


def _dead_entry_replace_storm(n_threads, rounds):
    # A queue whose last object here died leaves a dead entry in this
    # interpreter's interning table; threads receiving that queue at once
    # each make an object and race to replace the entry (the native side,
    # under the table's lock): all of them must end with the one object.
    it = interpreters.create()
    carrier = queues.create()
    it.prepare_main(c=carrier)
    barrier = threading.Barrier(n_threads)
    try:
        for _ in range(rounds):
            q = queues.create()
            qid = q.id
            it.prepare_main(q=q)  # the subinterpreter keeps the queue alive
            del q
            gc.collect()
            it.exec(f"for _ in range({n_threads}): c.put(q)")
            got = []

            def take(got=got):
                barrier.wait()
                got.append(carrier.get(timeout=30))

            ts = [threading.Thread(target=take) for _ in range(n_threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert len(got) == n_threads
            assert all(g is got[0] for g in got), "two objects for one queue"
            assert got[0].id == qid
            assert queues.Queue(qid) is got[0]
    finally:
        it.close()


def test_dead_entry_replace_storm_small():
    _dead_entry_replace_storm(stress_threads(4), stress_iterations(50))


def _export_release_storm(n_interps, rounds):
    buf = SharedBuffer(64)
    its = [interpreters.create() for _ in range(n_interps)]
    errors = []

    def run(it):
        try:
            it.call(helpers.touch_buffer, buf, rounds)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(it,)) for it in its]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for it in its:
        it.close()
    assert errors == []
    buf.release()  # no export may be left over by any interpreter
    assert buf.released


def test_export_release_storm_small():
    _export_release_storm(stress_threads(3), stress_iterations(500))


if LARGE:

    def test_put_get_storm_across_interpreters_and_threads_large():
        _put_get_storm(stress_threads(6), stress_threads(6), stress_iterations(5000))

    def test_send_recv_rendezvous_storm_large():
        _rendezvous_storm(stress_threads(6), stress_iterations(3000))

    def test_stream_pool_take_give_storm_large():
        _stream_pool_storm(stress_threads(6), stress_threads(6), stress_iterations(2000))

    def test_dead_entry_replace_storm_large():
        _dead_entry_replace_storm(stress_threads(8), stress_iterations(1000))

    def test_export_release_storm_large():
        _export_release_storm(stress_threads(6), stress_iterations(20000))
