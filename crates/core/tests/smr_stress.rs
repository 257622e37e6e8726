//! Stress tests of `smr::Smr` with real threads: a published pointer to a
//! reference-counted heap node, replaced by writers while readers take
//! references — the shape of `AtomicRef` on free-threaded 3.13.
//!
//! A released node is poisoned (its `magic` set to DEAD, its value overwritten
//! with a plain write, so ThreadSanitizer sees an unordered reader as a race)
//! and parked in a graveyard until the test ends, so its memory is never
//! reused for a new node (which would hide a reader that reached it). Readers
//! sometimes stall inside their section to widen the race window. The
//! creation/free counters catch leaks and double frees.
//! Small by default; `CROSSINTERP_LARGE=1` scales them up.

#![cfg(not(loom))]

use crossinterp_core::smr::Smr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier};
use std::thread;

#[path = "support/stress.rs"]
mod stress_support;
use stress_support::size;

const ALIVE: u64 = 0xA11E_A11E_A11E_A11E;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

#[derive(Default)]
struct Counts {
    created: AtomicUsize,
    freed: AtomicUsize,
}

/// A heap node with its own count: the model of a Python object.
struct Node {
    magic: AtomicUsize,
    rc: AtomicUsize,
    value: std::cell::UnsafeCell<usize>,
}

/// A node pointer, to park released nodes.
struct Grave(*mut Node);
// SAFETY: a parked node is never touched again until the test frees it.
unsafe impl Send for Grave {}

/// Parked nodes, behind a spin lock made of one atomic rather than a
/// `std::sync::Mutex`: under ThreadSanitizer without an instrumented std
/// (`make sanitize`), the std mutex's blocking path is invisible and the
/// data it guards would be reported as racing.
struct Graveyard {
    locked: AtomicBool,
    graves: std::cell::UnsafeCell<Vec<Grave>>,
}
// SAFETY: `graves` is only touched while `locked` is held (`with`).
unsafe impl Sync for Graveyard {}

impl Graveyard {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Grave>) -> R) -> R {
        // Acquire/Release: the lock's hand-off orders the Vec accesses.
        while self
            .locked
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: we hold the lock.
        let r = f(unsafe { &mut *self.graves.get() });
        self.locked.store(false, Release);
        r
    }
}

static GRAVEYARD: Graveyard = Graveyard {
    locked: AtomicBool::new(false),
    graves: std::cell::UnsafeCell::new(Vec::new()),
};

fn new_node(value: usize, counts: &Counts) -> *mut Node {
    counts.created.fetch_add(1, Relaxed);
    Box::into_raw(Box::new(Node {
        magic: AtomicUsize::new(ALIVE as usize),
        rc: AtomicUsize::new(1),
        value: std::cell::UnsafeCell::new(value),
    }))
}

/// Take a reference to a node the caller knows is alive.
///
/// # Safety
/// `n` points to a node whose count is not zero for the whole call.
unsafe fn incref(n: *mut Node) {
    // SAFETY: the caller's contract.
    let node = unsafe { &*n };
    assert_eq!(
        node.magic.load(Relaxed),
        ALIVE as usize,
        "reader reached a released node"
    );
    let before = node.rc.fetch_add(1, Relaxed);
    assert!(before > 0, "incref of a node whose count reached zero");
}

/// Drop one reference; the last one frees the node.
///
/// # Safety
/// The caller owns one reference to `n`.
unsafe fn decref(n: *mut Node, counts: &Counts) {
    // SAFETY: the caller owns a reference, so the node is alive.
    let node = unsafe { &*n };
    // AcqRel: as `Arc`: every use by other holders happens before the free.
    if node.rc.fetch_sub(1, AcqRel) == 1 {
        assert_eq!(
            node.magic.swap(DEAD as usize, Relaxed),
            ALIVE as usize,
            "double free"
        );
        counts.freed.fetch_add(1, Relaxed);
        // SAFETY: the last reference: no one else may touch the node; this
        // plain write is what a sanitizer checks against readers.
        unsafe { *node.value.get() = usize::MAX };
        GRAVEYARD.with(|g| g.push(Grave(n)));
    }
}

/// The value of a node the caller holds a reference to.
fn value_of(n: *mut Node) -> usize {
    // SAFETY: callers hold a reference, so the node is alive and its value
    // is only written at release.
    unsafe { *(*n).value.get() }
}

/// Free the parked nodes (released, so unreachable by any reader, this
/// test's or another's, if the protocol holds).
fn empty_graveyard() {
    for Grave(n) in GRAVEYARD.with(std::mem::take) {
        // SAFETY: released nodes, unreachable since their release.
        drop(unsafe { Box::from_raw(n) });
    }
}

/// Stall a reader inside its section now and then (a preempted reader).
fn maybe_stall(i: &mut u32) {
    *i = i.wrapping_add(1);
    if *i % 64 == 0 {
        for _ in 0..200 {
            std::hint::spin_loop();
        }
    }
}

/// The `AtomicRef` shape: one published node (the cell owns one reference).
struct Cell {
    smr: Smr,
    ptr: AtomicPtr<Node>,
    counts: Arc<Counts>,
}

impl Cell {
    fn new(smr: Smr, counts: Arc<Counts>) -> Cell {
        let first = new_node(0, &counts);
        Cell {
            smr,
            ptr: AtomicPtr::new(first),
            counts,
        }
    }

    /// A new reference to the published node.
    fn get(&self, stall: &mut u32) -> *mut Node {
        self.smr.read(|| {
            let p = self.ptr.load(Acquire);
            maybe_stall(stall);
            // SAFETY: inside the read section the published node cannot be
            // released (the property under test).
            unsafe { incref(p) };
            p
        })
    }

    fn set(&self, n: *mut Node) {
        // AcqRel, not Release: we also acquire the old node's initialisation
        // from the writer that published it (ThreadSanitizer caught the
        // Release-only version: the writers' mutex orders them too, but the
        // swap must not rely on it).
        let old = self.smr.write(|| Some(self.ptr.swap(n, AcqRel))).unwrap();
        // SAFETY: the cell's reference to `old`, released after the wait.
        unsafe { decref(old, &self.counts) };
    }

    fn compare_and_set(&self, expected: *mut Node, n: *mut Node) -> bool {
        let r = self.smr.write(|| {
            // Acquire: the node we hand back for release was published by
            // another writer (the writers' mutex orders them as well).
            let cur = self.ptr.load(Acquire);
            (cur == expected).then(|| {
                self.ptr.store(n, Release);
                cur
            })
        });
        match r {
            Some(old) => {
                // SAFETY: the cell's reference to the replaced node.
                unsafe { decref(old, &self.counts) };
                true
            }
            None => {
                // SAFETY: `n` was not published; we own its reference.
                unsafe { decref(n, &self.counts) };
                false
            }
        }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        // SAFETY: the cell's own reference.
        unsafe { decref(*self.ptr.get_mut(), &self.counts) };
    }
}

fn storm(slots: usize, readers: usize, writers: usize, writes: usize, use_cas: bool) {
    let counts = Arc::new(Counts::default());
    {
        let cell = Arc::new(Cell::new(Smr::with_slots(slots), counts.clone()));
        let done = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(readers + writers));
        let reads = Arc::new(AtomicUsize::new(0));
        // Readers that have read once: writers wait for all of them, so the
        // reads overlap the writes even when the scheduler (2 cores, more
        // threads) would otherwise run every writer to completion first.
        let started = Arc::new(AtomicUsize::new(0));
        let rs: Vec<_> = (0..readers)
            .map(|_| {
                let (cell, done, barrier, reads, started) = (
                    cell.clone(),
                    done.clone(),
                    barrier.clone(),
                    reads.clone(),
                    started.clone(),
                );
                thread::spawn(move || {
                    barrier.wait();
                    let mut last = 0;
                    let mut n = 0;
                    let mut stall = 0;
                    while n == 0 || !done.load(Relaxed) {
                        let p = cell.get(&mut stall);
                        let v = value_of(p);
                        if writers == 1 {
                            // A single writer publishes increasing values.
                            assert!(v >= last, "went back in time: {v} < {last}");
                            last = v;
                        }
                        // SAFETY: ours.
                        unsafe { decref(p, &cell.counts) };
                        n += 1;
                        if n == 1 {
                            started.fetch_add(1, Relaxed);
                        }
                    }
                    reads.fetch_add(n, Relaxed);
                })
            })
            .collect();
        let ws: Vec<_> = (0..writers)
            .map(|w| {
                let (cell, barrier, started) = (cell.clone(), barrier.clone(), started.clone());
                thread::spawn(move || {
                    barrier.wait();
                    while started.load(Relaxed) < readers {
                        thread::yield_now();
                    }
                    for i in 1..=writes {
                        let n = new_node(i * writers + w, &cell.counts);
                        if use_cas && i % 2 == 0 {
                            let cur = cell.get(&mut 1);
                            cell.compare_and_set(cur, n);
                            // SAFETY: ours from `get`.
                            unsafe { decref(cur, &cell.counts) };
                        } else {
                            cell.set(n);
                        }
                    }
                })
            })
            .collect();
        for w in ws {
            w.join().unwrap();
        }
        done.store(true, Relaxed);
        for r in rs {
            r.join().unwrap();
        }
        assert!(reads.load(Relaxed) > 0);
        assert_eq!(
            counts.freed.load(Relaxed) + 1,
            counts.created.load(Relaxed),
            "all but the published node freed"
        );
    }
    assert_eq!(
        counts.freed.load(Relaxed),
        counts.created.load(Relaxed),
        "every node freed exactly once"
    );
    empty_graveyard();
}

/// Readers hammer `get` while one writer replaces the node: no reader ever
/// reaches a released node, values never go back in time, nothing leaks.
#[test]
fn reader_never_sees_released_value() {
    storm(4, 3, 1, size(20_000, 500_000), false);
}

/// All readers share one slot (the collision path).
#[test]
fn reader_never_sees_released_value_one_slot() {
    storm(1, 3, 1, size(20_000, 500_000), false);
}

/// Two writers (set and compare-and-set) against a read storm: writers are
/// serialised, every replaced node is freed exactly once.
#[test]
fn writers_serialised_under_read_storm() {
    storm(2, 2, 2, size(10_000, 300_000), true);
}

/// A writer is not held up by readers that keep starting new sections: it
/// waits only for sections open when it flipped.
#[test]
fn writer_not_starved_by_readers() {
    let smr = Arc::new(Smr::with_slots(1));
    let stop = Arc::new(AtomicBool::new(false));
    let rs: Vec<_> = (0..2)
        .map(|_| {
            let (smr, stop) = (smr.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Relaxed) {
                    smr.read(|| std::hint::black_box(1));
                }
            })
        })
        .collect();
    let t0 = std::time::Instant::now();
    for i in 0..size(2_000, 50_000) {
        assert_eq!(smr.write(|| Some(i)), Some(i));
    }
    stop.store(true, Relaxed);
    for r in rs {
        r.join().unwrap();
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(60));
}
