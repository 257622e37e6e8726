//! Loom models of `Queue` and `Channel`.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom_queue \
//!     --target-dir target/loom -- --test-threads 1 --nocapture
//! ```
//!
//! Each model is bounded (`preemption_bound`, overridable with
//! `LOOM_MAX_PREEMPTIONS`) and prints its wall time. Under loom, timed condvar
//! waits are untimed, so no model depends on a timeout firing; instead
//! `INTERRUPT_CHECK_INTERVAL` is zero under loom, so every blocking call runs
//! its interrupt hook (with the lock released) before each wait, and the
//! models that need a blocked call to give up use a hook that says "stop" (the
//! withdraw path is the same for a deadline and an interrupt), or a deadline
//! that has already passed.

#![cfg(loom)]

use crossinterp_core::channel::{Channel, RecvError, SendError};
use crossinterp_core::queue::{GetError, PutError, Queue};
use loom::thread;
use std::time::Instant;

/// Run `f` under loom with at most `preemptions` preemptions (`None`: no bound,
/// exhaustive) unless `LOOM_MAX_PREEMPTIONS` says otherwise, and report how many
/// executions it explored and how long it took.
fn model<F>(name: &str, preemptions: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = preemptions;
    }
    let before = RUNS.load(std::sync::atomic::Ordering::SeqCst);
    builder.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f()
    });
    let runs = RUNS.load(std::sync::atomic::Ordering::SeqCst) - before;
    eprintln!(
        "loom model {name}: {runs} interleavings in {:.2?}",
        start.elapsed()
    );
}

fn never() -> impl FnMut() -> bool {
    || false
}

/// Two getters block on an empty queue; two puts (one blocking, one try_put)
/// race them. Both getters get an item: a put always wakes a blocked getter
/// (a lost wake-up is a loom deadlock), and the woken-token accounting never
/// lets a put skip a getter that still sleeps.
#[test]
fn put_get_wakeup() {
    model("put_get_wakeup", Some(2), || {
        let q = Queue::new(0);
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get(None, &mut never()).unwrap())
            })
            .collect();
        let putter = {
            let q = q.clone();
            thread::spawn(move || q.try_put(1).unwrap())
        };
        q.put(2, None, &mut never()).unwrap();
        putter.join().unwrap();
        let mut got: Vec<i32> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(q.blocked_getters(), 0);
        assert!(q.is_empty());
    });
}

/// Two getters (one may be blocked) while the main thread puts one item and
/// closes: exactly one gets the item, the other is woken by the close and
/// reports Closed (drain-then-Closed; a getter left asleep is a deadlock).
#[test]
fn close_wakes_blocked_getter() {
    model("close_wakes_blocked_getter", Some(3), || {
        let q = Queue::new(0);
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get(None, &mut never()))
            })
            .collect();
        q.try_put(7).unwrap();
        assert!(q.close());
        assert_eq!(q.try_put(8), Err(PutError::Closed(8)));
        let mut results: Vec<Result<i32, GetError>> =
            getters.into_iter().map(|g| g.join().unwrap()).collect();
        results.sort_by_key(|r| r.is_err());
        assert_eq!(results, vec![Ok(7), Err(GetError::Closed)]);
        assert_eq!(q.blocked_getters(), 0);
    });
}

/// A put on a full bounded queue waits for a get, which wakes it; FIFO holds
/// (the main thread gets the old item, then the new one).
#[test]
fn bounded_put_waits_for_get() {
    model("bounded_put_waits_for_get", None, || {
        let q = Queue::new(1);
        q.try_put(1).unwrap();
        let putter = {
            let q = q.clone();
            thread::spawn(move || q.put(2, None, &mut never()))
        };
        assert_eq!(q.get(None, &mut never()), Ok(1));
        assert_eq!(q.get(None, &mut never()), Ok(2));
        assert_eq!(putter.join().unwrap(), Ok(()));
        assert_eq!(q.blocked_putters(), 0);
    });
}

/// `remove_where` racing a producer on a bounded queue: the producer's second
/// put may block until `remove_where` makes room (which must wake it). Every
/// item is removed or left exactly once; survivors keep their order.
#[test]
fn remove_where_vs_put() {
    model("remove_where_vs_put", Some(3), || {
        let q = Queue::new(2);
        q.try_put(10).unwrap();
        let putter = {
            let q = q.clone();
            thread::spawn(move || {
                q.put(20, None, &mut never()).unwrap();
                q.put(30, None, &mut never()).unwrap();
            })
        };
        let removed = q.remove_where(|&x| x == 10 || x == 20);
        putter.join().unwrap();
        let rest = q.drain();
        assert_eq!(removed.first(), Some(&10), "{removed:?}");
        let mut all: Vec<i32> = removed.iter().chain(&rest).copied().collect();
        all.sort();
        assert_eq!(all, vec![10, 20, 30], "removed {removed:?} rest {rest:?}");
        let mut sorted_rest = rest.clone();
        sorted_rest.sort();
        assert_eq!(rest, sorted_rest, "order broken");
    });
}

/// A blocking send and a blocking receive meet: the send returns only once the
/// item is received (nothing pending afterwards), whichever arrives first.
/// A second sender uses `try_send` (send_nowait), falling back to `send` when
/// no receive is waiting: both items arrive, once each.
#[test]
fn channel_send_recv_rendezvous() {
    model("channel_send_recv_rendezvous", Some(2), || {
        let ch = Channel::new();
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || {
                let a = ch.recv(None, &mut never()).unwrap();
                let b = ch.recv(None, &mut never()).unwrap();
                (a, b)
            })
        };
        let nowait = {
            let ch = ch.clone();
            thread::spawn(move || match ch.try_send(2) {
                Ok(()) => true,
                Err(SendError::NoReceiver(x)) => {
                    ch.send(x, None, &mut never()).unwrap();
                    false
                }
                Err(e) => panic!("{e:?}"),
            })
        };
        ch.send(1, None, &mut never()).unwrap();
        nowait.join().unwrap();
        let (a, b) = receiver.join().unwrap();
        let mut got = vec![a, b];
        got.sort();
        assert_eq!(got, vec![1, 2]);
        assert!(ch.is_empty());
        assert_eq!(ch.waiting_receivers(), 0);
    });
}

/// A blocking send and a blocking receive race a forced close: either the item
/// was received (send Ok, receive Ok) or it went back to the sender (send
/// Closed(item), receive Closed). A pending item counted by `close` is the one
/// handed back. Nobody stays blocked.
#[test]
fn channel_close_vs_send() {
    model("channel_close_vs_send", Some(2), || {
        let ch = Channel::new();
        let sender = {
            let ch = ch.clone();
            thread::spawn(move || ch.send(1, None, &mut never()))
        };
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || ch.recv(None, &mut never()))
        };
        let returned = ch.close(true).unwrap();
        let s = sender.join().unwrap();
        let r = receiver.join().unwrap();
        match (&s, &r) {
            (Ok(()), Ok(1)) => assert_eq!(returned, 0),
            (Err(SendError::Closed(1)), Err(RecvError::Closed)) => assert!(returned <= 1),
            _ => panic!("send {s:?}, recv {r:?}"),
        }
        assert!(ch.is_empty());
    });
}

/// The exactly-once decision between a sender giving up and a receiver taking
/// the item.
///
/// 1. A send whose hook says "stop" (interrupt) vs a blocking receive: under
///    loom the hook runs, unlocked, right after the item is offered, so the
///    receive may take it before, during or after. Ok ⇔ received;
///    Interrupted(item) ⇔ not received (the receive then sees the close).
/// 2. The same with a deadline already passed (timeout): the item is handed to
///    a receive already waiting, or withdrawn at once.
/// 3. A receive whose hook says "stop" vs `try_send`: the receive un-registers
///    before its hook runs, so try_send's Ok ⇔ the receive returned the item.
#[test]
fn channel_send_withdraw_vs_recv() {
    model("channel_send_withdraw_vs_recv/interrupt", None, || {
        let ch = Channel::new();
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || ch.recv(None, &mut never()))
        };
        let s = ch.send(1, None, &mut || true);
        ch.close_send().unwrap();
        let r = receiver.join().unwrap();
        match (&s, &r) {
            (Ok(()), Ok(1)) | (Err(SendError::Interrupted(1)), Err(RecvError::Closed)) => {}
            _ => panic!("send {s:?}, recv {r:?}"),
        }
        assert!(ch.is_empty());
    });
    model("channel_send_withdraw_vs_recv/timeout", None, || {
        let ch = Channel::new();
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || ch.recv(None, &mut never()))
        };
        let s = ch.send(1, Some(Instant::now()), &mut never());
        ch.close_send().unwrap();
        let r = receiver.join().unwrap();
        match (&s, &r) {
            (Ok(()), Ok(1)) | (Err(SendError::Timeout(1)), Err(RecvError::Closed)) => {}
            _ => panic!("send {s:?}, recv {r:?}"),
        }
    });
    model("channel_send_withdraw_vs_recv/recv_interrupt", None, || {
        let ch = Channel::new();
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || ch.recv(None, &mut || true))
        };
        let s = ch.try_send(1);
        let r = receiver.join().unwrap();
        match (&s, &r) {
            (Ok(()), Ok(1)) | (Err(SendError::NoReceiver(1)), Err(RecvError::Interrupted)) => {}
            _ => panic!("try_send {s:?}, recv {r:?}"),
        }
        assert_eq!(ch.waiting_receivers(), 0);
    });
}
