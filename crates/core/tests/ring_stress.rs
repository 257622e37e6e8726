//! Stress tests of the queue's lock-free ring (`src/ring.rs`), one per race,
//! each named after its loom model in `tests/loom_ring.rs`. Small by default
//! (a few seconds at most in debug on 2 cores); `CROSSINTERP_LARGE=1` scales
//! them up.

#![cfg(not(loom))]

use crossinterp_core::queue::{GetError, Queue};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

#[path = "support/stress.rs"]
mod stress_support;
use stress_support::{check_exactly_once_in_order, size, Log};

/// Stream `per` items from each of `producers` threads to `consumers`
/// threads (try_put/try_get, spinning), through `q`; the consumers' logs.
fn stream(
    q: &Queue<Box<(usize, usize)>>,
    producers: usize,
    consumers: usize,
    per: usize,
) -> Vec<Log> {
    let left = Arc::new(AtomicUsize::new(producers * per));
    thread::scope(|s| {
        for p in 0..producers {
            s.spawn(move || {
                for i in 0..per {
                    let mut item = Box::new((p, i));
                    loop {
                        match q.try_put(item) {
                            Ok(()) => break,
                            Err(e) => item = e.into_inner(),
                        }
                        thread::yield_now();
                    }
                }
            });
        }
        let cons: Vec<_> = (0..consumers)
            .map(|_| {
                let left = left.clone();
                s.spawn(move || {
                    let mut log = Log::new();
                    while left.load(Ordering::SeqCst) > 0 {
                        match q.try_get() {
                            Ok(b) => {
                                log.push(*b);
                                left.fetch_sub(1, Ordering::SeqCst);
                            }
                            Err(GetError::Empty) => thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                    log
                })
            })
            .collect();
        cons.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

/// Pushes and pops meeting on the same slots, over and over: tiny bounded
/// queues (1, 2 and 3 items: rings of 2 and 4 slots, every push reusing a
/// slot a pop just freed) with boxed items. Checked: every item exactly
/// once, in order per producer, none torn (a box read before its write, or
/// written over before it was read, is a wrong value or a crash).
#[test]
fn push_vs_pop_same_slot() {
    let per = size(100_000, 1_000_000);
    for maxsize in [1, 2, 3] {
        for (p, c) in [(1, 1), (2, 2)] {
            let q = Queue::new(maxsize);
            let logs = stream(&q, p, c, per / p);
            check_exactly_once_in_order(&logs, p, per / p);
            assert!(q.is_empty());
        }
    }
}

/// A get must not answer "empty" while an earlier push is still writing its
/// item: each producer counts its completed puts (after `try_put` returns),
/// and the one consumer, having read those counts, knows that at least that
/// many items minus what it took are in the queue; `Empty` then is a lie.
#[test]
fn pop_sees_in_flight_push_not_empty() {
    let per = size(200_000, 2_000_000);
    let producers = 3;
    let q = Queue::new(0);
    let done: Arc<Vec<AtomicUsize>> =
        Arc::new((0..producers).map(|_| AtomicUsize::new(0)).collect());
    thread::scope(|s| {
        for p in 0..producers {
            let (q, done) = (&q, done.clone());
            s.spawn(move || {
                for i in 0..per {
                    q.try_put((p, i)).unwrap();
                    done[p].fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let mut taken = 0;
        let mut lies = 0;
        let mut last = vec![None::<usize>; producers];
        while taken < producers * per {
            let completed: usize = done.iter().map(|d| d.load(Ordering::SeqCst)).sum();
            match q.try_get() {
                Ok((p, i)) => {
                    assert!(last[p].is_none_or(|l| i > l), "order broken");
                    last[p] = Some(i);
                    taken += 1;
                }
                Err(GetError::Empty) => {
                    if completed > taken {
                        lies += 1;
                    }
                    thread::yield_now();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(lies, 0, "`Empty` with completed puts' items in the queue");
    });
}

/// Growth against streaming fast calls: fresh unbounded queues (a ring of 32
/// slots, doubling as it fills) and large bounded ones, two producers
/// pushing bursts faster than two consumers drain them, so that the ring
/// grows while pushes and pops are in flight on the old one. Checked: every
/// item exactly once, in order per producer.
#[test]
fn grow_vs_fast_push() {
    let per = size(50_000, 500_000);
    for round in 0..size(6, 30) {
        let maxsize = if round % 2 == 0 { 0 } else { 5_000 };
        let q = Queue::new(maxsize);
        let logs = stream(&q, 2, 2, per);
        check_exactly_once_in_order(&logs, 2, per);
        assert!(q.is_empty());
    }
}
