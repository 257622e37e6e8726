//! Unit tests of `Queue`: every API path, including timeouts, interrupts, close
//! semantics and the unbound-item helpers.

#![cfg(not(loom))]

use crossinterp_core::queue::{GetError, PutError, Queue};
use crossinterp_core::{Channel, INTERRUPT_CHECK_INTERVAL};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn never() -> impl FnMut() -> bool {
    || false
}

fn in_ms(ms: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_millis(ms))
}

/// Wait (polling, test-side only) until `f` holds; panics after 10 s.
fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn new_id_maxsize() {
    let a: Queue<u8> = Queue::new(0);
    let b: Queue<u8> = Queue::new(3);
    let c: Channel<u8> = Channel::new();
    assert!(a.id() >= 1);
    assert_ne!(a.id(), b.id());
    assert_ne!(b.id(), c.id());
    assert_ne!(a.id(), c.id());
    assert_eq!(a.maxsize(), 0);
    assert_eq!(b.maxsize(), 3);
    assert_eq!(a.clone().id(), a.id());
    assert!(a.is_empty() && !a.is_full() && !a.is_closed());
    let dbg = format!("{b:?}");
    assert!(dbg.contains("maxsize: 3"), "{dbg}");
}

#[test]
fn ids_are_never_reused() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let q: Queue<()> = Queue::new(0);
        assert!(seen.insert(q.id()));
    }
}

#[test]
fn queue_is_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Queue<Box<u32>>>();
    check::<Channel<Box<u32>>>();
}

#[test]
fn fifo_order_and_len() {
    let q = Queue::new(0);
    for i in 0..100 {
        q.try_put(i).unwrap();
    }
    assert_eq!(q.len(), 100);
    let other = q.clone();
    for i in 0..100 {
        assert_eq!(other.try_get(), Ok(i));
    }
    assert_eq!(q.try_get(), Err(GetError::Empty));
    assert!(q.is_empty());
}

#[test]
fn maxsize_bounds_try_put() {
    let q = Queue::new(2);
    q.try_put("a").unwrap();
    assert!(!q.is_full());
    q.try_put("b").unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_put("c"), Err(PutError::Full("c")));
    assert_eq!(q.try_put("c").unwrap_err().into_inner(), "c");
    assert_eq!(q.try_get(), Ok("a"));
    q.try_put("c").unwrap();
    assert_eq!(q.drain(), vec!["b", "c"]);
}

#[test]
fn put_and_get_with_room_or_item_ignore_past_deadline() {
    let q = Queue::new(1);
    let past = Some(Instant::now() - Duration::from_millis(1));
    q.put(1, past, &mut never()).unwrap();
    assert_eq!(q.put(2, past, &mut never()), Err(PutError::Full(2)));
    assert_eq!(q.get(past, &mut never()), Ok(1));
    assert_eq!(q.get(past, &mut never()), Err(GetError::Empty));
}

#[test]
fn put_times_out_on_full_queue() {
    let q = Queue::new(1);
    q.try_put(0).unwrap();
    let start = Instant::now();
    let r = q.put(7, in_ms(120), &mut never());
    let waited = start.elapsed();
    assert_eq!(r, Err(PutError::Full(7)));
    assert!(waited >= Duration::from_millis(120), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(q.len(), 1);
    assert_eq!(q.blocked_putters(), 0);
}

#[test]
fn get_times_out_on_empty_queue() {
    let q: Queue<u8> = Queue::new(0);
    let start = Instant::now();
    assert_eq!(q.get(in_ms(120), &mut never()), Err(GetError::Empty));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(120), "{waited:?}");
    assert_eq!(q.blocked_getters(), 0);
}

/// The hook runs about every INTERRUPT_CHECK_INTERVAL while blocked, never
/// before the call first blocked.
#[test]
fn hook_cadence_while_blocked() {
    let q: Queue<u8> = Queue::new(0);
    let calls = AtomicUsize::new(0);
    let mut hook = || {
        calls.fetch_add(1, Ordering::SeqCst);
        false
    };
    let start = Instant::now();
    assert_eq!(q.get(in_ms(280), &mut hook), Err(GetError::Empty));
    let waited = start.elapsed();
    let n = calls.load(Ordering::SeqCst);
    let most = (waited.as_millis() / INTERRUPT_CHECK_INTERVAL.as_millis()) as usize;
    assert!(n >= 2 && n <= most, "{n} hook calls in {waited:?}");

    // A call that does not block never runs the hook.
    let q = Queue::new(0);
    q.try_put(1).unwrap();
    let mut boom = || -> bool { panic!("hook ran on a call that did not block") };
    assert_eq!(q.get(None, &mut boom), Ok(1));
    q.put(2, None, &mut boom).unwrap();
}

#[test]
fn get_interrupted() {
    let q: Queue<u8> = Queue::new(0);
    let start = Instant::now();
    let mut calls = 0;
    let r = q.get(None, &mut || {
        calls += 1;
        calls == 2
    });
    assert_eq!(r, Err(GetError::Interrupted));
    assert_eq!(calls, 2);
    assert!(start.elapsed() >= 2 * INTERRUPT_CHECK_INTERVAL);
    assert_eq!(q.blocked_getters(), 0);
}

#[test]
fn put_interrupted_hands_item_back() {
    let q = Queue::new(1);
    q.try_put(String::from("first")).unwrap();
    let r = q.put(String::from("second"), None, &mut || true);
    assert_eq!(r, Err(PutError::Interrupted(String::from("second"))));
    assert_eq!(q.drain(), vec![String::from("first")]);
    assert_eq!(q.blocked_putters(), 0);
}

/// A blocked get is woken by the put itself, not by a poll: the median wake-up
/// latency is far below the hook's tick (the only timed wake-up).
#[test]
fn put_wakes_blocked_getter_without_polling() {
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let q = Queue::new(0);
        let getter = {
            let q = q.clone();
            thread::spawn(move || {
                let r = q.get(None, &mut never());
                (r, Instant::now())
            })
        };
        until("getter blocked", || q.blocked_getters() == 1);
        let put_at = Instant::now();
        q.try_put(42u32).unwrap();
        let (r, got_at) = getter.join().unwrap();
        assert_eq!(r, Ok(42));
        latencies.push(got_at - put_at);
    }
    latencies.sort();
    assert!(
        latencies[2] < INTERRUPT_CHECK_INTERVAL / 2,
        "median wake latency {:?}",
        latencies[2]
    );
}

#[test]
fn get_wakes_blocked_putter() {
    let q = Queue::new(1);
    q.try_put(1).unwrap();
    let putter = {
        let q = q.clone();
        thread::spawn(move || q.put(2, None, &mut never()))
    };
    until("putter blocked", || q.blocked_putters() == 1);
    assert_eq!(q.try_get(), Ok(1));
    assert_eq!(putter.join().unwrap(), Ok(()));
    assert_eq!(q.try_get(), Ok(2));
}

#[test]
fn close_refuses_puts_and_drains_gets() {
    let q = Queue::new(0);
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(q.close());
    assert!(!q.close(), "second close reports already closed");
    assert!(q.is_closed());
    assert_eq!(q.try_put(3), Err(PutError::Closed(3)));
    assert_eq!(q.put(4, None, &mut never()), Err(PutError::Closed(4)));
    assert_eq!(q.get(None, &mut never()), Ok(1));
    assert_eq!(q.try_get(), Ok(2));
    assert_eq!(q.try_get(), Err(GetError::Closed));
    assert_eq!(q.get(None, &mut never()), Err(GetError::Closed));
    assert_eq!(q.get(in_ms(10), &mut never()), Err(GetError::Closed));
}

#[test]
fn close_wakes_blocked_getters_and_putters() {
    let empty: Queue<u8> = Queue::new(0);
    let full = Queue::new(1);
    full.try_put(0u8).unwrap();
    let getters: Vec<_> = (0..2)
        .map(|_| {
            let q = empty.clone();
            thread::spawn(move || q.get(None, &mut never()))
        })
        .collect();
    let putters: Vec<_> = (1..3)
        .map(|i| {
            let q = full.clone();
            thread::spawn(move || q.put(i, None, &mut never()))
        })
        .collect();
    until("all blocked", || {
        empty.blocked_getters() == 2 && full.blocked_putters() == 2
    });
    empty.close();
    full.close();
    for g in getters {
        assert_eq!(g.join().unwrap(), Err(GetError::Closed));
    }
    let mut back: Vec<u8> = putters
        .into_iter()
        .map(|p| match p.join().unwrap() {
            Err(PutError::Closed(i)) => i,
            other => panic!("{other:?}"),
        })
        .collect();
    back.sort();
    assert_eq!(back, vec![1, 2]);
    assert_eq!(full.drain(), vec![0]);
}

#[test]
fn remove_where_keeps_order_and_returns_removed_in_order() {
    let q = Queue::new(0);
    for i in 0..10 {
        q.try_put(i).unwrap();
    }
    assert_eq!(q.remove_where(|&i| i % 3 == 0), vec![0, 3, 6, 9]);
    assert_eq!(q.remove_where(|&i| i > 100), Vec::<i32>::new());
    assert_eq!(q.drain(), vec![1, 2, 4, 5, 7, 8]);
    assert!(q.is_empty());
}

#[test]
fn remove_where_wakes_blocked_putters() {
    let q = Queue::new(2);
    q.try_put(10).unwrap();
    q.try_put(11).unwrap();
    let putters: Vec<_> = (0..2)
        .map(|i| {
            let q = q.clone();
            thread::spawn(move || q.put(i, None, &mut never()))
        })
        .collect();
    until("putters blocked", || q.blocked_putters() == 2);
    assert_eq!(q.remove_where(|&i| i >= 10), vec![10, 11]);
    for p in putters {
        assert_eq!(p.join().unwrap(), Ok(()));
    }
    let mut rest = q.drain();
    rest.sort();
    assert_eq!(rest, vec![0, 1]);
}

#[test]
fn remove_where_panic_leaves_queue_untouched() {
    let q = Queue::new(0);
    for i in 0..5 {
        q.try_put(i).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.remove_where(|&i| if i == 3 { panic!("boom") } else { i == 1 })
    }));
    assert!(r.is_err());
    // The lock was poisoned by the panic; the queue still works and lost nothing.
    assert_eq!(q.drain(), vec![0, 1, 2, 3, 4]);
    q.try_put(9).unwrap();
    assert_eq!(q.try_get(), Ok(9));
}

#[test]
fn for_each_mut_marks_in_place() {
    let q = Queue::new(0);
    for i in 0..4 {
        q.try_put((i, false)).unwrap();
    }
    q.for_each_mut(|(i, gone)| *gone = *i % 2 == 1);
    assert_eq!(
        q.drain(),
        vec![(0, false), (1, true), (2, false), (3, true)]
    );
}

#[test]
fn drain_wakes_blocked_putter() {
    let q = Queue::new(1);
    q.try_put(1).unwrap();
    let putter = {
        let q = q.clone();
        thread::spawn(move || q.put(2, None, &mut never()))
    };
    until("putter blocked", || q.blocked_putters() == 1);
    assert_eq!(q.drain(), vec![1]);
    assert_eq!(putter.join().unwrap(), Ok(()));
    assert_eq!(q.drain(), vec![2]);
    assert_eq!(q.drain(), Vec::<i32>::new());
}

/// Items left in the queue are dropped with its last clone, once each.
#[test]
fn items_dropped_with_last_clone() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Queue::new(0);
    for _ in 0..3 {
        q.try_put(Counted(drops.clone())).unwrap();
    }
    let q2 = q.clone();
    drop(q);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(q2);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Many blocked getters, items put one by one: each put wakes a getter, every
/// item is taken exactly once, no getter is left behind.
#[test]
fn puts_wake_each_of_many_getters() {
    let q = Queue::new(0);
    let n = 6;
    let getters: Vec<_> = (0..n)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.get(None, &mut never()))
        })
        .collect();
    until("getters blocked", || q.blocked_getters() == n);
    for i in 0..n {
        q.try_put(i).unwrap();
    }
    let mut got: Vec<usize> = getters
        .into_iter()
        .map(|g| g.join().unwrap().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert_eq!(q.blocked_getters(), 0);
}

/// Of two getters asleep on an empty queue, a put wakes the one that went to
/// sleep last, and the other sleeps on until the next put (`wait::Sleepers`:
/// a pool of workers getting one task at a time keeps handing it to the
/// worker that just finished one). A sleeping getter also wakes by itself
/// every `INTERRUPT_CHECK_INTERVAL` (to run its hook) and then sleeps again,
/// on top: a trial in which that could have happened before the put (the
/// first getter asleep for half an interval or more) proves nothing and is
/// run again.
#[test]
fn a_put_wakes_the_most_recent_sleeper_first() {
    for _trial in 0..20 {
        let q = Queue::new(0);
        let (done_tx, done) = std::sync::mpsc::channel();
        let getter = |name: &'static str| {
            let q = q.clone();
            let done_tx = done_tx.clone();
            thread::spawn(move || done_tx.send((name, q.get(None, &mut never()))).unwrap())
        };
        let first = getter("first");
        until("the first getter asleep", || q.blocked_getters() == 1);
        let since = Instant::now();
        let second = getter("second");
        until("both getters asleep", || q.blocked_getters() == 2);
        q.try_put(1u32).unwrap();
        let conclusive = since.elapsed() < INTERRUPT_CHECK_INTERVAL / 2;
        let woken = done
            .recv_timeout(Duration::from_secs(10))
            .expect("a getter woke");
        q.try_put(2).unwrap();
        let other = done
            .recv_timeout(Duration::from_secs(10))
            .expect("the other getter woke");
        first.join().unwrap();
        second.join().unwrap();
        if conclusive {
            assert_eq!(
                woken,
                ("second", Ok(1)),
                "the first put woke the older sleeper"
            );
            assert_eq!(other, ("first", Ok(2)));
            return;
        }
    }
    panic!("no trial put its item within half an interrupt interval of the first sleep");
}

#[test]
fn error_display_and_into_inner() {
    assert_eq!(PutError::Full(1).to_string(), "the queue is full");
    assert_eq!(format!("{:?}", PutError::Closed(1)), "Closed(..)");
    assert_eq!(PutError::Interrupted(5).into_inner(), 5);
    assert_eq!(
        GetError::Closed.to_string(),
        "the queue is closed and empty"
    );
}

/// The race a `fork()` hold is for (stress twin of the loom model
/// `fork_hold_vs_calls_in_flight`): threads put and get as fast as they can
/// while another holds the queue again and again. Every time the hold is
/// taken no call is half done in the ring (what the child of a fork needs,
/// where those threads do not exist), and released as in the parent the
/// threads go on: every item is got once, in each producer's order.
#[test]
fn fork_hold_waits_for_calls_in_flight() {
    for maxsize in [0, 4] {
        let q: Queue<(usize, u64)> = Queue::new(maxsize);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        const PER: u64 = 5_000;
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..PER {
                        let mut item = (p, i);
                        loop {
                            match q.try_put(item) {
                                Ok(()) => break,
                                Err(PutError::Full(back)) => {
                                    item = back;
                                    thread::yield_now();
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let consumer = {
            let (q, stop) = (q.clone(), stop.clone());
            thread::spawn(move || {
                let mut next = [0u64; 2];
                let mut got = 0;
                while got < 2 * PER {
                    match q.try_get() {
                        Ok((p, i)) => {
                            assert_eq!(i, next[p], "producer {p}'s order");
                            next[p] += 1;
                            got += 1;
                        }
                        Err(GetError::Empty) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
                stop.store(true, Ordering::SeqCst);
            })
        };
        let mut held = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let mut holds = crossinterp_core::fork::Holds::new();
            if q.fork_hold(&mut holds) {
                // SAFETY: the queue is held.
                assert_eq!(unsafe { q.calls_in_flight() }, 0, "maxsize {maxsize}");
                held += 1;
            }
            crossinterp_core::fork::release(holds, false);
        }
        for p in producers {
            p.join().unwrap();
        }
        consumer.join().unwrap();
        assert!(held > 0);
        assert!(q.is_empty());
    }
}

/// A hold is only ever tried: while the queue's lock is taken (here by an
/// earlier hold) it is refused at once and pushes nothing, so the forking
/// thread can never deadlock on a lock another thread keeps while waiting
/// for something the forking thread has.
#[test]
fn fork_hold_is_refused_while_the_lock_is_taken() {
    let q: Queue<u32> = Queue::new(0);
    let ch: Channel<u32> = Channel::new();
    let mut first = crossinterp_core::fork::Holds::new();
    assert!(q.fork_hold(&mut first) && ch.fork_hold(&mut first));
    assert_eq!(first.len(), 2);
    let mut second = crossinterp_core::fork::Holds::new();
    assert!(!q.fork_hold(&mut second) && !ch.fork_hold(&mut second));
    assert!(second.is_empty());
    crossinterp_core::fork::release(first, false);
    // Released: the queue works again, and the next hold is taken.
    q.try_put(7).unwrap();
    assert_eq!(q.try_get().unwrap(), 7);
    assert!(q.fork_hold(&mut second) && ch.fork_hold(&mut second));
    crossinterp_core::fork::release(second, false);
}
