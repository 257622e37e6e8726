//! Loom models of the reclamation protocol of `smr::Smr` (the engine of
//! `AtomicRef` on free-threaded 3.13).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom_smr \
//!     --target-dir target/loom -- --test-threads 1 --nocapture
//! ```
//!
//! The model of `AtomicRef`: a few pre-made values, each with a count and a
//! payload in a loom `UnsafeCell`; the published value is an index. A reader
//! takes a reference inside a read section (asserting the count had not
//! reached zero: "released while a reader holds it"), reads the payload, and
//! drops its reference later; a writer publishes another value and drops the
//! cell's reference to the old one after `Smr::write` returns. The last drop
//! poisons the payload with a plain write, so loom also reports any read that
//! is not ordered before the release (a causality violation). At the end every
//! replaced value must be released exactly once and the published one held
//! only by the cell.

#![cfg(loom)]

use crossinterp_core::smr::Smr;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

#[path = "support/loom_model.rs"]
mod loom_model;
use loom_model::model;

const FREED: usize = usize::MAX;

struct Value {
    rc: AtomicUsize,
    payload: UnsafeCell<usize>,
}

/// The cell: `Smr` + the index of the published value (which holds one
/// reference on behalf of the cell).
struct Cell {
    smr: Smr,
    cur: AtomicUsize,
    values: Vec<Value>,
}

impl Cell {
    /// Values `0..n`, value 0 published; each value's payload is its index.
    fn new(slots: usize, n: usize) -> Arc<Cell> {
        let values = (0..n)
            .map(|i| Value {
                // The published one is held by the cell; the others by the
                // writer that will publish them.
                rc: AtomicUsize::new(1),
                payload: UnsafeCell::new(i),
            })
            .collect();
        Arc::new(Cell {
            smr: Smr::with_slots(slots),
            cur: AtomicUsize::new(0),
            values,
        })
    }

    /// `AtomicRef.get`: a new reference to the published value.
    fn get(&self) -> usize {
        let i = self.smr.read(|| {
            let i = self.cur.load(Acquire);
            let before = self.values[i].rc.fetch_add(1, Relaxed);
            assert!(before > 0, "value {i} released while a reader holds it");
            i
        });
        // We hold a reference: the payload is intact.
        // SAFETY: loom checks this read against the release's write.
        let p = self.values[i].payload.with(|p| unsafe { *p });
        assert_eq!(p, i, "reader saw a released value");
        i
    }

    fn decref(&self, i: usize) {
        if self.values[i].rc.fetch_sub(1, AcqRel) == 1 {
            // The release: a plain write, checked by loom against readers.
            // SAFETY: the last reference; loom reports any unordered reader.
            self.values[i].payload.with_mut(|p| unsafe { *p = FREED });
        }
    }

    /// `AtomicRef.set(i)`: the caller gives the cell its reference to `i`.
    fn set(&self, i: usize) {
        let old = self.smr.write(|| Some(self.cur.swap(i, AcqRel))).unwrap();
        self.decref(old);
    }

    /// `AtomicRef.compare_and_set(expected, i)`.
    fn compare_and_set(&self, expected: usize, i: usize) -> bool {
        let r = self.smr.write(|| {
            let cur = self.cur.load(Acquire);
            (cur == expected).then(|| {
                self.cur.store(i, Release);
                cur
            })
        });
        match r {
            Some(old) => {
                self.decref(old);
                true
            }
            None => {
                self.decref(i);
                false
            }
        }
    }

    /// Final checks, all threads joined: the published value is held only
    /// by the cell, every other value was released exactly once.
    fn check_end(&self) {
        let cur = self.cur.load(Relaxed);
        for (i, v) in self.values.iter().enumerate() {
            let rc = v.rc.load(Relaxed);
            // SAFETY: every thread has been joined.
            let p = v.payload.with(|p| unsafe { *p });
            if i == cur {
                assert_eq!((rc, p), (1, i), "published value {i}");
            } else {
                assert_eq!((rc, p), (0, FREED), "value {i} not released exactly once");
            }
        }
    }
}

fn reader(cell: &Arc<Cell>) -> thread::JoinHandle<()> {
    let cell = cell.clone();
    thread::spawn(move || {
        let i = cell.get();
        cell.decref(i);
    })
}

/// One ownable slot: the first reader to arrive owns it, the other uses the
/// shared overflow slot (plain stores vs atomic adds); one writer.
#[test]
fn two_readers_one_writer_shared_slot() {
    model("two_readers_one_writer_shared_slot", Some(3), || {
        let cell = Cell::new(1, 2);
        let (r1, r2) = (reader(&cell), reader(&cell));
        cell.set(1);
        r1.join().unwrap();
        r2.join().unwrap();
        cell.check_end();
    });
}

/// Two readers on ownable slots (their ids may hash to the same one: the
/// probe path) and one writer.
#[test]
fn two_readers_one_writer_own_slots() {
    model("two_readers_one_writer_own_slots", Some(3), || {
        let cell = Cell::new(4, 2);
        let (r1, r2) = (reader(&cell), reader(&cell));
        cell.set(1);
        r1.join().unwrap();
        r2.join().unwrap();
        cell.check_end();
    });
}

/// Two writers and one reader: the generation moves twice, so a reader can
/// register under a parity that is stale by the time it re-checks (the retry
/// path), and the second flip reuses the first one's parity.
#[test]
fn two_writers_one_reader() {
    model("two_writers_one_reader", Some(3), || {
        let cell = Cell::new(1, 3);
        let w = {
            let cell = cell.clone();
            thread::spawn(move || cell.set(2))
        };
        let r = reader(&cell);
        cell.set(1);
        w.join().unwrap();
        r.join().unwrap();
        cell.check_end();
    });
}

/// One writer publishing twice in a row against a reader: the reader must
/// not keep a reference to the first replaced value across the second flip.
#[test]
fn one_writer_two_sets_one_reader() {
    model("one_writer_two_sets_one_reader", Some(3), || {
        let cell = Cell::new(2, 3);
        let r = reader(&cell);
        cell.set(1);
        cell.set(2);
        r.join().unwrap();
        cell.check_end();
    });
}

/// compare_and_set against set and a reader: exactly the CAS that saw its
/// expected value wins; nothing released twice or leaked.
#[test]
fn cas_vs_set_vs_reader() {
    model("cas_vs_set_vs_reader", Some(3), || {
        let cell = Cell::new(1, 3);
        let w = {
            let cell = cell.clone();
            thread::spawn(move || cell.set(1))
        };
        let r = reader(&cell);
        let won = cell.compare_and_set(0, 2);
        w.join().unwrap();
        r.join().unwrap();
        if won {
            // The CAS ran first; the set replaced its value.
            assert_eq!(cell.cur.load(Relaxed), 1);
        }
        // Value 2's reference was given back on failure: accounted for in
        // check_end either way.
        cell.check_end();
    });
}
