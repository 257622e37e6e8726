//! Loom models of the queue's lock-free ring (`src/ring.rs`), through
//! `Queue`: the races its own protocol must win (the queue-level ones, with
//! sleepers, close and exclusive operations, are in `loom_queue.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom_ring \
//!     --target-dir target/loom -- --test-threads 1 --nocapture
//! ```
//!
//! Under loom a new ring has 2 slots, so three items make it grow and a fourth
//! reuses a slot. Each model names its outcomes and asserts it reached them
//! all, so it cannot silently stop exercising its race.

#![cfg(loom)]

use crossinterp_core::queue::{GetError, Queue};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

#[path = "support/loom_model.rs"]
mod loom_model;
use loom_model::{model, spawn_with, Outcomes};

/// A push and a pop on the same slot: the 2-slot ring holds item 0 (slot 0)
/// when a putter pushes 1 (slot 1) and 2 (slot 0 again, position 2) while the
/// main thread pops: the getter's reads follow the stamps the putter
/// publishes (Release/Acquire), and the putter's write of position 2 follows
/// the pop that moved item 0 out of slot 0 (or, if that pop is in flight,
/// waits for it; if it has not begun, the ring grows). Loom's cell tracking
/// reports any access to an item not ordered by its stamp; the boxed items
/// make a torn hand-off visible too.
#[test]
fn push_vs_pop_same_slot() {
    let out = Outcomes::new("push_vs_pop_same_slot", &["got_1", "got_2"]);
    let o = out.clone();
    // Exhaustive (no preemption bound): 4,924 interleavings, 0.2 s.
    model("push_vs_pop_same_slot", None, move || {
        let q = Queue::<Box<u32>>::new(0);
        q.try_put(Box::new(0)).unwrap();
        let putter = {
            let q = q.clone();
            thread::spawn(move || {
                q.try_put(Box::new(1)).unwrap();
                q.try_put(Box::new(2)).unwrap();
            })
        };
        let mut got = Vec::new();
        for _ in 0..2 {
            match q.try_get() {
                Ok(b) => got.push(*b),
                Err(GetError::Empty) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        putter.join().unwrap();
        o.hit(["got_0", "got_1", "got_2"][got.len()]);
        got.extend(q.drain().into_iter().map(|b| *b));
        assert_eq!(got, vec![0, 1, 2]);
    });
    out.assert_all_reached();
}

/// A pop must not answer "empty" while a push has claimed the head position
/// and is still writing it: here a second push (at the next position) has
/// completed, and the getter knows it (a flag it acquires), so "empty" would
/// contradict a completed put (not linearizable; in the queue, a getter that
/// raised `SLEEPERS` after that push's CAS would sleep with items queued).
#[test]
fn pop_sees_in_flight_push_not_empty() {
    let out = Outcomes::new(
        "pop_sees_in_flight_push_not_empty",
        &["second_done", "second_not_done"],
    );
    let o = out.clone();
    // Exhaustive (no preemption bound): 5,657 interleavings, 0.3 s.
    model("pop_sees_in_flight_push_not_empty", None, move || {
        let q = Queue::new(0);
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let mut got = Vec::new();
        let first = spawn_with(&q, move |q| q.try_put(1).unwrap());
        let second = {
            let (q, done) = (q.clone(), done.clone());
            thread::spawn(move || {
                q.try_put(2).unwrap();
                done.store(true, Ordering::Release);
            })
        };
        if done.load(Ordering::Acquire) {
            o.hit("second_done");
            let x = q.try_get();
            assert!(x.is_ok(), "a put completed, yet the get said {x:?}");
            got.extend(x);
        } else {
            o.hit("second_not_done");
        }
        first.join().unwrap();
        second.join().unwrap();
        while let Ok(x) = q.try_get() {
            got.push(x);
        }
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
    out.assert_all_reached();
}

/// A growth against a fast pop that loaded the old ring: the 2-slot ring is
/// full, a getter's fast pop may have read the front item's stamp in the old
/// ring when a put grows it (moving the items into a 4-slot ring, positions
/// unchanged). The generation in the index words makes that pop's CAS fail
/// (it retries on the new ring); without it, the pop would take the old
/// copy, the new ring's slot would never be freed, and the put that wraps
/// onto it (the fifth item) would wait forever. Every item once, in order.
#[test]
fn grow_vs_fast_push() {
    let out = Outcomes::new(
        "grow_vs_fast_push",
        &["pop_before_put_done", "pop_after_put_done"],
    );
    let o = out.clone();
    // Exhaustive (no preemption bound): 594 interleavings, 30 ms.
    model("grow_vs_fast_push", None, move || {
        let q = Queue::new(0);
        q.try_put(1).unwrap();
        q.try_put(2).unwrap();
        let grown = std::sync::Arc::new(AtomicBool::new(false));
        let getter = {
            let (q, grown) = (q.clone(), grown.clone());
            thread::spawn(move || {
                let got = q.try_get().ok();
                (got, grown.load(Ordering::Acquire))
            })
        };
        // The ring is full: this put grows it.
        q.try_put(3).unwrap();
        grown.store(true, Ordering::Release);
        let (got, after) = getter.join().unwrap();
        o.hit(if after {
            "pop_after_put_done"
        } else {
            "pop_before_put_done"
        });
        assert_eq!(got, Some(1), "the front item was 1 throughout");
        // Positions 3 and 4: the second wraps onto slot 0 of the 4-slot
        // ring, the slot the getter's pop freed.
        q.try_put(4).unwrap();
        q.try_put(5).unwrap();
        assert_eq!(q.drain(), vec![2, 3, 4, 5]);
    });
    out.assert_all_reached();
}

/// An exclusive operation (`for_each_mut`, as an interpreter's close marks
/// its items) against a fast put and a fast get on the 2-slot ring, with a
/// growth when the put finds it full: the marking is atomic with respect to
/// both. The items present when it runs are marked (+10), in place; a put
/// after it lands behind them unmarked, a get before it takes an unmarked
/// front item. So among the items left in the queue every marked one
/// precedes every unmarked one, and nothing is lost or taken twice.
#[test]
fn exclusive_vs_fast_put() {
    let out = Outcomes::new("exclusive_vs_fast_put", &["got_unmarked", "got_marked"]);
    let o = out.clone();
    // Bound 4 (11,797 interleavings, 0.6 s): exhaustive takes 55 s (1.0M)
    // on the 2-core CI machine. The races need a fast call stopped between
    // its CAS and its stamp (one preemption) while the exclusive operation
    // shuts the words and waits for it (a second), and the other fast call
    // and the growth around them (two more).
    model("exclusive_vs_fast_put", Some(4), move || {
        let q = Queue::new(0);
        q.try_put(1).unwrap();
        q.try_put(2).unwrap();
        let putter = spawn_with(&q, move |q| q.try_put(3).unwrap());
        let getter = spawn_with(&q, move |q| q.try_get().unwrap());
        q.for_each_mut(|x| *x += 10);
        putter.join().unwrap();
        let got = getter.join().unwrap();
        o.hit(if got > 10 {
            "got_marked"
        } else {
            "got_unmarked"
        });
        let mut all = vec![got];
        all.extend(q.drain());
        let order: Vec<i32> = all.iter().map(|x| x % 10).collect();
        assert_eq!(order, vec![1, 2, 3], "{all:?}");
        // The items still queued (the got one left first, marked or not).
        let rest = &all[1..];
        let first_unmarked = rest.iter().position(|&x| x < 10).unwrap_or(rest.len());
        assert!(
            rest[first_unmarked..].iter().all(|&x| x < 10),
            "a marked item behind an unmarked one: {all:?}"
        );
    });
    out.assert_all_reached();
}
